"""`audio-vq train`: the VQ-VAE's task for the shared training loop (trainer.py).

The task: random crops of the manifest's train split (data.py) through a resumable batch order,
the model's own loss (reconstruction + quantizer [+ adversary]), validation on fixed crops of
the valid split, TensorBoard audio of a validation crop generated from its codes, and the model
directory (``<run>/model``: what every later stage loads) at every checkpoint.
"""

from __future__ import annotations

import copy
import logging
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Iterator

import torch
from omegaconf import DictConfig, OmegaConf

from .. import contours
from ..checkpoint import save_model_dir
from ..config import ConfigError
from ..data import CropDataset, collate
from ..distributed import Context
from ..generate import Generator
from ..manifest import ManifestError, read_manifest, read_speakers
from ..memory import check_fits
from ..models.vqvae import VQVAE, metric_names
from ..options import TrainCommandOptions, validate
from ..trainer import (
    EpochBatches,
    Task,
    TrainingError,
    check_loggers,
    core_share,
    fit,
    init_loader_worker,
    metric_fields,
)

__all__ = ["main", "run", "TrainingError", "VQVAETask", "METRIC_FIELDS"]

log = logging.getLogger(__name__)


class VQVAETask(Task):
    """Crops of a manifest's utterances -> the VQ-VAE's loss; exports the model directory."""

    metric_fields = metric_names()
    rate_name = "audio_s_per_s"
    export_dir = "model"

    def __init__(self, cfg: DictConfig, utterances, speakers: dict[str, int], run_dir: Path):
        self.cfg, self.utterances, self.speakers = cfg, utterances, speakers
        self.run_dir = run_dir
        self.logged_original = False
        self.f0: dict | None = None  # id -> F0 contour, for a pitch model
        self.harmonics: int | None = None  # the excitation's, for pitch="excitation"

    def build(self, ctx: Context) -> VQVAE:
        model = _build_model(self.cfg, len(self.speakers))
        self.crop = _crop_samples(self.cfg, model.hop)
        self.hop = model.hop
        if model.uses_pitch:
            self._track_pitch(model, ctx)
        return model

    def _track_pitch(self, model: VQVAE, ctx: Context) -> None:
        """The contours of the utterances training reads (cached in <run>/pitch; each rank tracks
        its share, then all read them), and the speakers' registers from the train split into
        the model's table."""
        used = [u for u in self.utterances if u.split in ("train", "valid") and u.speaker in self.speakers]
        args = (self.cfg.data.sample_rate, model.hop, self.cfg.data.pitch_tracker, self.run_dir / "pitch")
        try:
            contours.track(used[ctx.rank :: ctx.world], *args, workers=core_share(ctx), progress=ctx.primary)
            ctx.barrier()
            self.f0 = contours.contours(used, *args)  # all cached by now: reads them
            model.set_pitch_stats(contours.speaker_stats(used, self.f0, self.speakers))
        except ValueError as e:
            raise ConfigError(f"data.pitch_tracker={self.cfg.data.pitch_tracker}: {e}") from None
        self.harmonics = model.decoder.harmonics if model.uses_excitation else None

    def loader(self, start_batch: int, ctx: Context, workers: int) -> Iterator[dict]:
        tc = self.cfg.train
        train_set = CropDataset(
            self.utterances,
            self.speakers,
            crop_samples=self.crop,
            sample_rate=self.cfg.data.sample_rate,
            split="train",
            seed=tc.seed,
            hop=self.hop,
            contours=self.f0,
            harmonics=self.harmonics,
        )
        batches = EpochBatches(len(train_set), tc.batch_size, tc.seed, ctx.rank, ctx.world, start=start_batch)
        return iter(
            torch.utils.data.DataLoader(
                train_set,
                batch_sampler=batches,
                collate_fn=collate,
                num_workers=workers,
                persistent_workers=workers > 0,
                pin_memory=ctx.device.type == "cuda",
                worker_init_fn=init_loader_worker,
                generator=torch.Generator().manual_seed(tc.seed),
            )
        )  # never draws from the global RNG

    def valid_batches(self) -> list[dict]:
        return _valid_batches(self.utterances, self.speakers, self.cfg, self.crop, self.hop, self.f0, self.harmonics)

    def step_loss(self, forward, batch: dict, ctx: Context):
        audio = batch["audio"].to(ctx.device, non_blocking=True)
        mask = batch["mask"].to(ctx.device, non_blocking=True)
        speaker = batch["speaker"].to(ctx.device, non_blocking=True)
        out = forward(audio, speaker, mask, *_pitch_inputs(batch, ctx.device))
        return out.loss, out.metrics(), float(batch["mask"].sum()) / self.cfg.data.sample_rate

    def validate(self, model: VQVAE, batches: list[dict], ctx: Context, precision) -> dict:
        """Mean losses and codebook metrics over the fixed validation batches."""
        totals: dict[str, float] = {}
        autocast = torch.autocast(ctx.device.type, dtype=precision) if precision != torch.float32 else nullcontext()
        for batch in batches:
            with autocast:
                out = model(
                    batch["audio"].to(ctx.device),
                    batch["speaker"].to(ctx.device),
                    batch["mask"].to(ctx.device),
                    *_pitch_inputs(batch, ctx.device),
                )
            for k, v in out.metrics().items():
                totals[k] = totals.get(k, 0.0) + float(v) / len(batches)
        return totals

    def export(self, model: VQVAE, directory: Path, step: int) -> None:
        config = {**OmegaConf.to_container(self.cfg, resolve=True), "exported_step": step}
        save_model_dir(model, config, self.speakers, directory)

    @torch.no_grad()
    def media(self, writer, model: VQVAE, batches: list[dict], ctx: Context, step: int) -> None:
        """A validation crop and its reconstruction: the crop's codes decoded by the incremental
        generator with its speaker, sampled with a seed of the step. Generation runs on a CPU
        copy of the model with the compiled kernel (about real time for one stream)."""
        was_training = model.training
        model.eval()
        batch, rate = batches[0], self.cfg.data.sample_rate
        x = batch["audio"][:1].to(ctx.device)
        codes = model.encode(x)[0].cpu()
        speaker = int(batch["speaker"][0])
        cpu_model = copy.deepcopy(model).cpu().eval()
        f0 = [batch["f0"][0].numpy()] if "f0" in batch else None  # its own contour: a reconstruction
        wave = Generator(cpu_model, backend="auto", threads=1).generate([codes], [speaker], seed=step, f0=f0)[0]
        if not self.logged_original:
            writer.audio(step, "valid/original", x[0].float().cpu().numpy(), rate)
            self.logged_original = True
        writer.audio(step, "valid/generated", wave, rate)
        model.train(was_training)

    def describe(self, model: VQVAE, ctx: Context) -> str:
        return (
            f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, hop {model.hop}, "
            f"{len(self.speakers)} speakers; crop {self.crop} samples"
        )

    def postfix(self, row: dict) -> dict:
        return {
            "loss": f"{row['loss']:.3f}",
            "ppl": f"{row['perplexity']:.0f}",
            "audio_s_per_s": f"{row['audio_s_per_s']:.1f}",
        }


