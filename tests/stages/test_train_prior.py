"""train-prior: every unit format trains through the shared loop, K and speakers are found,
the train / valid / test split, the export of the best validation step, an interrupted run
resumes bit-identically, deduplicated units train a duration head."""

import csv
import json
import logging

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from audio_vq.config import ConfigError, compose, compose_run
from audio_vq.manifest import Utterance, write_manifest
from audio_vq.stages import train_prior
from audio_vq.units.corpus import held_out, load_units, split_roles
from audio_vq.units.formats import FORMATS, WRITERS, Record, UnitsMeta, write_units

TINY = [
    "prior.dim=16",
    "prior.layers=1",
    "prior.heads=2",
    "prior.max_len=24",
    "train.batch_size=4",
    "train.log_every=1",
    "train.valid_every=2",
    "train.valid_batches=1",
    "train.checkpoint_every=3",
    "train.warmup_steps=1",
    "train.threads=1",
]
SPEAKERS = ("ann", "bob")


def records(n=12, k=16):
    rng = np.random.default_rng(0)
    return [
        Record(f"{SPEAKERS[i % 2]}_{i:02d}", np.repeat(rng.integers(0, k, 20), rng.integers(1, 4, 20)))
        for i in range(n)
    ]


def unit_file(tmp_path, fmt="gslm", meta=True):
    path = tmp_path / ("zs" if fmt == "zerospeech" else "u" + WRITERS[fmt].suffix)
    write_units(
        path,
        records(),
        UnitsMeta(fmt, 100.0, 16, 16000, "abc", False),
        codebook=np.eye(16, dtype=np.float32) if fmt == "zerospeech" else None,
    )
    return path


def config(tmp_path, units, *overrides, run="run"):
    return compose_run("train_prior", [f"units={units}", f"hydra.run.dir={tmp_path / run}", *TINY, *overrides])


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "zerospeech"])
def test_every_unit_format_trains_and_exports_a_prior(tmp_path, fmt):
    cfg, folder = config(tmp_path, unit_file(tmp_path, fmt), "train.max_steps=3")
    run = train_prior.run(cfg, folder)
    prior = run / "prior"
    assert sorted(p.name for p in prior.iterdir()) == [
        "checksum.sha256",
        "config.yaml",
        "model.safetensors",
        "speakers.json",
    ]
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
    assert (
        load_units(str(tmp_path / "u.txt"), False).codebook_size,
        load_units(str(tmp_path / "u.txt"), False).k_source,
    ) == (6, "max unit + 1")
    (tmp_path / "dict.km.txt").write_text("".join(f"{k} 1\n" for k in range(50)))
    corpus = load_units(str(tmp_path / "u.txt"), False)
    assert (corpus.codebook_size, corpus.k_source) == (50, "dict.km.txt")
    with pytest.raises(ConfigError, match=r"unit 5 is outside 0..3 \(K = 4 from codebook_size=\)"):
        load_units(str(tmp_path / "u.txt"), False, codebook_size=4)


def hierarchy_file(tmp_path, n=12, span=4):
    """A jsonl file of two levels as a hierarchy's extraction writes them: level 0 (the top) at
    100 / span Hz held over its span, level 1 at 100 Hz; returns (path, the top codes)."""
    rng = np.random.default_rng(1)
    tops = [rng.integers(0, 16, 6) for _ in range(n)]
    recs = [
        Record(f"{SPEAKERS[i % 2]}_{i:02d}", np.stack([np.repeat(t, span)[:22], rng.integers(0, 16, 22)]))
        for i, t in enumerate(tops)
    ]
    write_units(
        tmp_path / "h.jsonl",
        recs,
        UnitsMeta("jsonl", 100.0, 16, 16000, "abc", False, num_codebooks=2, frame_rates=[100.0 / span, 100.0]),
    )
    return tmp_path / "h.jsonl", {r.id: np.repeat(t, span)[:22][::span] for r, t in zip(recs, tops)}


