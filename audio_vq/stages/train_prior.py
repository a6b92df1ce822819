"""`audio-vq train-prior`: the prior over a VQ-VAE's units (models/prior.py), trained through
the shared loop (trainer.py) on a unit file, exported to ``<run>/prior/``.

    units=<unit file> [test=<unit file> | test_fraction] [valid=<unit file> | valid_fraction]
    [manifest=<manifest>: speakers]
      -> UnitCorpus (K from meta.json / dict.km.txt / max + 1), split by id into train, valid
         (validation; train.keep_best exports its best step) and test (left for evaluate-prior)
      -> random crops of prior.max_len - 1 units -> next-unit cross-entropy [+ run lengths when deduplicated]
      -> <run>/prior/: model.safetensors, config.yaml (prior args, the units' K, frame rate,
         model checksum, deduplicated, the split), speakers.json, checksum.sha256
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

import torch
from omegaconf import DictConfig, OmegaConf

from ..checkpoint import save_model_dir
from ..config import ConfigError
from ..distributed import Context
from ..memory import check_fits
from ..models.prior import UnitPrior
from ..options import TrainPriorOptions, validate
from ..trainer import EpochBatches, Task, check_loggers, fit, init_loader_worker
from ..units.corpus import UnitCorpus, UnitCrops, collate_units, load_units, speakers_of, split_corpus

log = logging.getLogger(__name__)

PRIOR_DIR = "prior"
PRIOR_METRICS = ("loss", "unit_loss", "bits_per_unit", "duration_loss")


class PriorTask(Task):
    """Crops of unit sequences -> the prior's loss; exports the prior directory."""

    metric_fields = PRIOR_METRICS
    rate_name = "units_per_s"
    export_dir = PRIOR_DIR

    def __init__(
        self,
        cfg: DictConfig,
        train: UnitCorpus,
        valid: UnitCorpus,
        speakers: dict[str, int],
        train_speakers: list[int] | None,
        valid_speakers: list[int] | None,
    ):
        self.cfg, self.train, self.valid = cfg, train, valid
        self.speakers, self.train_speakers, self.valid_speakers = speakers, train_speakers, valid_speakers
        self.length = cfg.prior.max_len - 1  # the start token takes a position

    def prior_args(self) -> dict:
        p = self.cfg.prior
        return {
            "codebook_size": self.train.codebook_size,
            "dim": p.dim,
            "layers": p.layers,
            "heads": p.heads,
            "max_len": p.max_len,
            "num_speakers": len(self.speakers),
            "dropout": p.dropout,
            "duration_head": bool(self.cfg.deduplicate),
            "max_duration": p.max_duration,
            "condition_size": self.train.condition_size if self.train.conditions is not None else 0,
        }

    def build(self, ctx: Context) -> "_PriorLoss":
        return _PriorLoss(_build(self.prior_args()))

    def loader(self, start_batch: int, ctx: Context, workers: int) -> Iterator[dict]:
        tc = self.cfg.train
        crops = UnitCrops(self.train, self.train_speakers, self.length, tc.seed)
        batches = EpochBatches(
            len(crops), tc.batch_size, tc.seed, ctx.rank, ctx.world, start=start_batch, what="unit sequences"
        )
        return iter(
            torch.utils.data.DataLoader(
                crops,
                batch_sampler=batches,
                collate_fn=collate_units,
                num_workers=workers,
                persistent_workers=workers > 0,
                worker_init_fn=init_loader_worker,
                generator=torch.Generator().manual_seed(tc.seed),
            )
        )

    def valid_batches(self) -> list[dict]:
        crops = UnitCrops(self.valid, self.valid_speakers, self.length, self.cfg.train.seed, fixed=True)
        size = self.cfg.train.batch_size
        count = min(len(crops), self.cfg.train.valid_batches * size)
        return [collate_units([crops[i] for i in range(s, min(s + size, count))]) for s in range(0, count, size)]

    def step_loss(self, forward, batch: dict, ctx: Context):
        loss, metrics = _loss(forward, batch, ctx)
        return loss, metrics, float(batch["lengths"].sum())

    def validate(self, model: "_PriorLoss", batches: list[dict], ctx: Context, precision) -> dict:
        totals: dict[str, float] = {}
        units = sum(int(b["lengths"].sum()) for b in batches)
        for batch in batches:  # weighted by units, so the mean is per unit over the whole split
            _, metrics = _loss(model, batch, ctx)
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + float(v) * int(batch["lengths"].sum()) / units
        return totals

    def export(self, model: "_PriorLoss", directory: Path, step: int) -> None:
        config = {
            "prior": self.prior_args(),
            "units": {
                "codebook_size": self.train.codebook_size,
                "k_source": self.train.k_source,
                "frame_rate": self.train.frame_rate,
                "model_checksum": self.train.model_checksum,
                "deduplicated": bool(self.cfg.deduplicate),
                "source": self.train.path,
                "level": self.train.level,
                "condition_level": self.train.condition_level,
            },
            "split": {
                "test": self.cfg.test,
                "test_fraction": self.cfg.test_fraction,
                "valid": self.cfg.valid,
                "valid_fraction": self.cfg.valid_fraction,
                "seed": self.cfg.train.seed,
                "manifest": self.cfg.manifest,
            },
            "train": OmegaConf.to_container(self.cfg.train, resolve=True),
            "exported_step": step,
        }
        save_model_dir(model.prior, config, self.speakers, directory)

    def describe(self, model: "_PriorLoss", ctx: Context) -> str:
        return (
            f"prior: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, K={self.train.codebook_size} "
            f"({self.train.k_source}), {len(self.speakers)} speakers; {len(self.train.ids)} train / "
            f"{len(self.valid.ids)} valid utterances (test split left out), crops of {self.length} units"
        )

    def postfix(self, row: dict) -> dict:
        return {"bits": f"{row['bits_per_unit']:.3f}", "units_per_s": f"{row['units_per_s']:.0f}"}


