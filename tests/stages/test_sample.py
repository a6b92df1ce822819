"""sample: speech from a prior, rendered by the VQ-VAE; prompts, lengths, mismatches, reruns."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from audio_vq.config import ConfigError, compose, compose_run
from audio_vq.stages import extract, train_prior
from audio_vq.stages.sample import sample
from audio_vq.units.formats import UnitsMeta, read_units, write_units

from tiny import INFERENCE, TINY_HOP

PRIOR = [
    "prior.dim=16",
    "prior.layers=1",
    "prior.heads=2",
    "prior.max_len=40",
    "train.batch_size=4",
    "train.max_steps=4",
    "train.valid_every=100",
    "train.checkpoint_every=100",
    "train.threads=1",
]


@pytest.fixture(scope="module")
def priors(tiny_trained, tmp_path_factory):
    """The tiny VQ-VAE's units, and priors on them: frame-level with speakers, and deduplicated."""
    root = tmp_path_factory.mktemp("priors")
    units = root / "units.jsonl"
    extract.extract(
        compose(
            "extract",
            [
                f"model={tiny_trained / 'run' / 'model'}",
                f"input={tiny_trained / 'data'}",
                f"output={units}",
                "format=jsonl",
                "num_workers=0",
            ],
            package=INFERENCE,
        )
    )
    out = {"units": units}
    for name, extra in (("frames", [f"manifest={tiny_trained / 'data'}"]), ("dedup", ["deduplicate=true"])):
        cfg, folder = compose_run("train_prior", [f"units={units}", f"hydra.run.dir={root / name}", *PRIOR, *extra])
        out[name] = train_prior.run(cfg, folder) / "prior"
    return out


def run_sample(tiny_trained, prior, out, *overrides):
    sample(
        compose(
            "sample",
            [
                f"prior={prior}",
                f"model={tiny_trained / 'run' / 'model'}",
                f"out={out}",
                "speaker=spk01",
                "num_samples=2",
                "seconds=0.06",
                "chunk_seconds=0.5",
                *overrides,
            ],
            package=INFERENCE,
        )
    )
    return {r.id: r.units for r in read_units(out / "units.txt")[1]}


def test_samples_render_to_their_length_and_are_seeded(tiny_trained, priors, tmp_path):
    a = run_sample(tiny_trained, priors["frames"], tmp_path / "a")
    frames = round(0.06 * 16000 / TINY_HOP)  # 60 frames: past the prior's 39-unit window
    assert sorted(a) == ["sample_0000", "sample_0001"] and all(len(u) == frames for u in a.values())
    for name in a:
        assert sf.info(tmp_path / "a" / f"{name}.wav").frames == frames * TINY_HOP
    b = run_sample(tiny_trained, priors["frames"], tmp_path / "b")
    assert all(np.array_equal(a[k], b[k]) for k in a)  # seeded by (seed, name)
    meta = json.loads((tmp_path / "a" / "units.txt.meta.json").read_text())
    assert meta["codebook_size"] == 16 and meta["frame_rate"] == 16000 / TINY_HOP and meta["extra"]["seed"] == 0
    wav = tmp_path / "a" / "sample_0000.wav"
    stamp = wav.stat().st_mtime_ns
    run_sample(tiny_trained, priors["frames"], tmp_path / "a")  # a rerun: the same units, files kept
    assert wav.stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="other codes"):  # another temperature samples other units
        run_sample(tiny_trained, priors["frames"], tmp_path / "a", "temperature=0.5")


def test_a_prompted_sample_begins_with_exactly_the_prompts_units(tiny_trained, priors, tmp_path):
    first = next(iter(read_units(priors["units"])[1]))
    prompt = tmp_path / "prompt.jsonl"
    write_units(prompt, [first], UnitsMeta("jsonl", 1000.0, 16, 16000, None, False))
    got = run_sample(tiny_trained, priors["frames"], tmp_path / "out", f"prompt={prompt}", "prompt_seconds=0.02")
    assert sorted(got) == [f"{first.id}__cont00", f"{first.id}__cont01"]
    for units in got.values():
        assert np.array_equal(units[:20], first.units[:20]) and len(units) == 20 + 60
    rows = list(csv.DictReader(open(tmp_path / "out" / "samples.csv")))
    assert {(r["prompt"], r["prompt_frames"], r["continuation_starts_s"]) for r in rows} == {(first.id, "20", "0.02")}
    # an audio prompt: its units are the VQ-VAE's own (what extract gives)
    from audio_vq.manifest import read_manifest

    audio = read_manifest(tiny_trained / "data")[0]
    got = run_sample(
        tiny_trained,
        priors["frames"],
        tmp_path / "audio",
        f"prompt={audio.path}",
        "prompt_seconds=0.02",
        "num_samples=1",
    )
    extracted = {r.id: r.units for r in read_units(priors["units"])[1]}[audio.id]
    assert np.array_equal(got[f"{audio.id}__cont00"][:20], extracted[:20])


