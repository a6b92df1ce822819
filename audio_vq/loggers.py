"""Where a training run's curves and audio go: ``train.loggers`` names any of these, and each
gets the same rows of scalars and the same audio (written by rank 0 only).

    tensorboard   <run>/tensorboard/ event files
    csv           <run>/metrics.csv (a row per log step and per validation) and <run>/audio/*.wav
    wandb         Weights & Biases (the wandb extra), under <run>/wandb/; offline unless
                  train.wandb.mode=online (``wandb sync <run>/wandb/offline-run-*`` uploads later)
    mlflow        MLflow (the mlflow extra): train.mlflow.tracking_uri, by default a SQLite store
                  in <run>/mlflow.db with the artifacts in <run>/mlflow/

A resumed run goes on in the same logs: TensorBoard purges the steps after the checkpoint,
metrics.csv drops their rows, and W&B and MLflow continue the run whose id the run folder keeps.
Defining a subclass registers it in :data:`LOGGERS`.
"""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
from omegaconf import DictConfig, OmegaConf

from .atomic import atomic_write_text
from .config import flatten, optional_import

LOGGERS: dict[str, type["Logger"]] = {}
METRICS_CSV = "metrics.csv"


class Logger:
    """One destination of a run's scalars and audio."""

    name: ClassVar[str]
    package: ClassVar[str | None] = None  # the module it needs, from the extra named like the logger
    entries: ClassVar[tuple[str, ...]] = ()  # what it keeps in the run folder

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # a logger, not a base of some
            LOGGERS[cls.name] = cls

    @classmethod
    def check_available(cls) -> None:
        """ConfigError naming the extra when the logger's package is missing."""
        if cls.package is not None:
            optional_import(cls.package, cls.name, f"train.loggers={cls.name}")

    def __init__(self, run_dir: Path, cfg: DictConfig, fields: tuple[str, ...], resumed_at: int | None):
        self.run_dir, self.cfg, self.fields = run_dir, cfg, fields

    def scalars(self, step: int, split: str, row: dict) -> None:
        """``row``: column -> value of one log step (``split``: train or valid)."""

    def audio(self, step: int, tag: str, wave: np.ndarray, sample_rate: int) -> None:
        """``wave``: (T,) float32 in [-1, 1]; ``tag``: e.g. valid/generated."""

    def close(self) -> None:
        pass


def numbers(row: dict) -> dict[str, float]:
    """The row's numeric columns (what curves plot)."""
    return {
        k: float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


class TensorBoardLogger(Logger):
    name = "tensorboard"
    entries = ("tensorboard",)

    def __init__(self, run_dir, cfg, fields, resumed_at):
        super().__init__(run_dir, cfg, fields, resumed_at)
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resumed_at)

    def scalars(self, step, split, row):
        for k, v in numbers(row).items():
            self.tb.add_scalar(f"{split}/{k}", v, step)

    def audio(self, step, tag, wave, sample_rate):
        import torch

        self.tb.add_audio(tag, torch.from_numpy(np.asarray(wave, dtype=np.float32)).unsqueeze(0), step, sample_rate)

    def close(self):
        self.tb.close()


class CSVLogger(Logger):
    """metrics.csv (the task's columns, ``split`` and ``time_s`` among them) and the audio as wav
    files, ``audio/<tag>_<step>.wav``."""

    name = "csv"
    entries = (METRICS_CSV, "audio")

    def __init__(self, run_dir, cfg, fields, resumed_at):
        super().__init__(run_dir, cfg, fields, resumed_at)
        self.path = run_dir / METRICS_CSV
        self._truncate(resumed_at)

    def _truncate(self, resumed_at: int | None) -> None:
        """A resumed run repeats the steps after its checkpoint: drop their old rows, so the
        file holds each step once."""
        if resumed_at is None or not self.path.exists():
            atomic_write_text(self.path, ",".join(self.fields) + "\n")
            return
        with open(self.path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resumed_at]
        text = [",".join(self.fields)] + [",".join(r.get(k) or "" for k in self.fields) for r in rows]
        atomic_write_text(self.path, "\n".join(text) + "\n")

    def scalars(self, step, split, row):
        row = {**row, "step": step, "split": split}
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow(["" if row.get(k) is None else row.get(k, "") for k in self.fields])

    def audio(self, step, tag, wave, sample_rate):
        from .audio import save

        save(self.run_dir / "audio" / f"{tag.replace('/', '_')}_{step:08d}.wav", np.clip(wave, -1, 1), sample_rate)


