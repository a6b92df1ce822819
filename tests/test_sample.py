"""sample: speech from a prior, rendered by the VQ-VAE; prompts, lengths, mismatches, reruns."""
import csv
import json

import numpy as np
import pytest
import soundfile as sf

from audio_vq import extract, train_prior
from audio_vq.config import ConfigError, compose, compose_run
from audio_vq.sample import sample
from audio_vq.unit_formats import UnitsMeta, read_units, write_units

from tiny import INFERENCE, TINY_HOP

PRIOR = ["prior.dim=16", "prior.layers=1", "prior.heads=2", "prior.max_len=40", "train.batch_size=4",
         "train.max_steps=4", "train.valid_every=100", "train.checkpoint_every=100", "train.threads=1"]


@pytest.fixture(scope="module")
def priors(tiny_trained, tmp_path_factory):
    """The tiny VQ-VAE's units, and priors on them: frame-level with speakers, and deduplicated."""
    root = tmp_path_factory.mktemp("priors")
    units = root / "units.jsonl"
    extract.extract(compose("extract", [f"model={tiny_trained / 'run' / 'model'}", f"input={tiny_trained / 'data'}",
                                        f"output={units}", "format=jsonl", "num_workers=0"], package=INFERENCE))
    out = {"units": units}
    for name, extra in (("frames", [f"manifest={tiny_trained / 'data'}"]), ("dedup", ["deduplicate=true"])):
        cfg, folder = compose_run("train_prior", [f"units={units}", f"hydra.run.dir={root / name}", *PRIOR, *extra])
        out[name] = train_prior.run(cfg, folder) / "prior"
    return out


def run_sample(tiny_trained, prior, out, *overrides):
    sample(compose("sample", [f"prior={prior}", f"model={tiny_trained / 'run' / 'model'}", f"out={out}",
                              "speaker=spk01", "num_samples=2", "seconds=0.06", "chunk_seconds=0.5", *overrides],
                   package=INFERENCE))
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
    got = run_sample(tiny_trained, priors["frames"], tmp_path / "audio", f"prompt={audio.path}", "prompt_seconds=0.02",
                     "num_samples=1")
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
        cfg, folder = compose_run("train_prior", [f"units={units}", f"hydra.run.dir={tmp_path / name}", *PRIOR,
                                                  "train.max_steps=1"])
        return train_prior.run(cfg, folder) / "prior"

    with pytest.raises(ConfigError, match=r"trained on K = 32 units, model=.* has K = 16"):
        run_sample(tiny_trained, prior_on(32, None, "k32"), tmp_path / "o")
    with pytest.raises(ConfigError, match=r"trained on the units of another model \(checksum 0000"):
        run_sample(tiny_trained, prior_on(16, "0" * 64, "other"), tmp_path / "o")
    with pytest.raises(ConfigError, match="speaker=nobody: unknown speaker"):
        run_sample(tiny_trained, priors["frames"], tmp_path / "o", "speaker=nobody")
    assert not (tmp_path / "o").exists()  # refused before anything was written