def test_a_file_of_several_codebooks_needs_a_level(tmp_path):
    write_units(
        tmp_path / "u.txt",
        [Record("a", np.array([[1, 2], [3, 4]]))],
        UnitsMeta("gslm", 100.0, 16, 16000, None, False, num_codebooks=2),
    )
    with pytest.raises(ConfigError, match=r"units=.*u.txt: 2 codebooks per frame; a prior models one: give level="):
        load_units(str(tmp_path / "u.txt"), False)
    with pytest.raises(ConfigError, match=r"level=2: .* has 2 codebook\(s\): give 0 .. 1"):
        load_units(str(tmp_path / "u.txt"), False, level=2)
    assert load_units(str(tmp_path / "u.txt"), False, level=1).units[0].tolist() == [3, 4]


def test_a_level_is_read_at_its_own_rate(tmp_path):
    path, tops = hierarchy_file(tmp_path)
    top = load_units(str(path), False, level=0)
    assert top.frame_rate == 25.0 and top.level == 0
    assert all(np.array_equal(u, tops[i]) for i, u in zip(top.ids, top.units))  # one unit per top code, 6 each
    assert all(len(u) == 6 for u in top.units)
    bottom = load_units(str(path), True, level=1)
    assert bottom.frame_rate == 100.0 and sum(bottom.durations[0]) == 22
    # a file whose level 0 is not held as its frame_rates say is refused, naming the utterance
    write_units(
        tmp_path / "bad.jsonl",
        [Record("x", np.array([[1, 2, 1, 1], [0, 0, 0, 0]]))],
        UnitsMeta("jsonl", 100.0, 16, 16000, None, False, num_codebooks=2, frame_rates=[50.0, 100.0]),
    )
    with pytest.raises(ConfigError, match="utterance x: level 0 does not hold one code over each group of 2 frames"):
        load_units(str(tmp_path / "bad.jsonl"), False, level=0)


def test_a_prior_over_the_top_level_records_its_level_and_rate(tmp_path):
    path, _ = hierarchy_file(tmp_path)
    cfg, folder = config(tmp_path, path, "level=0", "train.max_steps=2")
    run = train_prior.run(cfg, folder)
    units = yaml.safe_load((run / "prior" / "config.yaml").read_text())["units"]
    assert units["level"] == 0 and units["frame_rate"] == 25.0
    # evaluate-prior scores the same level of the held-out utterances, per second at its rate
    from audio_vq.stages.evaluate.prior_report import evaluate_prior

    evaluate_prior(
        compose(
            "evaluate_prior",
            [f"prior={run / 'prior'}", f"out={tmp_path / 'ev'}", "num_samples=2"],
            package="audio_vq.configs.inference",
        )
    )
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["bits"]["prior"]["bits_per_second"] == pytest.approx(report["bits"]["prior"]["bits_per_unit"] * 25)
    assert report["frame_rate"] == 25.0
    cfg, folder = config(tmp_path, path, "train.max_steps=2", run="no_level")
    with pytest.raises(ConfigError, match="give level="):
        train_prior.run(cfg, folder)


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


def test_the_test_split_is_never_validated_on_and_stays_the_seeded_held_out_ids():
    ids = [f"u{i:03d}" for i in range(200)]
    roles = split_roles(ids, 0, 0.1, 0.2)
    assert [r == "test" for r in roles] == held_out(ids, 0.1, 0)  # the held-out ids of priors before the valid split
    assert 0 < roles.count("valid") < roles.count("train")
    assert dict(zip(ids[::-1], split_roles(ids[::-1], 0, 0.1, 0.2))) == dict(zip(ids, roles))
    filed = split_roles(ids, 0, 0.1, 0.2, valid_ids={"u000", "u001", "zzz"})
    assert [i for i, r in zip(ids, filed) if r == "valid"] == ["u000", "u001"] and "test" in filed
    assert split_roles(ids, 0, 0.1, 0.0).count("valid") == 0
    with pytest.raises(ConfigError, match="share 1 id"):
        split_roles(ids, 0, 0.1, 0.2, test_ids={"u005", "u006"}, valid_ids={"u006"})