def test_a_duration_head_samples_render_to_the_expected_length(tiny_trained, priors, tmp_path):
    got = run_sample(tiny_trained, priors["dedup"], tmp_path / "out")
    assert all(len(u) == 60 for u in got.values())
    assert all(sf.info(tmp_path / "out" / f"{n}.wav").frames == 60 * TINY_HOP for n in got)


def test_a_prior_of_other_units_is_refused(tiny_trained, priors, tmp_path):
    records = list(read_units(priors["units"])[1])

    def prior_on(k, checksum, name):
        units = tmp_path / f"{name}.txt"
        write_units(units, records, UnitsMeta("gslm", 1000.0, k, 16000, checksum, False))
        cfg, folder = compose_run(
            "train_prior", [f"units={units}", f"hydra.run.dir={tmp_path / name}", *PRIOR, "train.max_steps=1"]
        )
        return train_prior.run(cfg, folder) / "prior"

    with pytest.raises(ConfigError, match=r"trained on K = 32 units, model=.* has K = 16"):
        run_sample(tiny_trained, prior_on(32, None, "k32"), tmp_path / "o")
    with pytest.raises(ConfigError, match=r"trained on the units of another model \(checksum 0000"):
        run_sample(tiny_trained, prior_on(16, "0" * 64, "other"), tmp_path / "o")
    with pytest.raises(ConfigError, match="speaker=nobody: unknown speaker"):
        run_sample(tiny_trained, priors["frames"], tmp_path / "o", "speaker=nobody")
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_a_prior_over_the_first_level_samples_a_residual_model(tiny_trained, tiny_residual, tmp_path):
    units = tmp_path / "units.jsonl"
    extract.extract(
        compose(
            "extract",
            [
                f"model={tiny_residual}",
                f"input={tiny_trained / 'data'}",
                f"output={units}",
                "format=jsonl",
                "num_workers=0",
            ],
            package=INFERENCE,
        )
    )
    cfg, folder = compose_run(
        "train_prior", [f"units={units}", f"hydra.run.dir={tmp_path / 'prior'}", "level=0", *PRIOR]
    )
    prior = train_prior.run(cfg, folder) / "prior"
    sample(
        compose(
            "sample",
            [
                f"prior={prior}",
                f"model={tiny_residual}",
                f"out={tmp_path / 'out'}",
                "speaker=spk01",
                "num_samples=1",
                "seconds=0.03",
                "chunk_seconds=0.5",
            ],
            package=INFERENCE,
        )
    )
    frames = round(0.03 * 16000 / TINY_HOP)
    assert sf.info(tmp_path / "out" / "sample_0000.wav").frames == frames * TINY_HOP  # its first level decodes alone


def test_a_hierarchy_samples_its_top_level_then_its_bottom_level_given_the_top(
    tiny_trained, tiny_hierarchical, tmp_path
):
    from tiny import HIERARCHY_RATIO as R

    units = tmp_path / "units.jsonl"
    extract.extract(
        compose(
            "extract",
            [
                f"model={tiny_hierarchical}",
                f"input={tiny_trained / 'data'}",
                f"output={units}",
                "format=jsonl",
                "num_workers=0",
            ],
            package=INFERENCE,
        )
    )
    priors = {}
    for name, levels in (("top", ["level=0"]), ("bottom", ["level=1", "condition_level=0"])):
        cfg, folder = compose_run(
            "train_prior",
            [
                f"units={units}",
                f"hydra.run.dir={tmp_path / name}",
                *levels,
                f"manifest={tiny_trained / 'data'}",
                *PRIOR,
            ],
        )
        priors[name] = train_prior.run(cfg, folder) / "prior"
    common = [f"model={tiny_hierarchical}", "speaker=spk01", "num_samples=2", "seconds=0.03", "chunk_seconds=0.5"]

    def run(out, *overrides):
        sample(compose("sample", [*common, f"out={out}", *overrides], package=INFERENCE))
        return {r.id: r.units for r in read_units(out / "units.txt")[1]}

    a = run(tmp_path / "a", f"prior={priors['top']}", f"bottom_prior={priors['bottom']}")
    frames = round(0.03 * 16000 / TINY_HOP)
    for name, codes in a.items():
        assert codes.shape == (2, frames)
        assert np.array_equal(codes[0], np.repeat(codes[0, ::R], R)[:frames])  # the top held over its frames
        assert sf.info(tmp_path / "a" / f"{name}.wav").frames == frames * TINY_HOP
    assert json.loads((tmp_path / "a" / "units.txt.meta.json").read_text())["frame_rates"] == [1000 / R, 1000]
    b = run(tmp_path / "b", f"prior={priors['top']}", f"bottom_prior={priors['bottom']}")
    assert all(np.array_equal(a[k], b[k]) for k in a)  # seeded by (seed, name)
    # a prompt is continued on both levels
    c = run(
        tmp_path / "c",
        f"prior={priors['top']}",
        f"bottom_prior={priors['bottom']}",
        f"prompt={units}",
        "prompt_seconds=0.01",
        "max_prompts=1",
    )
    first = next(iter(read_units(units)[1]))
    kept = 0.01 * 1000 // R * R
    assert all(np.array_equal(v[:, : int(kept)], first.frames()[:, : int(kept)]) for v in c.values())
    with pytest.raises(ConfigError, match="is a hierarchy: sampling needs prior= over its top level"):
        run(tmp_path / "d", f"prior={priors['top']}")
    with pytest.raises(ConfigError, match=r"models level 1 given level 0; sampling .* needs prior= over level 0"):
        run(tmp_path / "e", f"prior={priors['bottom']}", f"bottom_prior={priors['bottom']}")
    with pytest.raises(ConfigError, match="needs bottom_prior= over level 1 given level 0"):
        run(tmp_path / "f", f"prior={priors['top']}", f"bottom_prior={priors['top']}")