class _PriorLoss(torch.nn.Module):
    """The prior with its loss as forward: what the loop wraps in DDP (whose gradient sync
    needs the forward called through it)."""

    def __init__(self, prior: UnitPrior):
        super().__init__()
        self.prior = prior

    def forward(self, units, lengths, speakers=None, durations=None, condition=None):
        return self.prior.loss(units, lengths, speakers, durations, condition)


def _loss(forward, batch: dict, ctx: Context):
    def on_device(name):
        return None if batch.get(name) is None else batch[name].to(ctx.device)

    return forward(
        batch["units"].to(ctx.device),
        batch["lengths"].to(ctx.device),
        on_device("speaker"),
        on_device("durations"),
        on_device("condition"),
    )


def _build(args: dict) -> UnitPrior:
    try:
        return UnitPrior(**args)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"prior: {' '.join(str(e).split())}") from None


def main(cfg: DictConfig, run_folder: str) -> int:
    """`audio-vq train-prior`."""
    run(cfg, run_folder)
    return 0


def run(
    cfg: DictConfig, run_folder: str | os.PathLike, ctx: Context | None = None, stop_at_step: int | None = None
) -> Path:
    """Train the prior per ``cfg`` into ``run_folder``; returns the run folder."""
    _check_config(cfg)
    task = _task(cfg)
    run_dir = fit(cfg, run_folder, task, ctx, stop_at_step)
    log.info("prior directory: %s", run_dir / PRIOR_DIR)
    return run_dir


def _check_config(cfg: DictConfig) -> None:
    validate(cfg, TrainPriorOptions)
    check_loggers(cfg)


def _task(cfg: DictConfig) -> PriorTask:
    corpus = load_units(
        cfg.units, cfg.deduplicate, cfg.codebook_size, level=cfg.level, condition_level=cfg.condition_level
    )
    log.info(
        "units: %d utterance(s), K = %d (from %s)%s",
        len(corpus.ids),
        corpus.codebook_size,
        corpus.k_source,
        f", {corpus.frame_rate:g} frames/s" if corpus.frame_rate else "",
    )
    parts = split_corpus(
        corpus, cfg.deduplicate, cfg.train.seed, cfg.test_fraction, cfg.valid_fraction, cfg.test, cfg.valid
    )
    train, valid = parts["train"], parts["valid"]
    if not train.ids:
        raise ConfigError(
            f"units={cfg.units}: {len(corpus.ids)} utterance(s), none left to train on after the "
            "test and valid splits (lower test_fraction / valid_fraction)"
        )
    log.info(
        "split: %d train, %d valid, %d test utterances (the test split is left for evaluate-prior)",
        len(train.ids),
        len(valid.ids),
        len(parts["test"].ids),
    )
    speaker_of = dict(zip(corpus.ids, speakers_of(corpus, cfg.manifest)))  # every id, so a missing one stops here
    train_names = [speaker_of[i] for i in train.ids]
    valid_names = speakers_of(valid, cfg.manifest) if cfg.valid is not None else [speaker_of[i] for i in valid.ids]
    speakers = {s: i for i, s in enumerate(sorted({n for n in train_names if n is not None}))}
    if cfg.manifest is not None:
        unknown = sorted({n for n in valid_names if n not in speakers})
        if unknown:  # a valid utterance of a speaker with no start token: it is left out
            log.warning("valid speakers not in the train split: %s (their utterances are left out)", ", ".join(unknown))
            keep = [i for i, n in enumerate(valid_names) if n in speakers]
            valid, valid_names = valid.subset(keep), [valid_names[i] for i in keep]
    index = (lambda ns: [speakers[n] for n in ns]) if speakers else (lambda ns: None)
    task = PriorTask(cfg, train, valid, speakers, index(train_names), index(valid_names))
    # K comes from the units: only now is the prior's size known
    check_fits(
        lambda: task.build(Context()),
        {"prior": OmegaConf.to_container(cfg.prior, resolve=True), "codebook_size": task.train.codebook_size},
        cfg.device,
    )
    return task