METRIC_FIELDS = metric_fields(VQVAETask)  # the columns of a VQ-VAE run's metrics.csv


def main(cfg: DictConfig, run_folder: str, ctx: Context | None = None) -> int:
    """`audio-vq train`: train and export ``<run>/model``."""
    run(cfg, run_folder, ctx)
    return 0


def run(
    cfg: DictConfig, run_folder: str | os.PathLike, ctx: Context | None = None, stop_at_step: int | None = None
) -> Path:
    """Train per ``cfg`` into ``run_folder``; returns the run folder.

    ``stop_at_step`` ends the process after that step as if it were killed there (no final
    checkpoint or export): what a resume then finds is whatever the last checkpoint holds."""
    _check_config(cfg)
    utterances, speakers = _load_data(cfg)  # a bad manifest fails before the run folder is touched
    task = VQVAETask(cfg, utterances, speakers, Path(run_folder).expanduser().resolve())
    run_dir = fit(cfg, run_folder, task, ctx, stop_at_step)
    log.info("model directory: %s", run_dir / VQVAETask.export_dir)
    return run_dir


# ------------------------------------------------------------------------------------------
# Config, data and model
# ------------------------------------------------------------------------------------------


def _check_config(cfg: DictConfig) -> None:
    """Fail before any heavy work, with one line naming the key."""
    validate(cfg, TrainCommandOptions)
    check_loggers(cfg)
    if cfg.data.manifest is None:  # the command line's train prepares the synthetic corpus then
        raise ConfigError("data.manifest=None: expected a manifest.jsonl path (or its folder)")
    manifest = Path(cfg.data.manifest).expanduser()
    if not (manifest.is_file() or (manifest / "manifest.jsonl").is_file()):
        raise ConfigError(f"data.manifest={cfg.data.manifest}: no such manifest")
    # the model's own checks, and whether it fits in memory, before the data is read
    model = check_fits(
        lambda: _build_model(cfg, num_speakers=1),
        {"model": OmegaConf.to_container(cfg.model, resolve=True)},
        cfg.device,
    )
    _crop_samples(cfg, model.hop)


