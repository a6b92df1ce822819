"""train-prior: every unit format trains through the shared loop, K and speakers are found,
an interrupted run resumes bit-identically, deduplicated units train a duration head."""
import json
import logging

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from audio_vq import train_prior
from audio_vq.config import ConfigError, compose_run
from audio_vq.manifest import Utterance, write_manifest
from audio_vq.unit_corpus import held_out, load_units
from audio_vq.unit_formats import FORMATS, Record, UnitsMeta, write_units

TINY = ["prior.dim=16", "prior.layers=1", "prior.heads=2", "prior.max_len=24", "train.batch_size=4",
        "train.log_every=1", "train.valid_every=2", "train.valid_batches=1", "train.checkpoint_every=3",
        "train.warmup_steps=1", "train.threads=1"]
SPEAKERS = ("ann", "bob")


def records(n=12, k=16):
    rng = np.random.default_rng(0)
    return [Record(f"{SPEAKERS[i % 2]}_{i:02d}", np.repeat(rng.integers(0, k, 20), rng.integers(1, 4, 20)))
            for i in range(n)]


def unit_file(tmp_path, fmt="gslm", meta=True):
    path = tmp_path / {"gslm": "u.txt", "textless": "u", "jsonl": "u.jsonl", "npz": "u.npz",
                       "zerospeech": "zs"}[fmt]
    write_units(path, records(), UnitsMeta(fmt, 100.0, 16, 16000, "abc", False),
                codebook=np.eye(16, dtype=np.float32) if fmt == "zerospeech" else None)
    return path


def config(tmp_path, units, *overrides, run="run"):
    return compose_run("train_prior", [f"units={units}", f"hydra.run.dir={tmp_path / run}", *TINY, *overrides])


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "zerospeech"])
def test_every_unit_format_trains_and_exports_a_prior(tmp_path, fmt):
    cfg, folder = config(tmp_path, unit_file(tmp_path, fmt), "train.max_steps=3")
    run = train_prior.run(cfg, folder)
    prior = run / "prior"
    assert sorted(p.name for p in prior.iterdir()) == ["checksum.sha256", "config.yaml", "model.safetensors",
                                                        "speakers.json"]
    import yaml
    saved = yaml.safe_load((prior / "config.yaml").read_text())
    assert saved["units"]["codebook_size"] == 16 and saved["units"]["k_source"] == "meta.json"
    assert saved["units"]["frame_rate"] == 100.0 and saved["units"]["model_checksum"] == "abc"
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,split,time_s,lr,loss,unit_loss,bits_per_unit") and len(rows) > 3


def test_zerospeech_features_are_refused_with_the_reason(tmp_path):
    cfg, folder = config(tmp_path, unit_file(tmp_path, "zerospeech"), "train.max_steps=1")
    with pytest.raises(ConfigError, match="needs the model's codebook"):
        train_prior.run(cfg, folder)


def test_k_comes_from_meta_then_the_dictionary_then_the_largest_unit(tmp_path):
    (tmp_path / "u.txt").write_text("a|1 2 3\nb|5 5 1\n")  # GSLM lines from another toolkit: no meta.json
    assert (load_units(str(tmp_path / "u.txt"), False).codebook_size,
            load_units(str(tmp_path / "u.txt"), False).k_source) == (6, "max unit + 1")
    (tmp_path / "dict.km.txt").write_text("".join(f"{k} 1\n" for k in range(50)))
    corpus = load_units(str(tmp_path / "u.txt"), False)
    assert (corpus.codebook_size, corpus.k_source) == (50, "dict.km.txt")
    with pytest.raises(ConfigError, match=r"unit 5 is outside 0..3 \(K = 4 from codebook_size=\)"):
        load_units(str(tmp_path / "u.txt"), False, codebook_size=4)


def test_speakers_come_from_a_manifest_and_the_split_is_seeded_by_id(tmp_path, caplog):
    units = unit_file(tmp_path)
    utts = [Utterance(r.id, f"{r.id}.wav", r.id.split("_")[0], 100, 16000, "train") for r in records()]
    write_manifest(tmp_path / "data", utts)
    cfg, folder = config(tmp_path, units, f"manifest={tmp_path / 'data'}", "train.max_steps=2")
    with caplog.at_level(logging.INFO, logger="audio_vq"):
        run = train_prior.run(cfg, folder)
    assert json.loads((run / "prior" / "speakers.json").read_text()) == {"ann": 0, "bob": 1}
    assert any("2 speakers" in r.message for r in caplog.records)
    write_manifest(tmp_path / "other", utts[1:])
    cfg, folder = config(tmp_path, units, f"manifest={tmp_path / 'other'}", "train.max_steps=2", run="r2")
    with pytest.raises(ConfigError, match="no utterance 'ann_00'"):
        train_prior.run(cfg, folder)
    ids = [r.id for r in records()]
    marks = dict(zip(ids, held_out(ids, 0.3, 0)))
    assert dict(zip(ids[::-1], held_out(ids[::-1], 0.3, 0))) == marks and 0 < sum(marks.values()) < len(ids)


def test_an_interrupted_prior_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    units = unit_file(tmp_path)
    cfg, folder = config(tmp_path, units, "train.max_steps=8", run="straight")
    train_prior.run(cfg, folder)
    cfg, folder = config(tmp_path, units, "train.max_steps=8", run="killed")
    train_prior.run(cfg, folder, stop_at_step=5)  # killed after step 5: the checkpoint of step 3 remains
    cfg, folder = config(tmp_path, units, "train.max_steps=8", "train.resume=true", run="killed")
    train_prior.run(cfg, folder)
    a, b = (load_file(str(tmp_path / r / "prior" / "model.safetensors")) for r in ("straight", "killed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_deduplicated_units_train_a_duration_head(tmp_path):
    cfg, folder = config(tmp_path, unit_file(tmp_path, "jsonl"), "deduplicate=true", "train.max_steps=2")
    run = train_prior.run(cfg, folder)
    import yaml
    assert yaml.safe_load((run / "prior" / "config.yaml").read_text())["prior"]["duration_head"] is True
    header = (run / "metrics.csv").read_text().splitlines()
    assert header[1].split(",")[header[0].split(",").index("duration_loss")] != ""
    lossy = tmp_path / "lossy.txt"
    write_units(lossy, records(), UnitsMeta("gslm", 100.0, 16, 16000, None, True))  # runs collapsed, lengths lost
    cfg, folder = config(tmp_path, lossy, "deduplicate=true", run="r3")
    with pytest.raises(ConfigError, match="without durations"):
        train_prior.run(cfg, folder)
