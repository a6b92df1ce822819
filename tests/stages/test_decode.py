"""reconstruct / convert / synthesize on a tiny trained model: files, lengths, errors."""

import csv
import json
import math
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_vq import audio, load_model
from audio_vq.config import ConfigError, compose
from audio_vq.generate import Generator
from audio_vq.manifest import Utterance, read_manifest, write_manifest
from audio_vq.rendering import PCM_SUBTYPE
from audio_vq.stages import decode
from audio_vq.units import UnitExtractor

from tiny import INFERENCE
from tiny import TINY_HOP as HOP


@pytest.fixture(scope="module")
def trained(tiny_trained):
    return tiny_trained


def cfg(name, trained, out, *overrides):
    return compose(
        name, [f"model={trained / 'run' / 'model'}", f"out={out}", "chunk_seconds=0.5", *overrides], package=INFERENCE
    )


def short_inputs(trained, tmp_path, n=2):
    """A folder of n short excerpts (fast to generate), of lengths that are not multiples of the hop."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    utts = read_manifest(trained / "data")[:n]
    for i, u in enumerate(utts):
        x, rate = sf.read(u.path, dtype="float32")
        sf.write(folder / f"{u.id}.wav", x[: 1000 + 37 * i], rate)
    return folder, [u.id for u in utts]


def test_convert_writes_source_x_target_matrix_with_index(trained, tmp_path):
    folder, ids = short_inputs(trained, tmp_path)
    decode.convert(cfg("convert", trained, tmp_path / "out", f"input={folder}", "target_speaker=spk01,spk03"))
    rows = list(csv.DictReader(open(tmp_path / "out" / "index.csv")))
    assert [(r["source_id"], r["target_speaker"]) for r in rows] == [(i, t) for i in ids for t in ("spk01", "spk03")]
    for i, r in enumerate(rows):
        info = sf.info(tmp_path / "out" / r["path"])
        samples = 1000 + 37 * (i // 2)
        assert info.frames == math.ceil(samples / HOP) * HOP and info.samplerate == 16_000


def test_convert_all_targets_and_unknown_speaker_lists_names(trained, tmp_path):
    folder, ids = short_inputs(trained, tmp_path, n=1)
    decode.convert(cfg("convert", trained, tmp_path / "out", f"input={folder}", "target_speaker=all"))
    assert len(list((tmp_path / "out").glob("*.wav"))) == 4
    with pytest.raises(ConfigError, match=r"target_speaker=nobody: unknown speaker; this model knows: spk00, spk01"):
        decode.convert(cfg("convert", trained, tmp_path / "o2", f"input={folder}", "target_speaker=spk00,nobody"))


def test_reconstruct_uses_the_source_speaker_and_skips_bad_files(trained, tmp_path):
    folder, ids = short_inputs(trained, tmp_path)
    (folder / "broken.wav").write_bytes(b"not audio")
    with pytest.raises(ConfigError, match="names no speakers; give speaker=<name>"):
        decode.reconstruct(cfg("reconstruct", trained, tmp_path / "out", f"input={folder}"))
    decode.reconstruct(cfg("reconstruct", trained, tmp_path / "out", f"input={folder}", "speaker=spk02"))
    assert sorted(p.stem for p in (tmp_path / "out").glob("*.wav")) == sorted(ids)
    assert "broken.wav" in (tmp_path / "out" / "skipped.tsv").read_text()


# ------------------------------------------------------------------------------------------
# Each output is decoded with the speaker it is meant for. argmax decoding is deterministic, so
# an output must equal, sample for sample, its codes generated greedily with that speaker's
# index. The tiny model's speaker embeddings (random, 3 training steps) give each speaker other
# audio, which each test checks too, so a wrong index cannot pass unseen.


def greedy_decode(trained, codes: np.ndarray, speaker: str, scratch: Path) -> np.ndarray:
    """``codes`` (Q, frames) generated greedily with ``speaker``'s embedding, as the commands
    write it (16-bit wav), read back as int16."""
    model = load_model(trained / "run" / "model")
    wave = Generator(model).generate([codes], [model.speaker_index[speaker]], argmax=True)[0]
    audio.save(scratch, wave, model.sample_rate, subtype=PCM_SUBTYPE)
    return sf.read(scratch, dtype="int16")[0]


def extracted_codes(trained, wav) -> np.ndarray:
    """(Q, frames): the codes the commands decode (extraction's, as rendering.Renderer encodes)."""
    return UnitExtractor(load_model(trained / "run" / "model"), chunk_seconds=0.5).extract(wav).codes


def test_each_conversion_is_decoded_with_its_target_speaker(trained, tmp_path):
    # catches: convert decoding every conversion with speaker 0 (or any index but the target's)
    folder, ids = short_inputs(trained, tmp_path)
    targets = ("spk01", "spk03")  # not index 0: a decoder stuck at speaker 0 differs from both
    decode.convert(
        cfg("convert", trained, tmp_path / "out", f"input={folder}", "target_speaker=spk01,spk03", "argmax=true")
    )
    for i in ids:
        got = {t: sf.read(tmp_path / "out" / f"{i}__{t}.wav", dtype="int16")[0] for t in targets}
        assert not np.array_equal(got["spk01"], got["spk03"]), i  # the target changes the audio
        codes = extracted_codes(trained, folder / f"{i}.wav")
        for t in targets:
            np.testing.assert_array_equal(got[t], greedy_decode(trained, codes, t, tmp_path / "ref.wav"), err_msg=t)


def test_reconstruct_decodes_each_input_with_its_own_speaker_or_the_one_given(trained, tmp_path):
    # catches: reconstruct decoding with speaker 0 (or one speaker for all) instead of each
    # source's own, and ignoring speaker= (decoding with the sources' speakers anyway)
    first = {}
    for u in read_manifest(trained / "data"):
        first.setdefault(u.speaker, u)
    (tmp_path / "data").mkdir()
    utts = []
    for speaker in ("spk01", "spk02", "spk03"):
        u = first[speaker]
        path = tmp_path / "data" / f"{u.id}.wav"
        sf.write(path, sf.read(u.path, dtype="float32")[0][:1000], 16_000)
        utts.append(Utterance(u.id, str(path), speaker, 1000, 16_000, "test"))
    write_manifest(tmp_path / "data", utts)
    decode.reconstruct(cfg("reconstruct", trained, tmp_path / "own", f"input={tmp_path / 'data'}", "argmax=true"))
    decode.reconstruct(
        cfg("reconstruct", trained, tmp_path / "given", f"input={tmp_path / 'data'}", "argmax=true", "speaker=spk02")
    )
    for u in utts:
        codes = extracted_codes(trained, u.path)
        own, given = (sf.read(tmp_path / d / f"{u.id}.wav", dtype="int16")[0] for d in ("own", "given"))
        np.testing.assert_array_equal(own, greedy_decode(trained, codes, u.speaker, tmp_path / "r.wav"), err_msg=u.id)
        np.testing.assert_array_equal(given, greedy_decode(trained, codes, "spk02", tmp_path / "r.wav"), err_msg=u.id)
        assert np.array_equal(own, given) == (u.speaker == "spk02"), u.id  # the speaker changes the audio


def test_synthesize_decodes_with_the_speaker_given(trained, tmp_path):
    # catches: synthesize decoding with speaker 0 (or another index) instead of speaker=
    units = tmp_path / "units.txt"
    units.write_text("a|1 2 3 4 5 15 0 9 9 9\n")
    codes = np.array([[1, 2, 3, 4, 5, 15, 0, 9, 9, 9]])
    for speaker in ("spk01", "spk03"):
        decode.synthesize(
            cfg("synthesize", trained, tmp_path / speaker, f"units={units}", f"speaker={speaker}", "argmax=true")
        )
        np.testing.assert_array_equal(
            sf.read(tmp_path / speaker / "a.wav", dtype="int16")[0],
            greedy_decode(trained, codes, speaker, tmp_path / "ref.wav"),
            err_msg=speaker,
        )
    assert not np.array_equal(*(sf.read(tmp_path / s / "a.wav")[0] for s in ("spk01", "spk03")))


def test_an_output_does_not_depend_on_its_batch(trained, tmp_path):
    """Batches are formed by length, not input order: each file's audio must be the same
    whichever utterances share its batch."""
    folder, ids = short_inputs(trained, tmp_path, n=3)
    for batch in (1, 2, 3):
        decode.reconstruct(
            cfg(
                "reconstruct",
                trained,
                tmp_path / f"b{batch}",
                f"input={folder}",
                "speaker=spk01",
                f"batch_size={batch}",
            )
        )
    for i in ids:
        one = sf.read(tmp_path / "b1" / f"{i}.wav", dtype="int16")[0]
        for batch in (2, 3):
            assert np.array_equal(sf.read(tmp_path / f"b{batch}" / f"{i}.wav", dtype="int16")[0], one), (i, batch)
    assert len({len(sf.read(tmp_path / "b1" / f"{i}.wav")[0]) for i in ids}) == 3  # lengths that differ


def test_long_inputs_stream_in_chunks_and_match_length(trained, tmp_path):
    utt = read_manifest(trained / "data")[0]
    decode.reconstruct(
        cfg("reconstruct", trained, tmp_path / "out", f"input={utt.path}", "speaker=spk00", "chunk_seconds=0.25")
    )
    assert sf.info(tmp_path / "out" / f"{utt.id}.wav").frames == math.ceil(utt.num_samples / HOP) * HOP


def test_synthesize_units_to_audio_of_the_expected_length(trained, tmp_path):
    units = tmp_path / "units.txt"
    units.write_text("a|1 2 3 4 5 15 0\nb|7 7 7\n")
    decode.synthesize(cfg("synthesize", trained, tmp_path / "out", f"units={units}", "speaker=spk01"))
    assert sf.info(tmp_path / "out" / "a.wav").frames == 7 * HOP
    assert sf.info(tmp_path / "out" / "b.wav").frames == 3 * HOP
    units.write_text("a|1 2 99\n")
    with pytest.raises(ConfigError, match="unit 99 outside 0..15"):
        decode.synthesize(cfg("synthesize", trained, tmp_path / "o2", f"units={units}", "speaker=spk01"))


def test_cli_unknown_speaker_is_one_line(trained, tmp_path):
    script = Path(sys.executable).with_name("audio-vq")
    r = subprocess.run(
        [
            str(script),
            "convert",
            f"model={trained / 'run' / 'model'}",
            f"out={tmp_path}",
            f"input={trained / 'data'}",
            "target_speaker=zed",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "zed" in r.stderr
    assert np.all([not p.suffix == ".wav" for p in tmp_path.iterdir()])


# ------------------------------------------------------------------------------------------
# Hostile and careless input: outputs stay in out=, never replace inputs, reruns are honest


def test_unit_ids_that_leave_the_output_folder_or_repeat_are_refused(trained, tmp_path):
    units = tmp_path / "units.txt"
    out = tmp_path / "deep" / "out"
    for line, message in [
        ("../../x|1 2 3", r"units.txt:2: id '../../x' holds '/'"),
        ("/abs/x|1 2 3", r"units.txt:2: id '/abs/x' holds '/'"),
        ("ok|4 5", r"units.txt:2: duplicate id 'ok' \(first at .*units.txt:1\)"),
    ]:
        units.write_text(f"ok|1 2 3\n{line}\n")
        with pytest.raises(ConfigError, match=message):
            decode.synthesize(cfg("synthesize", trained, out, f"units={units}", "speaker=spk01"))
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["units.txt"]
    units.write_text("")
    with pytest.raises(ConfigError, match="no utterances in this unit file"):
        decode.synthesize(cfg("synthesize", trained, out, f"units={units}", "speaker=spk01"))


def test_reconstruct_into_its_input_folder_leaves_the_inputs_intact(trained, tmp_path):
    folder, ids = short_inputs(trained, tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(ValueError, match=r"out: refusing to write .*\.wav: it is the input"):
        decode.reconstruct(cfg("reconstruct", trained, folder, f"input={folder}", "speaker=spk02", "overwrite=true"))
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".wav"} == before


def test_a_rerun_resumes_with_the_same_settings_and_stops_or_regenerates_with_others(trained, tmp_path):
    folder, ids = short_inputs(trained, tmp_path, n=1)
    out = tmp_path / "out"
    run = lambda *o: decode.reconstruct(cfg("reconstruct", trained, out, f"input={folder}", *o))  # noqa: E731
    run("speaker=spk02")
    wav = out / f"{ids[0]}.wav"
    first, stamp = wav.read_bytes(), wav.stat().st_mtime_ns
    run("speaker=spk02")  # the same fingerprint: kept as it is (a resume)
    assert wav.stat().st_mtime_ns == stamp
    for overrides, message in [
        (["speaker=spk02", "temperature=0.5"], r"were made with temperature=1.0 \(now 0.5\)"),
        (["speaker=spk02", "seed=3"], r"were made with seed=0 \(now 3\)"),
        (["speaker=spk01"], r"another speaker, e.g. .*\.wav with 'spk02' \(now 'spk01'\)"),
    ]:
        with pytest.raises(ConfigError, match=message):
            run(*overrides)
        assert wav.read_bytes() == first
    run("speaker=spk01", "overwrite=true")
    assert wav.read_bytes() != first
    record = json.loads((out / "fingerprint.json").read_text())
    assert record["outputs"][ids[0]]["speaker"] == "spk01" and record["settings"]["seed"] == 0
    (out / "stray.wav").write_bytes(b"")  # an output of the same name that this command did not write
    shutil.copy(wav, out / "x.wav")
    with pytest.raises(ConfigError, match=r"not written by this command"):
        decode.synthesize(cfg("synthesize", trained, out, f"units={_units(tmp_path, 'x')}", "speaker=spk01"))


def _units(tmp_path, uid):
    path = tmp_path / f"{uid}.units.txt"
    path.write_text(f"{uid}|1 2 3\n")
    return path


def test_a_write_that_fails_midway_is_one_line_and_leaves_no_partial_file(trained, tmp_path):
    """A disk that fills up (simulated with a file-size limit) gives one line, exit status 2, no half wav."""
    folder, ids = short_inputs(trained, tmp_path, n=1)
    script = Path(sys.executable).with_name("audio-vq")

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))  # the wav needs ~2 KB

    r = subprocess.run(
        [
            str(script),
            "reconstruct",
            f"model={trained / 'run' / 'model'}",
            f"out={tmp_path / 'out'}",
            f"input={folder}",
            "speaker=spk01",
            "backend=torch",
            "device=cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
    )
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if "error" in line or "Traceback" in line]
    assert len(errors) == 1 and f"{ids[0]}.wav: cannot write it" in errors[0], r.stderr  # beside progress bars
    assert not list((tmp_path / "out").glob("*.wav")) and not list((tmp_path / "out").glob(".*.tmp"))


def test_a_hierarchical_model_synthesizes_its_unit_files_as_it_reconstructs(trained, tiny_hierarchical, tmp_path):
    from audio_vq.stages import extract

    folder, ids = short_inputs(trained, tmp_path)

    def run(name, out, *overrides):
        return compose(
            name,
            [f"model={tiny_hierarchical}", f"out={out}", "chunk_seconds=0.5", "speaker=spk02", *overrides],
            package=INFERENCE,
        )

    decode.reconstruct(run("reconstruct", tmp_path / "rec", f"input={folder}"))
    units = tmp_path / "units.jsonl"  # deduplicated: runs of whole frames, the held top codes inside them
    extract.extract(
        compose(
            "extract",
            [
                f"model={tiny_hierarchical}",
                f"input={folder}",
                f"output={units}",
                "format=jsonl",
                "deduplicate=true",
                "num_workers=0",
            ],
            package=INFERENCE,
        )
    )
    decode.synthesize(run("synthesize", tmp_path / "synth", f"units={units}"))
    for i in ids:
        np.testing.assert_array_equal(
            sf.read(tmp_path / "synth" / f"{i}.wav")[0], sf.read(tmp_path / "rec" / f"{i}.wav")[0]
        )
    with pytest.raises(ConfigError, match="levels=1"):
        decode.reconstruct(run("reconstruct", tmp_path / "bad", f"input={folder}", "levels=1"))


def test_a_residual_model_decodes_its_first_levels_and_synthesizes_its_unit_files(trained, tiny_residual, tmp_path):
    from audio_vq.stages import extract

    folder, ids = short_inputs(trained, tmp_path)

    def run(name, out, *overrides):
        return compose(
            name,
            [f"model={tiny_residual}", f"out={out}", "chunk_seconds=0.5", "speaker=spk02", *overrides],
            package=INFERENCE,
        )

    decode.reconstruct(run("reconstruct", tmp_path / "all", f"input={folder}"))
    decode.reconstruct(run("reconstruct", tmp_path / "one", f"input={folder}", "levels=1"))
    every, first = ({i: sf.read(tmp_path / d / f"{i}.wav")[0] for i in ids} for d in ("all", "one"))
    assert all(len(every[i]) == len(first[i]) for i in ids)
    assert any(not np.array_equal(every[i], first[i]) for i in ids)  # the later levels reach the decoder
    # synthesize reads the levels back from a unit file: the same audio as reconstruct made
    units = tmp_path / "units.jsonl"
    extract.extract(
        compose(
            "extract",
            [f"model={tiny_residual}", f"input={folder}", f"output={units}", "format=jsonl", "num_workers=0"],
            package=INFERENCE,
        )
    )
    decode.synthesize(run("synthesize", tmp_path / "synth", f"units={units}"))
    for i in ids:
        np.testing.assert_array_equal(sf.read(tmp_path / "synth" / f"{i}.wav")[0], every[i])
    with pytest.raises(ConfigError, match="levels=5"):
        decode.reconstruct(run("reconstruct", tmp_path / "bad", f"input={folder}", "levels=5"))


# -- pitch models ------------------------------------------------------------------------------

GOLDEN_MODEL = Path(__file__).parents[1] / "golden" / "model_v1"


def test_a_model_directory_from_before_pitch_loads_and_decodes_as_before():
    """tests/golden/model_v1: a model directory and the audio the generator made of it before
    the decoder had a pitch input (its config has no decoder.pitch key). It must load as a
    model without pitch and generate the same samples, bit for bit."""
    model = load_model(GOLDEN_MODEL / "model")
    assert not model.uses_pitch and model.pitch_stats is None
    wave = Generator(model, backend="numba", threads=1).generate([np.arange(12).reshape(1, 12) % 8], [1], seed=3)[0]
    np.testing.assert_array_equal(wave, np.load(GOLDEN_MODEL / "generated.npy"))


@pytest.fixture(scope="module")
def pitch_trained(tiny_pitch):
    return tiny_pitch


def test_a_pitch_model_keeps_the_training_splits_registers(pitch_trained, tiny_trained):
    """The model's table holds each speaker's log-F0 statistics over the contours training
    tracked (in <run>/pitch), train split only."""
    from audio_vq import contours

    model = load_model(pitch_trained / "model")
    utts = read_manifest(tiny_trained / "data")
    used = [u for u in utts if u.split in ("train", "valid") and u.speaker in model.speaker_index]
    f0 = contours.contours(used, 16000, HOP, "dio", pitch_trained / "pitch", progress=False)  # the cache: no tracking
    assert len(list(contours.cache_folder(pitch_trained / "pitch", "dio", 16000, HOP).iterdir())) == len(used)
    for index, st in contours.speaker_stats(used, f0, model.speaker_index).items():
        assert model.speaker_pitch_stats(index).mean == pytest.approx(st.mean, abs=1e-5)
        assert model.speaker_pitch_stats(index).std == pytest.approx(st.std, abs=1e-5)


def test_reconstruct_and_convert_decode_the_sources_contour(pitch_trained, trained, tmp_path):
    """A pitch model reconstructs with the source's own contour and converts with it moved into
    each target's register: the fingerprint records a contour per output, the same for a
    rerun (which keeps the files), different for different targets."""
    folder, ids = tmp_path / "inputs", []
    folder.mkdir()
    for u in read_manifest(trained / "data")[:2]:  # half a second each: voiced, so the contours differ
        x, rate = sf.read(u.path, dtype="float32")
        sf.write(folder / f"{u.id}.wav", x[: rate // 2], rate)
        ids.append(u.id)
    model = pitch_trained / "model"
    speakers = {u.id: u.speaker for u in read_manifest(trained / "data")}
    decode.reconstruct(
        compose(
            "reconstruct",
            [f"model={model}", f"out={tmp_path / 'rec'}", f"input={folder}", f"speaker={speakers[ids[0]]}"],
            package=INFERENCE,
        )
    )
    assert sorted(p.stem for p in (tmp_path / "rec").glob("*.wav")) == sorted(ids)
    conv = compose(
        "convert",
        [f"model={model}", f"out={tmp_path / 'conv'}", f"input={folder}", "target_speaker=spk01,spk03"],
        package=INFERENCE,
    )
    decode.convert(conv)
    record = json.loads((tmp_path / "conv" / "fingerprint.json").read_text())["outputs"]
    assert all("f0" in r for r in record.values())
    assert record[f"{ids[0]}__spk01"]["f0"] != record[f"{ids[0]}__spk03"]["f0"]
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "conv").glob("*.wav")}
    decode.convert(conv)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "conv").glob("*.wav")} == before
    # voiced_temperature shapes a pitch model's outputs: a rerun with another one stops (it is
    # recorded), and its outputs differ from those sampled at the temperature alone
    with pytest.raises(ConfigError, match=r"were made with voiced_temperature=0.5 \(now None\)"):
        decode.convert(
            compose(
                "convert",
                [
                    f"model={model}",
                    f"out={tmp_path / 'conv'}",
                    f"input={folder}",
                    "target_speaker=spk01,spk03",
                    "voiced_temperature=null",
                ],
                package=INFERENCE,
            )
        )
    decode.convert(
        compose(
            "convert",
            [
                f"model={model}",
                f"out={tmp_path / 'cool'}",
                f"input={folder}",
                "target_speaker=spk01,spk03",
                "voiced_temperature=null",
            ],
            package=INFERENCE,
        )
    )
    name = f"{ids[0]}__spk01.wav"
    assert (tmp_path / "cool" / name).read_bytes() != (tmp_path / "conv" / name).read_bytes()
