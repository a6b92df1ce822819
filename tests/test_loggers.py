"""train.loggers: TensorBoard, metrics.csv, W&B (offline) and MLflow (a local SQLite store) get the
same scalars and the same audio, each read back with its own tool."""

import csv
import struct
import sys
from pathlib import Path

import pytest
import soundfile as sf

from audio_vq.config import ConfigError, compose, compose_run
from audio_vq.stages import prepare, train

from tiny import TINY

STEPS = 4
EVERY = ["train.log_every=1", "train.valid_every=2", "train.audio_every=2", "train.valid_batches=1"]


@pytest.fixture(scope="module")
def data(tiny_trained, tmp_path_factory):
    """tiny_trained's corpus with a valid split (its own manifest has none): validation and audio."""
    out = tmp_path_factory.mktemp("valid") / "data"
    keys = ["corpus=synthetic", f"root={tiny_trained / 'synthetic'}", f"out={out}", "corpus.minutes=1.0"]
    prepare.run(compose("prepare", [*keys, "corpus.num_speakers=4", "num_workers=0", "split.valid=0.25"]))
    return out


def run(data, run_dir, *overrides):
    cfg, folder = compose_run("train", [f"data.manifest={data}", f"hydra.run.dir={run_dir}", *TINY, *EVERY, *overrides])
    return train.run(cfg, folder)


def csv_rows(run_dir, split):
    with open(run_dir / "metrics.csv", newline="") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f) if r["split"] == split}


def tensorboard_scalars(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "audio": 0})
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)}, events.Tags()["audio"]


def wandb_history(run_dir):
    """The history rows of the offline W&B run, read from its transaction log (LevelDB's log
    format under a 7-byte W&B header) with W&B's own protobuf records: what `wandb sync` uploads."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    data, records, pending = path.read_bytes(), [], b""
    block, pos = 32768, 7
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            records.append(pending)
            pending = b""
        elif kind == 0:
            break
    history = []
    for raw in records:
        record = pb.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            history.append({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
    return history


@pytest.fixture(scope="module")
def logged(data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("loggers") / "run"
    run(data, run_dir, f"train.max_steps={STEPS}", "train.loggers=[tensorboard,csv,wandb,mlflow]")
    return run_dir


def test_every_logger_gets_the_same_train_and_valid_scalars(logged):
    """Catches a logger given other rows, other steps or the wrong split."""
    import mlflow

    train_loss, valid_loss = csv_rows(logged, "train"), csv_rows(logged, "valid")
    assert sorted(train_loss) == list(range(1, STEPS + 1)) and sorted(valid_loss) == [2, 4]
    board, audio = tensorboard_scalars(logged, "train/loss")
    assert board == pytest.approx(train_loss) and tensorboard_scalars(logged, "valid/loss")[0] == pytest.approx(
        valid_loss
    )
    history = [row for row in wandb_history(logged) if "train/loss" in row or "valid/loss" in row]
    steps = {int(float(row["_step"])): row for row in history}
    assert {s: float(r["train/loss"]) for s, r in steps.items() if "train/loss" in r} == pytest.approx(train_loss)
    assert {s: float(r["valid/loss"]) for s, r in steps.items() if "valid/loss" in r} == pytest.approx(valid_loss)
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{logged / 'mlflow.db'}")
    run_id = (logged / "mlflow_run_id").read_text().strip()
    for split, want in (("train", train_loss), ("valid", valid_loss)):
        got = {m.step: m.value for m in client.get_metric_history(run_id, f"{split}/loss")}
        assert got == pytest.approx(want)
    assert client.get_run(run_id).data.params["train.max_steps"] == str(STEPS)


def test_every_logger_gets_the_audio(logged):
    import mlflow

    _, audio_tags = tensorboard_scalars(logged, "train/loss")
    assert set(audio_tags) == {"valid/original", "valid/generated"}
    wavs = sorted(p.name for p in (logged / "audio").iterdir())
    assert wavs == ["valid_generated_00000002.wav", "valid_generated_00000004.wav", "valid_original_00000002.wav"]
    assert sf.info(logged / "audio" / wavs[0]).samplerate == 16_000
    media = sorted(p.name.split("_")[0] for p in (logged / "wandb").glob("offline-run-*/files/media/audio/valid/*.wav"))
    assert media == ["generated", "generated", "original"]
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{logged / 'mlflow.db'}")
    run_id = (logged / "mlflow_run_id").read_text().strip()
    assert sorted(Path(a.path).name for a in client.list_artifacts(run_id, "audio")) == wavs
    assert all(a.path.startswith("audio/") for a in client.list_artifacts(run_id, "audio"))
    assert (logged / "mlflow").is_dir()  # the artifacts stay in the run folder, not the working directory


def test_a_resume_continues_the_same_tracker_runs(data, tmp_path):
    loggers = "train.loggers=[csv,wandb,mlflow]"
    run(data, tmp_path / "run", "train.max_steps=2", loggers)
    ids = [(tmp_path / "run" / name).read_text() for name in ("wandb_run_id", "mlflow_run_id")]
    run(data, tmp_path / "run", "train.max_steps=4", "train.resume=true", loggers)
    assert [(tmp_path / "run" / name).read_text() for name in ("wandb_run_id", "mlflow_run_id")] == ids
    assert len(list((tmp_path / "run" / "wandb").glob("offline-run-*"))) >= 1
    assert sorted(csv_rows(tmp_path / "run", "train")) == [1, 2, 3, 4]


def test_a_logger_whose_extra_is_missing_fails_before_training(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ConfigError, match=r"train.loggers=wandb needs wandb: pip install 'audio_vq\[wandb\]'"):
        run(data, tmp_path / "run", "train.max_steps=1", "train.loggers=[csv,wandb]")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"train.loggers=\['comet'\]: expected a list of tensorboard \| csv"):
        run(data, tmp_path / "run", "train.loggers=[comet]")
