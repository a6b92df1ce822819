"""`audio-vq extract` / `units-convert`: formats, resumption, shards, determinism, bad files."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_vq.config import ConfigError, compose
from audio_vq.manifest import read_manifest
from audio_vq.stages import decode, extract
from audio_vq.units.formats import FORMATS, WRITERS, meta_path, read_units

from tiny import INFERENCE, TINY_HOP

SUFFIX = {name: writer.suffix for name, writer in WRITERS.items()}  # textless, zerospeech: none


def model_dir(trained):
    return trained / "run" / "model"


def run_extract(trained, output, *overrides, input=None):
    cfg = compose(
        "extract",
        [
            f"model={model_dir(trained)}",
            f"input={input or trained / 'data'}",
            f"output={output}",
            "num_workers=0",
            *overrides,
        ],
        package=INFERENCE,
    )
    return extract.extract(cfg)


def frames_by_id(path, fmt=None, trained=None):
    codebook = None
    if trained is not None:
        from audio_vq.units import UnitExtractor

        codebook = UnitExtractor.from_pretrained(model_dir(trained)).codebook[0]  # one codebook: (K, D)
    return {r.id: r.frames().tolist() for r in read_units(path, fmt, codebook)[1]}


@pytest.fixture(scope="module")
def reference(tiny_trained, tmp_path_factory):
    """An uninterrupted single-process gslm extraction: what every other way must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "units.txt"
    run_extract(tiny_trained, out, "batch_size=1")
    return out


def test_gslm_output_meta_and_dictionary(tiny_trained, reference):
    lines = reference.read_text().splitlines()
    from audio_vq.manifest import read_manifest

    utts = read_manifest(tiny_trained / "data")
    assert [line.split("|")[0] for line in lines] == [u.id for u in utts]  # manifest order
    for line, u in zip(lines, utts):
        assert len(line.split("|")[1].split()) == -(-u.num_samples // TINY_HOP)
    meta = json.loads(Path(f"{reference}.meta.json").read_text())
    assert meta["frame_rate"] == 16_000 / TINY_HOP and meta["codebook_size"] == 16
    assert meta["sample_rate"] == 16_000 and meta["deduplicated"] is False and meta["format_version"] == 1
    assert meta["model_checksum"] == (model_dir(tiny_trained) / "checksum.sha256").read_text().split()[0]
    assert (reference.parent / "dict.km.txt").read_text().count("\n") == 16
    assert not Path(f"{reference}.parts").exists()


def test_every_format_round_trips_through_units_convert(tiny_trained, reference, tmp_path):
    want = frames_by_id(reference)
    for fmt in FORMATS:
        out = tmp_path / f"direct_{fmt}{SUFFIX[fmt]}"
        run_extract(tiny_trained, out, f"format={fmt}", "batch_size=4")
        assert frames_by_id(out, trained=tiny_trained) == want, fmt
        for target in FORMATS:
            conv = tmp_path / f"{fmt}_to_{target}{SUFFIX[target]}"
            extract.units_convert(
                compose(
                    "units_convert",
                    [f"input={out}", f"output={conv}", f"format={target}", f"model={model_dir(tiny_trained)}"],
                    package=INFERENCE,
                )
            )
            assert frames_by_id(conv, trained=tiny_trained) == want, (fmt, target)
            meta = json.loads(Path(f"{conv}.meta.json").read_text())
            assert meta["format"] == target and meta["frame_rate"] == 16_000 / TINY_HOP


def test_batched_workers_and_threads_change_nothing(tiny_trained, reference, tmp_path):
    run_extract(tiny_trained, tmp_path / "a.txt", "batch_size=7", "threads=1")
    cfg = compose(
        "extract",
        [
            f"model={model_dir(tiny_trained)}",
            f"input={tiny_trained / 'data'}",
            f"output={tmp_path / 'b.txt'}",
            "batch_size=3",
            "num_workers=2",
            "threads=2",
        ],
        package=INFERENCE,
    )
    extract.extract(cfg)
    assert (tmp_path / "a.txt").read_bytes() == reference.read_bytes()
    assert (tmp_path / "b.txt").read_bytes() == reference.read_bytes()


def test_killed_and_resumed_equals_uninterrupted(tiny_trained, reference, tmp_path, monkeypatch):
    out = tmp_path / "units.txt"
    real = extract._write_part
    written = []

    def dying(parts, block, *args):
        if block == 2:
            raise KeyboardInterrupt  # the process is stopped while block 2 is in flight
        real(parts, block, *args)
        written.append(block)

    monkeypatch.setattr(extract, "_write_part", dying)
    with pytest.raises(KeyboardInterrupt):
        run_extract(tiny_trained, out, "block_size=3", "batch_size=2")
    assert written == [0, 1] and not out.exists()
    assert sorted(p.name for p in Path(f"{out}.parts").glob("part_*")) == ["part_000000.npz", "part_000001.npz"]
    monkeypatch.setattr(
        extract, "_write_part", lambda parts, block, *a: (written.append(block), real(parts, block, *a))
    )
    run_extract(tiny_trained, out, "block_size=3", "batch_size=2")
    assert 0 not in written[2:] and 1 not in written[2:]  # finished blocks were not redone
    assert out.read_bytes() == reference.read_bytes()
    assert not Path(f"{out}.parts").exists()


def test_shards_then_merge_equal_single(tiny_trained, reference, tmp_path, capsys):
    out = tmp_path / "units.txt"
    run_extract(tiny_trained, out, "shard=1", "num_shards=3", "block_size=2")
    assert not out.exists() and "merge=true" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"shards 0, 2 of num_shards=3 unfinished"):
        run_extract(tiny_trained, out, "merge=true", "num_shards=3", "block_size=2")
    run_extract(tiny_trained, out, "shard=2", "num_shards=3", "block_size=2")
    run_extract(tiny_trained, out, "shard=0", "num_shards=3", "block_size=2")
    run_extract(tiny_trained, out, "merge=true", "num_shards=3", "block_size=2")
    assert out.read_bytes() == reference.read_bytes()