def test_a_pitch_model_samples_content_then_pitch_given_the_content(tiny_trained, tiny_pitch, tmp_path):
    """Two priors on a unit file with a pitch stream: content (level 0) and pitch given the
    content (level 1 condition_level 0). The samples hold both levels (pitch codes within the
    bins), render with a contour (fingerprinted), are seeded, continue a prompt's pitch stream
    too; a pitch model without pitch_prior, or pitch_prior over the content, is one line."""
    bins = 8
    units = tmp_path / "units.jsonl"
    model = tiny_pitch / "model"
    extract.extract(
        compose(
            "extract",
            [
                f"model={model}",
                f"input={tiny_trained / 'data'}",
                f"output={units}",
                "format=jsonl",
                "num_workers=0",
                f"pitch_bins={bins}",
            ],
            package=INFERENCE,
        )
    )
    priors = {}
    for name, levels in (("content", ["level=0"]), ("pitch", ["level=1", "condition_level=0"])):
        cfg, folder = compose_run(
            "train_prior",
            [
                f"units={units}",
                f"hydra.run.dir={tmp_path / name}",
                *levels,
                f"manifest={tiny_trained / 'data'}",
                *PRIOR,
            ],
        )
        priors[name] = train_prior.run(cfg, folder) / "prior"
    common = [
        f"model={model}",
        "speaker=spk01",
        "num_samples=2",
        "seconds=0.03",
        "chunk_seconds=0.5",
        f"prior={priors['content']}",
    ]

    def run(out, *overrides):
        sample(compose("sample", [*common, f"out={out}", *overrides], package=INFERENCE))
        return {r.id: r.units for r in read_units(out / "units.txt")[1]}

    a = run(tmp_path / "a", f"pitch_prior={priors['pitch']}")
    frames = round(0.03 * 16000 / TINY_HOP)
    for name, codes in a.items():
        assert codes.shape == (2, frames) and codes[1].min() >= 0 and codes[1].max() <= bins
        assert sf.info(tmp_path / "a" / f"{name}.wav").frames == frames * TINY_HOP
    meta = json.loads((tmp_path / "a" / "units.txt.meta.json").read_text())
    assert meta["pitch_bins"] == bins and meta["num_codebooks"] == 2
    record = json.loads((tmp_path / "a" / "fingerprint.json").read_text())["outputs"]
    assert all("f0" in r for r in record.values())
    b = run(tmp_path / "b", f"pitch_prior={priors['pitch']}")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = run(tmp_path / "c", f"pitch_prior={priors['pitch']}", f"prompt={units}", "prompt_seconds=0.3", "max_prompts=1")
    first = next(iter(read_units(units)[1])).frames()
    kept = 300  # 0.3 s at 1000 frames/s
    assert first[1, :kept].any()  # the prompt has voiced frames: a lost pitch prompt would show
    assert all(np.array_equal(v[:, :kept], first[:, :kept]) for v in c.values())  # both levels of the prompt
    with pytest.raises(ConfigError, match="is a pitch model .*sampling needs pitch_prior= over the pitch stream"):
        run(tmp_path / "d")
    with pytest.raises(
        ConfigError,
        match=r"pitch_prior=.*models level 0; sampling .* needs pitch_prior= over level 1 "
        r"given level 0",
    ):
        run(tmp_path / "e", f"pitch_prior={priors['content']}")