def _build_model(cfg: DictConfig, num_speakers: int) -> VQVAE:
    try:
        return VQVAE.from_config(
            OmegaConf.to_container(cfg.model, resolve=True), num_speakers, sample_rate=cfg.data.sample_rate
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model: {' '.join(str(e).split())}") from None


def _crop_samples(cfg: DictConfig, hop: int) -> int:
    crop = int(cfg.data.crop_seconds * cfg.data.sample_rate) // hop * hop
    if crop < hop:
        raise ConfigError(
            f"data.crop_seconds={cfg.data.crop_seconds}: shorter than the model's hop "
            f"({hop} samples = {1000 * hop / cfg.data.sample_rate:g} ms)"
        )
    return crop


def _load_data(cfg: DictConfig):
    manifest = Path(cfg.data.manifest).expanduser()
    folder = manifest if manifest.is_dir() else manifest.parent
    try:
        utterances = read_manifest(manifest)
        speakers = read_speakers(folder)
    except ManifestError as e:
        raise ConfigError(f"data.manifest: {e}") from None
    if not any(u.split == "train" for u in utterances):
        raise ConfigError(f"data.manifest={cfg.data.manifest}: no utterances in the train split")
    if not speakers:
        raise ConfigError(f"data.manifest={cfg.data.manifest}: speakers.json is empty")
    return utterances, speakers


def _pitch_inputs(batch: dict, device) -> tuple:
    """(f0, excitation) of a batch on ``device``, each None when the batch has none."""
    return tuple(batch[k].to(device, non_blocking=True) if k in batch else None for k in ("f0", "excitation"))


def _valid_batches(utterances, speakers, cfg, crop: int, hop: int, f0=None, harmonics=None) -> list[dict]:
    """The fixed validation batches: the first crops of the valid split (epoch 0), held in memory."""
    if not any(u.split == "valid" for u in utterances):
        log.warning("no valid split in the manifest: validation is skipped")
        return []
    known = [u for u in utterances if u.split == "valid" and u.speaker in speakers]
    if not known:
        return []
    ds = CropDataset(
        known,
        speakers,
        crop_samples=crop,
        sample_rate=cfg.data.sample_rate,
        split="valid",
        seed=cfg.train.seed,
        hop=hop,
        contours=f0,
        harmonics=harmonics,
    )
    size = cfg.train.batch_size
    count = min(len(ds), cfg.train.valid_batches * size)
    return [collate([ds[i] for i in range(start, min(start + size, count))]) for start in range(0, count, size)]