def test_torchrun_ranks_take_shards_and_rank0_merges(tiny_trained, reference, tmp_path):
    out = tmp_path / "units.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    r = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "audio_vq.cli",
            "extract",
            f"model={model_dir(tiny_trained)}",
            f"input={tiny_trained / 'data'}",
            f"output={out}",
            "num_workers=0",
            "block_size=2",
            "device=cpu",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.read_bytes() == reference.read_bytes()


def test_parts_of_another_extraction_are_refused(tiny_trained, tmp_path, monkeypatch):
    out = tmp_path / "units.txt"
    monkeypatch.setattr(extract, "_merge", lambda *a: None)  # leave the parts behind
    run_extract(tiny_trained, out, "block_size=4")
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="parts of another extraction"):
        run_extract(tiny_trained, out, "block_size=5")


def test_bad_file_is_reported_and_the_rest_written(tiny_trained, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    from audio_vq.manifest import read_manifest

    for u in read_manifest(tiny_trained / "data")[:3]:
        shutil.copy(u.path, folder / Path(u.path).name)
    (folder / "broken.wav").write_bytes(b"RIFF nonsense")
    sf.write(folder / "lava.wav", np.zeros(100, np.float32) + 0.1, 16_000)  # fairseq's rstrip bug: 'l'
    out = tmp_path / "out" / "units.jsonl"
    run_extract(tiny_trained, out, "format=jsonl", input=folder)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted([p.stem for p in folder.iterdir() if p.name != "broken.wav"])
    assert "lava" in ids
    skipped = (tmp_path / "out" / "skipped.tsv").read_text().splitlines()
    assert len(skipped) == 2 and skipped[1].startswith(str(folder / "broken.wav"))
    assert json.loads(Path(f"{out}.meta.json").read_text())["extra"]["skipped"] == 1


def test_file_list_and_fairseq_tsv_inputs(tiny_trained, reference, tmp_path):
    from audio_vq.manifest import read_manifest, write_fairseq_tsv

    utts = read_manifest(tiny_trained / "data")
    (tmp_path / "list.txt").write_text("".join(f"{u.path}\n" for u in utts))
    write_fairseq_tsv(tmp_path / "train.tsv", utts)
    run_extract(tiny_trained, tmp_path / "a.txt", input=tmp_path / "list.txt")
    run_extract(tiny_trained, tmp_path / "b.txt", input=tmp_path / "train.tsv")
    want = reference.read_text()
    assert (tmp_path / "a.txt").read_text() == want == (tmp_path / "b.txt").read_text()


def test_rerun_of_a_finished_output_is_a_no_op(tiny_trained, reference, capsys):
    before = reference.stat().st_mtime_ns
    run_extract(tiny_trained, reference, "batch_size=1")
    assert "up to date" in capsys.readouterr().out and reference.stat().st_mtime_ns == before


def test_config_errors_name_the_key(tiny_trained, tmp_path):
    for override, word in [
        ("format=wav", "format"),
        ("batch_size=0", "batch_size"),
        ("format=textless", None),
        ("shard=3", "shard=3"),
    ]:
        extra = ["deduplicate=false"] if override == "format=textless" else []
        if word is None:
            with pytest.raises(ConfigError, match="deduplicate=false: format=textless is always deduplicated"):
                run_extract(tiny_trained, tmp_path / "x", override, *extra)
            continue
        with pytest.raises(ConfigError, match=word):
            run_extract(tiny_trained, tmp_path / "x", override)


def test_extracted_units_synthesize_to_the_expected_length(tiny_trained, tmp_path):
    from audio_vq.manifest import read_manifest

    utt = read_manifest(tiny_trained / "data")[0]
    short = tmp_path / "in"
    short.mkdir()
    x, _ = sf.read(utt.path, dtype="float32")
    sf.write(short / "clip.wav", x[:1001], 16_000)
    for fmt in ("gslm", "textless", "npz"):
        units = tmp_path / f"u_{fmt}{SUFFIX[fmt]}"
        run_extract(
            tiny_trained, units, f"format={fmt}", *(["deduplicate=true"] if fmt == "textless" else []), input=short
        )
        out = tmp_path / f"synth_{fmt}"
        decode.synthesize(
            compose(
                "synthesize",
                [f"model={model_dir(tiny_trained)}", f"units={units}", "speaker=spk01", f"out={out}"],
                package=INFERENCE,
            )
        )
        assert sf.info(out / "clip.wav").frames == -(-1001 // TINY_HOP) * TINY_HOP


def test_split_takes_one_split_of_a_manifest_only(tiny_trained, tmp_path):
    from audio_vq.manifest import read_manifest

    out = tmp_path / "train.txt"
    run_extract(tiny_trained, out, "split=train")
    want = [u.id for u in read_manifest(tiny_trained / "data") if u.split == "train"]
    assert [line.split("|")[0] for line in out.read_text().splitlines()] == want
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(read_manifest(tiny_trained / "data")[0].path, folder / "a.wav")
    with pytest.raises(ConfigError, match="is not a manifest, so it has no splits"):
        run_extract(tiny_trained, tmp_path / "x.txt", "split=train", input=folder)


# ------------------------------------------------------------------------------------------
# Hostile and careless input


def test_output_equal_to_an_input_is_refused_and_the_input_kept(tiny_trained, tmp_path):
    wav = tmp_path / "x.wav"
    shutil.copy(read_manifest(tiny_trained / "data")[0].path, wav)
    before = wav.read_bytes()
    with pytest.raises(ValueError, match=r"output: refusing to write .*x.wav: it is the input"):
        run_extract(tiny_trained, wav, input=wav)
    assert wav.read_bytes() == before
    units = tmp_path / "units.txt"
    run_extract(tiny_trained, units, input=wav)
    with pytest.raises(ValueError, match=r"output: refusing to write .*units.txt: it is the input"):
        extract.units_convert(
            compose("units_convert", [f"input={units}", f"output={units}", "format=gslm"], package=INFERENCE)
        )
    assert frames_by_id(units).keys() == {"x"}


@pytest.mark.parametrize(
    "output, message", [("", "output='': expected an output file"), ("{tmp}", "is a folder; format=gslm writes a file")]
)
def test_output_that_is_empty_or_a_folder_is_one_line(tiny_trained, tmp_path, output, message):
    with pytest.raises(ConfigError, match=message):
        run_extract(tiny_trained, output.format(tmp=tmp_path), "format=gslm")


def test_input_file_names_that_cannot_be_ids_are_refused(tiny_trained, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(read_manifest(tiny_trained / "data")[0].path, folder / "a|b.wav")
    with pytest.raises(ConfigError, match=r"a\|b.wav: id 'a\|b' holds '\|'.*; rename the file"):
        run_extract(tiny_trained, tmp_path / "units.txt", input=folder)


def test_a_second_extraction_into_a_busy_output_is_refused_and_stale_temporaries_go(
    tiny_trained, reference, tmp_path, hold_lock
):
    out = tmp_path / "units.txt"
    parts = Path(f"{out}.parts")
    holder = hold_lock(parts, ".lock-shard-0-of-1")
    with pytest.raises(ValueError, match=f"output=.*units.txt \\(shard 0 of 1\\) is in use by pid {holder.pid}"):
        run_extract(tiny_trained, out)
    holder.kill()
    holder.wait()
    stale = [
        tmp_path / f".units.txt.tmp-{holder.pid}",
        parts / ".part_000000.npz.x7.tmp",
        tmp_path / ".units.txt.meta.json.y8.tmp",
    ]
    for p in stale:
        p.write_bytes(b"half")
    keep = tmp_path / ".other.txt.tmp-1"  # another output's temporary: not ours to remove
    keep.write_bytes(b"")
    run_extract(tiny_trained, out)
    assert out.read_bytes() == reference.read_bytes()
    assert not any(p.exists() for p in stale) and keep.exists()


def test_empty_unit_file_is_an_error_and_writes_nothing(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ConfigError, match="no utterances in this unit file"):
        extract.units_convert(
            compose(
                "units_convert", [f"input={empty}", f"output={tmp_path / 'o.jsonl'}", "format=jsonl"], package=INFERENCE
            )
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]


def test_a_model_with_nan_weights_or_a_corrupt_config_or_weights_is_one_line(tiny_trained, tmp_path):
    from safetensors.torch import load_file, save_file

    from audio_vq.checkpoint import ModelDirError, _sha256, load_model

    def damaged(name, change):
        folder = tmp_path / name
        shutil.copytree(model_dir(tiny_trained), folder)
        change(folder)
        lines = [f"{_sha256(folder / n)}  {n}\n" for n in ("model.safetensors", "config.yaml", "speakers.json")]
        (folder / "checksum.sha256").write_text("".join(lines))  # the checksum matches the damage
        return folder

    def nan(folder):
        w = load_file(str(folder / "model.safetensors"))
        next(v for v in w.values() if v.is_floating_point()).fill_(float("nan"))
        save_file(w, str(folder / "model.safetensors"))

    cases = [
        (nan, r"model.safetensors: 1 tensor\(s\) hold NaN or inf"),
        (lambda f: (f / "config.yaml").write_text("model: [unclosed\n"), r"config.yaml: not a readable config"),
        (
            lambda f: (f / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage"),
            r"model.safetensors: not a readable safetensors file",
        ),
    ]
    for i, (change, message) in enumerate(cases):
        with pytest.raises(ModelDirError, match=message):
            load_model(damaged(f"m{i}", change))


# -- a residual model: several codebooks per frame -------------------------------------------------


@pytest.mark.parametrize("kind", ["residual", "hierarchical"])
def test_units_of_several_levels_in_every_format_round_trip_through_units_convert(
    request, tiny_trained, kind, tmp_path
):
    from audio_vq.units import UnitExtractor

    from tiny import HIERARCHY_RATIO, RESIDUAL_LEVELS

    model = request.getfixturevalue(f"tiny_{kind}")
    Q, rates = (
        (RESIDUAL_LEVELS, [1000.0] * RESIDUAL_LEVELS) if kind == "residual" else (2, [1000.0 / HIERARCHY_RATIO, 1000.0])
    )
    extractor = UnitExtractor.from_pretrained(model)
    utts = read_manifest(tiny_trained / "data")
    want = {u.id: extractor.extract(u.path).codes.tolist() for u in utts}
    assert all(len(c) == Q for c in want.values())
    assert any(len(set(map(tuple, c))) > 1 for c in want.values())  # the levels differ: the test has teeth

    def frames(path):
        return {r.id: r.frames().tolist() for r in read_units(path, None, extractor.codebook)[1]}

    for fmt in FORMATS:
        out = tmp_path / f"direct_{fmt}{SUFFIX[fmt]}"
        cfg = compose(
            "extract",
            [
                f"model={model}",
                f"input={tiny_trained / 'data'}",
                f"output={out}",
                f"format={fmt}",
                "num_workers=0",
                "batch_size=4",
            ],
            package=INFERENCE,
        )
        extract.extract(cfg)
        meta = json.loads(Path(f"{out}.meta.json").read_text())
        assert meta["num_codebooks"] == Q and meta["format_version"] == 2 and meta["frame_rates"] == rates, fmt
        assert frames(out) == want, fmt
        for target in FORMATS:
            conv = tmp_path / f"{fmt}_to_{target}{SUFFIX[target]}"
            extract.units_convert(
                compose(
                    "units_convert",
                    [f"input={out}", f"output={conv}", f"format={target}", f"model={model}"],
                    package=INFERENCE,
                )
            )
            assert frames(conv) == want, (fmt, target)
            assert json.loads(Path(meta_path(conv, target)).read_text())["frame_rates"] == rates, (fmt, target)


def test_a_hierarchy_extracts_both_levels_or_refuses(tiny_trained, tiny_hierarchical, tmp_path):
    common = [f"model={tiny_hierarchical}", f"input={tiny_trained / 'data'}", "num_workers=0", "format=jsonl"]
    with pytest.raises(ConfigError, match=r"levels=1: .*bottom level needs its top to decode.*give 2 \.\. 2"):
        extract.extract(
            compose("extract", [*common, f"output={tmp_path / 'one.jsonl'}", "levels=1"], package=INFERENCE)
        )
    assert not (tmp_path / "one.jsonl").exists()


def test_levels_extracts_the_first_codebooks(tiny_trained, tiny_residual, tmp_path):
    common = [f"model={tiny_residual}", f"input={tiny_trained / 'data'}", "num_workers=0", "format=jsonl"]
    extract.extract(compose("extract", [*common, f"output={tmp_path / 'all.jsonl'}"], package=INFERENCE))
    extract.extract(compose("extract", [*common, f"output={tmp_path / 'two.jsonl'}", "levels=2"], package=INFERENCE))
    extract.extract(compose("extract", [*common, f"output={tmp_path / 'one.jsonl'}", "levels=1"], package=INFERENCE))
    every = {r.id: r.units for r in read_units(tmp_path / "all.jsonl")[1]}
    two = {r.id: r.units for r in read_units(tmp_path / "two.jsonl")[1]}
    one = {r.id: r.units for r in read_units(tmp_path / "one.jsonl")[1]}
    assert all(np.array_equal(two[k], every[k][:2]) and np.array_equal(one[k], every[k][0]) for k in every)
    assert "num_codebooks" not in json.loads((tmp_path / "one.jsonl.meta.json").read_text())  # a version 1 file
    # a rerun with other levels writes new units, never the old ones
    extract.extract(compose("extract", [*common, f"output={tmp_path / 'two.jsonl'}", "levels=1"], package=INFERENCE))
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    with pytest.raises(ConfigError, match=r"levels=4: this model has 3 codebook\(s\)"):
        extract.extract(compose("extract", [*common, f"output={tmp_path / 'x.jsonl'}", "levels=4"], package=INFERENCE))


# -- the pitch stream ----------------------------------------------------------------------------

PITCH_BINS = 12


@pytest.fixture(scope="module")
def pitch_units(tiny_pitch, tiny_trained, tmp_path_factory):
    """The tiny pitch model's units of the first 6 utterances with the pitch stream (gslm)."""
    out = tmp_path_factory.mktemp("pitch_units") / "units.txt"
    inputs = out.parent / "inputs"
    inputs.mkdir()
    for u in read_manifest(tiny_trained / "data")[:6]:
        shutil.copy(u.path, inputs / Path(u.path).name)
    extract.extract(
        compose(
            "extract",
            [
                f"model={tiny_pitch / 'model'}",
                f"input={inputs}",
                f"output={out}",
                "num_workers=0",
                f"pitch_bins={PITCH_BINS}",
            ],
            package=INFERENCE,
        )
    )
    return out, inputs


def test_the_pitch_stream_is_the_last_level_of_the_unit_file(tiny_pitch, pitch_units):
    """meta.json says pitch_bins, two levels at the frame rate; the last level is each frame's
    normalised log F0 in 1..bins with 0 where unvoiced, exactly the contour's quantisation."""
    from audio_vq import audio, contours, load_model

    out, inputs = pitch_units
    meta, records = read_units(out)
    assert meta.pitch_bins == PITCH_BINS and meta.num_codebooks == 2 and meta.format_version == 2
    assert meta.frame_rates == [meta.frame_rate, meta.frame_rate]
    model = load_model(tiny_pitch / "model")
    voiced_any = False
    for r in records:
        codes = r.frames()
        x = audio.load(inputs / f"{r.id}.wav", model.sample_rate)
        want = contours.pitch_codes(model, x, codes.shape[1], None, PITCH_BINS)  # a folder: no speakers
        np.testing.assert_array_equal(codes[1], want)
        assert codes[1].min() >= 0 and codes[1].max() <= PITCH_BINS
        voiced_any |= bool((codes[1] > 0).any())
    assert voiced_any


@pytest.mark.parametrize("fmt", ["gslm", "textless", "jsonl", "npz"])
def test_a_pitch_stream_round_trips_through_every_format(pitch_units, tmp_path, fmt):
    out, _ = pitch_units
    converted = tmp_path / f"units{SUFFIX[fmt]}"
    extract.units_convert(
        compose("units_convert", [f"input={out}", f"output={converted}", f"format={fmt}"], package=INFERENCE)
    )
    meta, _ = read_units(converted, fmt)
    assert meta.pitch_bins == PITCH_BINS and meta.num_codebooks == 2
    assert frames_by_id(converted, fmt) == frames_by_id(out)


def test_zerospeech_cannot_hold_a_pitch_stream(tiny_pitch, pitch_units, tmp_path):
    out, inputs = pitch_units
    with pytest.raises(ConfigError, match="pitch_bins=4: format=zerospeech writes codebook vectors"):
        extract.extract(
            compose(
                "extract",
                [
                    f"model={tiny_pitch / 'model'}",
                    f"input={inputs}",
                    f"output={tmp_path / 'zs'}",
                    "format=zerospeech",
                    "pitch_bins=4",
                ],
                package=INFERENCE,
            )
        )
    with pytest.raises(ConfigError, match="holds a pitch stream, which has no codebook vectors"):
        extract.units_convert(
            compose(
                "units_convert",
                [f"input={out}", f"output={tmp_path / 'zs2'}", "format=zerospeech", f"model={tiny_pitch / 'model'}"],
                package=INFERENCE,
            )
        )


def test_a_pitch_model_synthesizes_the_pitch_stream_in_the_speakers_register(
    tiny_pitch, tiny_trained, pitch_units, tmp_path
):
    """synthesize turns the stream into a contour in the speaker's register (the fingerprint
    records it, different for another speaker); a pitch model refuses units without a stream,
    and a model without pitch decodes the content levels and leaves the stream out."""
    from audio_vq import contours, load_model

    out, _ = pitch_units
    model = tiny_pitch / "model"

    def synth(model_dir, units, speaker, where):
        decode.synthesize(
            compose(
                "synthesize",
                [f"model={model_dir}", f"units={units}", f"speaker={speaker}", f"out={where}", "chunk_seconds=0.5"],
                package=INFERENCE,
            )
        )
        return json.loads((where / "fingerprint.json").read_text())["outputs"]

    a, b = synth(model, out, "spk00", tmp_path / "a"), synth(model, out, "spk02", tmp_path / "b")
    first = next(iter(a))
    assert a[first]["f0"] != b[first]["f0"] and a[first]["codes"] == b[first]["codes"]
    loaded = load_model(model)
    r = next(iter(read_units(out)[1]))
    f0 = contours.contour_of_codes(loaded, r.frames()[1], PITCH_BINS, loaded.speaker_index["spk00"])
    voiced = np.log(f0[f0 > 0])  # the bin centres, in spk00's register
    assert abs(np.median(voiced) - loaded.speaker_pitch_stats(0).mean) < 3 * loaded.speaker_pitch_stats(0).std
    plain = tmp_path / "plain.txt"
    run_extract(tiny_trained, plain, input=pitch_units[1])
    with pytest.raises(ConfigError, match="is a pitch model .* has no pitch stream; extract it with pitch_bins=N"):
        synth(model, plain, "spk00", tmp_path / "c")
    no_pitch = synth(model_dir(tiny_trained), out, "spk00", tmp_path / "d")
    assert all("f0" not in v for v in no_pitch.values())
    assert no_pitch[first]["codes"] == a[first]["codes"]  # the content levels alone


def test_a_prior_over_the_pitch_stream_has_bins_plus_one_symbols(pitch_units):
    from audio_vq.units.corpus import load_units

    out, _ = pitch_units
    corpus = load_units(str(out), False, level=1, condition_level=0)
    assert corpus.codebook_size == PITCH_BINS + 1 and corpus.conditions is not None


def test_lhotse_and_parquet_outputs_carry_each_utterances_speaker_and_file(tiny_trained, reference, tmp_path):
    """What the consumers read: lhotse's loader gets each cut's units, speaker and audio (the
    manifest's file); `datasets` gets id, speaker, path and units per row. Catches the speaker
    or file of another utterance (a merge that lost the order) and units that differ from gslm's."""
    import datasets
    import lhotse

    want = frames_by_id(reference)
    utts = {u.id: u for u in read_manifest(tiny_trained / "data")}
    run_extract(tiny_trained, tmp_path / "cuts.jsonl.gz", "format=lhotse", "block_size=3")
    for cut in lhotse.CutSet.from_file(tmp_path / "cuts.jsonl.gz"):
        assert cut.units == want[cut.id] and cut.supervisions[0].speaker == utts[cut.id].speaker
        assert cut.recording.sources[0].source == utts[cut.id].path
        assert cut.load_audio().shape[1] == utts[cut.id].num_samples
    run_extract(tiny_trained, tmp_path / "units.parquet", "format=parquet", "block_size=3")
    rows = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "units.parquet"), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert rows["id"] == list(want) and rows["units"] == list(want.values())
    assert rows["speaker"] == [utts[i].speaker for i in rows["id"]] and rows["path"] == [
        utts[i].path for i in rows["id"]
    ]


@pytest.mark.parametrize("fmt, module, extra", [("parquet", "pyarrow", "hf"), ("lhotse", "lhotse", "lhotse")])
def test_a_format_whose_extra_is_missing_is_one_line_naming_it(tiny_trained, tmp_path, monkeypatch, fmt, module, extra):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError, match=rf"format={fmt} needs .*pip install 'audio_vq\[{extra}\]'"):
        run_extract(tiny_trained, tmp_path / "out", f"format={fmt}")
    assert not (tmp_path / "out").exists()