class _Resumable(Logger):
    """A tracker run whose id the run folder keeps, so a resume continues it."""

    id_file: ClassVar[str]

    def _saved_id(self, resumed_at: int | None) -> str | None:
        path = self.run_dir / self.id_file
        return path.read_text().strip() if resumed_at is not None and path.is_file() else None

    def _keep_id(self, run_id: str) -> None:
        atomic_write_text(self.run_dir / self.id_file, run_id + "\n")

    def _config(self) -> dict:
        return flatten(OmegaConf.to_container(self.cfg, resolve=True))


class WandbLogger(_Resumable):
    name = "wandb"
    package = "wandb"
    id_file = "wandb_run_id"
    entries = ("wandb", id_file)

    def __init__(self, run_dir, cfg, fields, resumed_at):
        super().__init__(run_dir, cfg, fields, resumed_at)
        import wandb

        options = cfg.train.wandb
        saved = self._saved_id(resumed_at)
        self.run = wandb.init(
            project=options.project,
            entity=options.entity,
            mode=options.mode,
            dir=str(run_dir),
            name=run_dir.name,
            id=saved,
            resume="must" if saved else None,
            config=self._config(),
        )
        self._keep_id(self.run.id)
        self.wandb = wandb

    def scalars(self, step, split, row):
        self.run.log({f"{split}/{k}": v for k, v in numbers(row).items()}, step=step)

    def audio(self, step, tag, wave, sample_rate):
        clip = self.wandb.Audio(np.asarray(wave, dtype=np.float32), sample_rate=sample_rate)
        self.run.log({tag: clip}, step=step)

    def close(self):
        self.run.finish()


class MLflowLogger(_Resumable):
    name = "mlflow"
    package = "mlflow"
    id_file = "mlflow_run_id"
    STORE, ARTIFACTS = "mlflow.db", "mlflow"
    PARAMS_PER_BATCH, PARAM_CHARS = 100, 500  # MLflow's limits on a batch and a param's value
    entries = (STORE, ARTIFACTS, id_file)

    def __init__(self, run_dir, cfg, fields, resumed_at):
        super().__init__(run_dir, cfg, fields, resumed_at)
        from mlflow.tracking import MlflowClient

        options = cfg.train.mlflow
        uri = options.tracking_uri or f"sqlite:///{run_dir / self.STORE}"
        self.client = MlflowClient(tracking_uri=uri)
        saved = self._saved_id(resumed_at)
        if saved is None:
            experiment = self.client.get_experiment_by_name(options.experiment)
            experiment_id = (
                experiment.experiment_id
                if experiment is not None
                else self.client.create_experiment(
                    options.experiment,
                    artifact_location=None if options.tracking_uri else (run_dir / self.ARTIFACTS).as_uri(),
                )
            )
            run = self.client.create_run(experiment_id, run_name=run_dir.name)
            saved = run.info.run_id
            from mlflow.entities import Param

            params = [Param(key, str(value)[: self.PARAM_CHARS]) for key, value in self._config().items()]
            for i in range(0, len(params), self.PARAMS_PER_BATCH):  # MLflow's params: one per dotted key
                self.client.log_batch(saved, params=params[i : i + self.PARAMS_PER_BATCH])
        self.run_id = saved
        self._keep_id(saved)

    def scalars(self, step, split, row):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(f"{split}/{k}", v, now, step) for k, v in numbers(row).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def audio(self, step, tag, wave, sample_rate):
        import tempfile

        from .audio import save

        with tempfile.TemporaryDirectory() as folder:
            path = save(Path(folder) / f"{tag.replace('/', '_')}_{step:08d}.wav", np.clip(wave, -1, 1), sample_rate)
            self.client.log_artifact(self.run_id, str(path), artifact_path="audio")

    def close(self):
        self.client.set_terminated(self.run_id)


def open_loggers(names, run_dir: Path, cfg: DictConfig, fields: tuple[str, ...], resumed_at: int | None) -> list:
    """The loggers ``names`` (checked and imported before the run starts)."""
    for name in names:
        LOGGERS[name].check_available()
    return [LOGGERS[name](run_dir, cfg, fields, resumed_at) for name in names]


def run_entries() -> tuple[str, ...]:
    """What every logger may keep in a run folder."""
    return tuple(e for cls in LOGGERS.values() for e in cls.entries)


def forget(run_dir: Path) -> None:
    """Remove every logger's files from a run folder (a run started over)."""
    for name in run_entries():
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