def test_keep_best_exports_the_step_with_the_lowest_validation_loss(tmp_path):
    rng = np.random.default_rng(0)  # independent uniform units: anything learnt beyond the unigram is overfitting
    units = tmp_path / "iid.txt"
    write_units(
        units,
        [Record(f"u{i:02d}", rng.integers(0, 16, 23)) for i in range(12)],
        UnitsMeta("gslm", 100.0, 16, 16000, None, False),
    )
    cfg, folder = config(
        tmp_path,
        units,
        "train.max_steps=30",
        "train.lr=1e-2",
        "prior.dropout=0",
        "prior.dim=32",
        "train.keep_checkpoints=100",
        "train.checkpoint_every=1000",
    )
    run = train_prior.run(cfg, folder)
    rows = csv.DictReader(open(run / "metrics.csv"))
    valid = {int(r["step"]): float(r["loss"]) for r in rows if r["split"] == "valid"}
    best = min(valid, key=valid.get)
    assert best < 30 and valid[30] > valid[best]  # it overfits, so the last step is not the best
    assert yaml.safe_load((run / "prior" / "config.yaml").read_text())["exported_step"] == best
    exported = load_file(str(run / "prior" / "model.safetensors"))

    def weights(step):
        state = torch.load(run / "checkpoints" / f"step_{step:08d}.pt", weights_only=True)["model"]
        return {k.removeprefix("prior."): v for k, v in state.items()}

    assert all(torch.equal(exported[k], weights(best)[k]) for k in exported)
    assert not all(torch.equal(exported[k], weights(30)[k]) for k in exported)
    cfg, folder = config(
        tmp_path,
        units,
        "train.max_steps=30",
        "train.lr=1e-2",
        "prior.dropout=0",
        "prior.dim=32",
        "train.keep_best=false",
        run="last",
    )
    last = train_prior.run(cfg, folder)
    assert yaml.safe_load((last / "prior" / "config.yaml").read_text())["exported_step"] == 30


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
    steps = [
        yaml.safe_load((tmp_path / r / "prior" / "config.yaml").read_text())["exported_step"]
        for r in ("straight", "killed")
    ]  # keep_best (train=prior) picks the same step after the resume
    assert steps[0] == steps[1]


def test_deduplicated_units_train_a_duration_head(tmp_path):
    cfg, folder = config(tmp_path, unit_file(tmp_path, "jsonl"), "deduplicate=true", "train.max_steps=2")
    run = train_prior.run(cfg, folder)
    assert yaml.safe_load((run / "prior" / "config.yaml").read_text())["prior"]["duration_head"] is True
    header = (run / "metrics.csv").read_text().splitlines()
    assert header[1].split(",")[header[0].split(",").index("duration_loss")] != ""
    lossy = tmp_path / "lossy.txt"
    write_units(lossy, records(), UnitsMeta("gslm", 100.0, 16, 16000, None, True))  # runs collapsed, lengths lost
    cfg, folder = config(tmp_path, lossy, "deduplicate=true", run="r3")
    with pytest.raises(ConfigError, match="without durations"):
        train_prior.run(cfg, folder)


def test_a_prior_over_the_bottom_level_given_the_top(tmp_path):
    path, tops = hierarchy_file(tmp_path)
    corpus = load_units(str(path), False, level=1, condition_level=0)
    assert corpus.frame_rate == 100.0 and all(len(c) == len(u) == 22 for c, u in zip(corpus.conditions, corpus.units))
    assert all(np.array_equal(c[::4], tops[i]) for i, c in zip(corpus.ids, corpus.conditions))  # each frame's top
    with pytest.raises(ConfigError, match="frame-level units"):
        load_units(str(path), True, level=1, condition_level=0)
    with pytest.raises(ConfigError, match="do not span whole units of level=0"):  # the top given the finer bottom
        load_units(str(path), False, level=0, condition_level=1)
    with pytest.raises(ConfigError, match="give another level than level=1"):
        load_units(str(path), False, level=1, condition_level=1)
    cfg, folder = config(tmp_path, path, "level=1", "condition_level=0", "train.max_steps=2")
    run = train_prior.run(cfg, folder)
    config_ = yaml.safe_load((run / "prior" / "config.yaml").read_text())
    assert config_["units"]["condition_level"] == 0 and config_["prior"]["condition_size"] == 16
    from audio_vq.stages.evaluate.prior_report import evaluate_prior

    evaluate_prior(
        compose(
            "evaluate_prior",
            [f"prior={run / 'prior'}", f"out={tmp_path / 'ev'}", "num_samples=2"],
            package="audio_vq.configs.inference",
        )
    )
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["condition_level"] == 0 and report["level"] == 1 and report["samples"]["length"] == 22
