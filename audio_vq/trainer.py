"""The training loop every model trains through: one readable loop over steps, on a CPU, a
GPU, or several under torchrun. What differs between models (its data, its loss, what it
exports) is a :class:`Task`; stages/train.py's is the VQ-VAE's.

    for step in range(start, max_steps):
        batch  -> task.step_loss (autocast) -> skip if the loss is not finite -> backward -> clip -> Adam
        every log_every: progress and the loggers (train.loggers: loggers.py); valid_every: task.validate;
        checkpoint_every: training state + task.export (the model directory)
        a preemption signal (SIGTERM, SIGUSR1): checkpoint this step, raise Preempted (exit status 75)

With ``train.keep_best=true`` the model directory holds the weights of the validation with the
lowest ``task.selection_metric`` instead of the last step's: each new best is checkpointed and
exported at once (so the export always matches a checkpoint a resume can start from), the last
step is validated too, and later checkpoints leave the export alone.

A run folder holds ``config.yaml``, ``train.log``, its loggers' files (by default
``metrics.csv``, ``audio/`` and ``tensorboard/``), ``checkpoints/step_XXXXXXXX.pt`` (what an
exact resume needs) and what the task exports.
Resuming (``train.resume=true`` with the same run folder) restores the model, the optimizer,
the schedule (and its horizon: a longer max_steps does not stretch it), the grad scaler, every
RNG and the data position, so on a CPU a resumed run ends
with the same weights as an uninterrupted one. Under torchrun every process trains on its shard
of each epoch's batches; rank 0 alone writes, and holds the run folder's lock.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from . import memory
from .atomic import atomic_write_text
from .checkpoint import load_latest_training_state, save_training_state
from .config import ConfigError, flatten
from .distributed import Context, setup
from .loggers import LOGGERS, forget, open_loggers, run_entries
from .outputs import LOCK_NAME, exclusive, remove_temporaries
from .preemption import PreemptionWatch, exit_cleanly_in_worker, next_batch
from .processes import die_with_parent
from .threads import ThreadTuner, usable_cores

log = logging.getLogger(__name__)

WORKER_NICENESS = 5  # data workers yield the CPU to the training threads; prefetching hides their latency
# What a run folder holds besides its task's export; anything else in hydra.run.dir is someone
# else's and training refuses it
RUN_ENTRIES = (
    "config.yaml",
    "train.log",
    "checkpoints",
    "pitch",
    *run_entries(),
)  # pitch/: a pitch model's F0 contours (contours.py); the loggers' files (loggers.py)
# The settings a resume may change: budgets, logging and resources. Every other key shapes the
# weights (model, data, optimizer, schedule, seed), so changing it would silently mix two runs.
RESUME_CHANGEABLE = (
    "train.max_steps",
    "train.max_minutes",
    "train.log_every",
    "train.valid_every",
    "train.valid_batches",
    "train.audio_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.max_nonfinite",
    "train.threads",
    "train.compile",
    "train.compile_backend",
    "train.resume",
    "train.memory",
    "train.activation_checkpointing",
    "train.schedule_steps",
    "train.loggers",
    "train.wandb.project",
    "train.wandb.entity",
    "train.wandb.mode",
    "train.mlflow.tracking_uri",
    "train.mlflow.experiment",
    "data.num_workers",
    "data.synthetic_dir",
    "device",
)
# Keys added after runs were trained without them, at the values that train what those runs
# trained: a resume of such a run (its config.yaml lacks the key) accepts exactly these values.
PREDATED_KEYS = {
    "model.decoder.pitch": "none",
    "model.decoder.harmonics": 1,
    "model.aux_mel.weight": 0.0,
    "model.aux_mel.n_mels": 80,
    "model.aux_mel.channels": 128,
    "model.aux_mel.layers": 3,
    "model.aux_mel.kernel_size": 5,
    "model.cpc.weight": 0.0,
    "model.cpc.context_channels": 128,
    "model.cpc.steps": 6,
    "model.cpc.negatives": 16,
    "data.pitch_tracker": "harvest",
}


class TrainingError(RuntimeError):
    """A run that cannot go on (e.g. too many non-finite losses in a row); says what to do."""


class Preempted(RuntimeError):
    """The run stopped on a preemption signal after checkpointing its last step (see preemption.py)."""


class Task:
    """What one kind of model brings to the loop. Subclasses set ``metric_fields`` (the model's
    own metrics: the columns of metrics.csv, in order) and ``rate_name`` (the throughput column:
    the ``amount`` step_loss returns per second), and implement the methods below."""

    metric_fields: tuple[str, ...] = ("loss",)
    rate_name: str = "items_per_s"
    export_dir: str = "model"  # the folder of the run that export() writes
    selection_metric: str = "loss"  # the validation metric train.keep_best minimises

    def build(self, ctx: Context) -> torch.nn.Module:
        """The model, built after the weights' seed is set (the same initial weights on every
        rank); what it prepares from the data once (a pitch model's contours) the ranks of
        ``ctx`` share out."""
        raise NotImplementedError

    def loader(self, start_batch: int, ctx: Context, workers: int) -> Iterator:
        """The endless stream of training batches from batch number ``start_batch`` on (resume)."""
        raise NotImplementedError

    def valid_batches(self) -> list:
        """The fixed validation batches (empty: no validation)."""
        return []

    def step_loss(self, forward: torch.nn.Module, batch, ctx: Context) -> tuple[torch.Tensor, dict, float]:
        """(loss, metrics: name -> 0-d tensor or number, amount: what the rate counts) of one batch."""
        raise NotImplementedError

    def validate(self, model: torch.nn.Module, batches: list, ctx: Context, precision) -> dict:
        """Mean metrics over the validation batches (eval mode; the loop restores train mode)."""
        return {}

    def export(self, model: torch.nn.Module, directory: Path, step: int) -> None:
        """Write what later stages load into ``directory`` (``<run>/<export_dir>``): the weights
        after ``step`` optimizer steps, at every checkpoint (or at each new best, train.keep_best)."""
        raise NotImplementedError

    def media(self, writer: "_Writer", model: torch.nn.Module, batches: list, ctx: Context, step: int) -> None:
        """Extras for TensorBoard every ``train.audio_every`` steps (e.g. generated audio)."""

    def describe(self, model: torch.nn.Module, ctx: Context) -> str:
        return f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters"

    def postfix(self, row: dict) -> dict:
        """What the progress bar shows of a log row."""
        return {"loss": f"{row['loss']:.3f}", self.rate_name: f"{row[self.rate_name]:.1f}"}


def metric_fields(task: Task) -> tuple[str, ...]:
    """The columns of a task's metrics.csv."""
    return (
        "step",
        "split",
        "time_s",
        "lr",
        *task.metric_fields,
        task.rate_name,
        "nonfinite_steps",
        "grad_norm",
        "threads",
    )


@dataclass
class _Best:
    """train.keep_best: the step whose validation metric is the lowest so far (what the
    export holds); part of the training state, so a resume keeps comparing against it."""

    enabled: bool
    step: int | None = None
    value: float = math.inf

    def improved(self, step: int, value: float) -> bool:
        if not (self.enabled and math.isfinite(value) and value < self.value):
            return False
        self.step, self.value = step, value
        return True

    def state(self) -> dict:
        return {"step": self.step, "value": self.value}


@dataclass
class TrainingState:
    """The training loop's state: what a step touches and where the run stands. A checkpoint
    is this object (plus every rank's RNG state), and a resume restores all of it.

    The model (and its DDP/compiled wrapper ``forward``), the optimizer, the schedule (whose
    decay ends at ``schedule_steps``, recorded in every checkpoint, see _schedule_horizon), the
    fp16 grad scaler (None otherwise), the autocast dtype and the thread tuner of
    train.threads=auto on a CPU (else None); then the step, the data position (``batches_seen``:
    the loader resumes after that many batches), the non-finite steps so far and the best
    validation so far (train.keep_best)."""

    model: torch.nn.Module
    forward: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    schedule_steps: int
    scaler: torch.amp.GradScaler | None
    precision: torch.dtype
    best: _Best
    tuner: ThreadTuner | None = None
    step: int = 0
    batches_seen: int = 0
    nonfinite_total: int = 0

    def restore(self, saved: dict, ctx: Context) -> None:
        """Take up a checkpoint's state (see :meth:`checkpoint`), its RNG streams included."""
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if self.scaler is not None and saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        self.step, self.batches_seen, self.nonfinite_total = (
            saved["step"],
            saved["batches_seen"],
            saved["nonfinite_total"],
        )
        _set_rng(saved["rng"], ctx)

    def checkpoint(self, rng: list) -> dict:
        """What checkpoints/step_<n>.pt holds (``rng``: every rank's RNG state)."""
        return {
            "step": self.step,
            "batches_seen": self.batches_seen,
            "nonfinite_total": self.nonfinite_total,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "schedule_steps": self.schedule_steps,
            "scaler": self.scaler.state_dict() if self.scaler else {},
            "rng": rng,
            "best": self.best.state(),
        }


@dataclass(frozen=True)
class _Run:
    """What stays fixed for a run: its config, folder, task, process context, metrics writer
    (rank 0; None elsewhere) and preemption watch."""

    cfg: DictConfig
    run_dir: Path
    task: Task
    ctx: Context
    writer: "_Writer | None"
    watch: PreemptionWatch


# ------------------------------------------------------------------------------------------
# Data: an endless, resumable order of batches
# ------------------------------------------------------------------------------------------


class EpochBatches:
    """Batch sampler yielding lists of ``(epoch, index)`` forever, starting at batch ``start``.

    Epoch e is a permutation seeded by (seed, e), cut to a multiple of the world size and dealt
    to the ranks; each rank's share is cut into full batches. Batch b is therefore a function of
    (seed, b) alone, which makes the data position of a resumed run one integer."""

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int,
        rank: int,
        world: int,
        start: int = 0,
        what: str = "utterances",
    ):
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world, self.start = rank, world, start
        self.per_epoch = (num_items // world) // batch_size
        if self.per_epoch == 0:
            raise ConfigError(
                f"train.batch_size={batch_size}: the train split has {num_items} {what}, "
                f"fewer than one batch for each of {world} process(es)"
            )

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batch, cached_epoch, order = self.start, -1, None
        while True:
            epoch, k = divmod(batch, self.per_epoch)
            if epoch != cached_epoch:
                perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
                order, cached_epoch = perm[: len(perm) // self.world * self.world][self.rank :: self.world], epoch
            yield [(epoch, int(i)) for i in order[k * self.batch_size : (k + 1) * self.batch_size]]
            batch += 1


def workers(setting, ctx: Context) -> int:
    """data.num_workers: an integer, or ``auto``: one loader process per two cores of this
    process's share (at least one, at most four)."""
    if setting != "auto":
        return int(setting)
    return max(1, min(4, core_share(ctx) // 2))


def init_loader_worker(_worker_id: int) -> None:
    """DataLoader worker_init_fn: end with the trainer, at a priority below its threads, and
    exit cleanly on a preemption signal (see preemption.py)."""
    die_with_parent()
    exit_cleanly_in_worker()
    try:
        os.nice(WORKER_NICENESS)
    except OSError:
        pass


# ------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------


def fit(
    cfg: DictConfig,
    run_folder: str | os.PathLike,
    task: Task,
    ctx: Context | None = None,
    stop_at_step: int | None = None,
) -> Path:
    """Train ``task`` per ``cfg.train`` into ``run_folder``; returns the run folder.

    ``stop_at_step`` ends the process after that step as if it were killed there (no final
    checkpoint or export): what a resume then finds is whatever the last checkpoint holds."""
    ctx = ctx or setup(cfg.device)
    if ctx.device.type == "cpu":
        memory.apply(cfg.train.memory)
    run_dir = Path(ctx.agree(str(Path(run_folder).expanduser().resolve())))
    with ExitStack() as held:
        if ctx.primary:  # the run folder is this process's until it ends (a crash releases it too)
            held.enter_context(exclusive(run_dir, f"run folder {run_dir}"))
            _claim_run_folder(run_dir, cfg, task)
        watch = held.enter_context(PreemptionWatch())
        return _fit(cfg, run_dir, task, ctx, stop_at_step, watch)


def _fit(
    cfg: DictConfig, run_dir: Path, task: Task, ctx: Context, stop_at_step: int | None, watch: PreemptionWatch
) -> Path:
    tc = cfg.train
    tuner = _threads(tc.threads, ctx)
    torch.manual_seed(tc.seed)  # the same initial weights on every rank (DDP also broadcasts them)
    model = task.build(ctx).to(ctx.device)
    for module in model.modules():  # the modules that can recompute their activations (WaveNet stacks)
        if hasattr(module, "activation_checkpointing"):
            module.activation_checkpointing = bool(tc.activation_checkpointing)
    precision = _precision(tc.precision, ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)
    scaler = torch.amp.GradScaler(ctx.device.type) if precision == torch.float16 else None

    saved = _resume(run_dir, ctx) if tc.resume else None
    horizon = _schedule_horizon(tc, saved, run_dir, ctx)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(tc, horizon))
    best = _Best(bool(tc.keep_best), **((saved or {}).get("best") or {}))
    state = TrainingState(model, model, optimizer, scheduler, horizon, scaler, precision, best, tuner)
    if saved is None:
        _seed_everything(tc.seed + ctx.rank)  # per-rank streams for jitter, restarts, Gumbel noise
    else:
        state.restore(saved, ctx)
    step = state.step

    n_workers = workers(cfg.data.num_workers, ctx)
    loader = task.loader(state.batches_seen, ctx, n_workers)
    valid = task.valid_batches()
    if best.enabled and not valid:
        log.warning("train.keep_best=true but there is no validation split: the last step is exported")
        best.enabled = False

    forward = torch.compile(model, backend=tc.compile_backend) if tc.compile else model
    if dist.is_initialized():  # under torchrun, one process too
        forward = torch.nn.parallel.DistributedDataParallel(
            forward, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    state.forward = forward
    writer = _Writer(run_dir, cfg, metric_fields(task), resumed_at=step if saved else None) if ctx.primary else None
    if writer:
        log.info("run folder %s; %s", run_dir, "resuming at step %d" % step if saved else "new run")
        log.info(
            "%s; batch %d x %d process(es)%s",
            task.describe(model, ctx),
            tc.batch_size,
            ctx.world,
            f" (DistributedDataParallel, {dist.get_backend()})" if dist.is_initialized() else "",
        )
        log.info(
            "threads: %s; data workers: %d",
            f"auto, tuned among {tuner.candidates}" if tuner else torch.get_num_threads(),
            n_workers,
        )
        if best.enabled:
            log.info(
                "train.keep_best: exporting the weights of the lowest validation %s%s",
                task.selection_metric,
                f" (so far {best.value:.4f} at step {best.step})" if best.step is not None else "",
            )

    try:
        _loop(_Run(cfg, run_dir, task, ctx, writer, watch), state, loader, valid, stop_at_step)
    finally:
        if writer:
            writer.close()
    return run_dir


def _loop(run: _Run, state: TrainingState, loader, valid: list, stop_at_step: int | None) -> None:
    """The steps, from ``state.step`` to ``train.max_steps`` (or the budget, or ``stop_at_step``,
    or a preemption signal: checkpoint the step, then raise Preempted)."""
    tc, ctx, task, writer = run.cfg.train, run.ctx, run.task, run.writer
    started = time.monotonic()
    nonfinite_run, window = 0, _Window(task.rate_name)
    # under a wall-clock budget the total is re-estimated from the step rate (see _budget_total)
    bar = tqdm(
        total=tc.max_steps, initial=state.step, desc="train", unit="step", dynamic_ncols=True, disable=not ctx.primary
    )
    first_step, last_saved = state.step, state.step
    with bar:  # closed on every way out, so an error message starts on a line of its own
        while state.step < tc.max_steps:
            batch = next_batch(loader, run.watch)
            if batch is None:  # the loader's workers left on a preemption signal
                if ctx.world > 1:  # the other ranks may be inside a step's collectives: no checkpoint can be agreed
                    raise Preempted(
                        f"preempted by {run.watch.name} at step {state.step} while waiting for data; "
                        f"resume from the newest checkpoint (step {last_saved}) with train.resume=true "
                        f"hydra.run.dir={run.run_dir}"
                    ) from None
                _preempted(run, state, saved=last_saved == state.step)
            state.batches_seen += 1
            if state.tuner:
                state.tuner.before_step()
            tick = time.monotonic()
            metrics, amount = _train_step(task, state, batch, tc.grad_clip, ctx)
            if state.tuner:
                state.tuner.after_step(time.monotonic() - tick)
            if metrics is None:
                state.nonfinite_total, nonfinite_run = state.nonfinite_total + 1, nonfinite_run + 1
                log.warning(
                    "step %d: non-finite loss or gradient, step skipped (%d in a row)", state.step + 1, nonfinite_run
                )
                if nonfinite_run >= tc.max_nonfinite:
                    raise TrainingError(
                        f"{nonfinite_run} non-finite losses in a row at step {state.step + 1}; "
                        f"stopping. The last good checkpoint is in {run.run_dir / 'checkpoints'}: "
                        "lower train.lr or check the data, then resume with train.resume=true"
                    )
                continue
            nonfinite_run = 0
            state.step += 1
            step = state.step
            window.add(metrics, amount * ctx.world, time.monotonic() - tick)
            if writer and step % tc.log_every == 0:
                row = window.flush(step, state.scheduler.get_last_lr()[0], state.nonfinite_total)
                writer.scalars(row, "train")
                bar.set_postfix(**task.postfix(row), threads=torch.get_num_threads())
            if tc.max_minutes:
                bar.total = _budget_total(tc, step, step - first_step, time.monotonic() - started)
            bar.update()
            if valid and step % tc.valid_every == 0 and _validation(run, state, valid):
                _checkpoint(run, state, export=True)
                last_saved = step
            if writer and valid and step % tc.audio_every == 0:
                task.media(writer, state.model, valid, ctx, step)
            out_of_time, preempted = ctx.any_each(
                tc.max_minutes is not None and time.monotonic() - started > 60 * tc.max_minutes,
                run.watch.signal is not None,
            )
            if stop_at_step is not None and step >= stop_at_step:
                return
            if preempted:
                _preempted(run, state, saved=last_saved == step)
            if (step % tc.checkpoint_every == 0 or out_of_time) and last_saved != step:
                _checkpoint(run, state, export=not state.best.enabled)
                last_saved = step
            if out_of_time:
                log.info("train.max_minutes=%s spent at step %d", tc.max_minutes, step)
                break
    best = state.best
    if best.enabled and state.step % tc.valid_every != 0 and _validation(run, state, valid):
        _checkpoint(run, state, export=True)
        last_saved = state.step
    exported = ctx.any(ctx.primary and (run.run_dir / task.export_dir).exists())
    if state.step != last_saved or not exported:
        _checkpoint(run, state, export=not (best.enabled and exported))
    if best.enabled and ctx.primary:
        log.info(
            "train.keep_best: %s holds step %s (validation %s %.4f)",
            run.run_dir / task.export_dir,
            best.step,
            task.selection_metric,
            best.value,
        )
    _check_replicas(state.model, ctx)


def _preempted(run: _Run, state: TrainingState, saved: bool) -> None:
    """Checkpoint the step (unless it just was) and raise Preempted."""
    if not saved:
        _checkpoint(run, state, export=not state.best.enabled)
    name = run.watch.name
    raise Preempted(
        f"preempted{' by ' + name if name else ''} at step {state.step}: checkpoint "
        f"{run.run_dir / 'checkpoints'} holds it; continue with train.resume=true hydra.run.dir={run.run_dir}"
    )


def _validation(run: _Run, state: TrainingState, valid: list) -> bool:
    """Validate (rank 0 writes the row); True on every rank when it is a new best (keep_best)."""
    improved = False
    if run.writer:
        row = _validate(run.task, state, valid, run.ctx)
        run.writer.scalars({"step": state.step, **row}, "valid")
        improved = state.best.improved(state.step, float(row[run.task.selection_metric]))
    return run.ctx.any(improved)


def _budget_total(tc: DictConfig, step: int, steps_done: int, seconds: float) -> int:
    """The step the run will end at under train.max_minutes, at the rate so far (so the
    progress bar has a total and an ETA): max_steps, or earlier when the budget runs out."""
    if steps_done == 0:
        return tc.max_steps
    remaining = max(0.0, 60 * tc.max_minutes - seconds)
    return int(min(tc.max_steps, step + math.ceil(remaining * steps_done / seconds)))


def _threads(setting, ctx: Context) -> ThreadTuner | None:
    """Apply train.threads: an integer is fixed, null leaves torch's default, ``auto`` tunes
    among all of this process's share of the cores and 1 (on a CPU; a GPU run keeps torch's
    default, its threads only feed the device)."""
    if setting is None:
        return None
    if setting != "auto":
        torch.set_num_threads(int(setting))
        return None
    if ctx.device.type != "cpu":
        return None
    return ThreadTuner([core_share(ctx), 1])


def core_share(ctx: Context) -> int:
    """The cores of this machine over the processes torchrun started on it (at least 1)."""
    return max(1, usable_cores() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world))))


def _train_step(
    task: Task, state: TrainingState, batch, grad_clip: float | None, ctx: Context
) -> tuple[dict | None, float]:
    """One optimizer step; returns (the step's metrics, the task's amount), metrics None when
    the step was skipped because the loss or the gradient norm was not finite (on any rank)."""
    optimizer, scaler, precision = state.optimizer, state.scaler, state.precision
    autocast = torch.autocast(ctx.device.type, dtype=precision) if precision != torch.float32 else nullcontext()
    with autocast:
        loss, metrics, amount = task.step_loss(state.forward, batch, ctx)
    if ctx.any(not bool(torch.isfinite(loss))):
        optimizer.zero_grad(set_to_none=True)
        return None, amount
    (scaler.scale(loss) if scaler else loss).backward()
    if scaler:
        scaler.unscale_(optimizer)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip else float("inf"))
    if scaler is None and ctx.any(not bool(torch.isfinite(norm))):
        optimizer.zero_grad(set_to_none=True)
        return None, amount
    if scaler:
        scaler.step(optimizer)  # skips the step itself on inf/nan gradients, then lowers the scale
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    state.scheduler.step()
    metrics = {k: float(v) for k, v in metrics.items()}
    metrics["grad_norm"] = float(norm)
    metrics["threads"] = torch.get_num_threads()
    return metrics, amount


@torch.no_grad()
def _validate(task: Task, state: TrainingState, valid: list, ctx: Context) -> dict:
    state.model.eval()
    try:
        return task.validate(state.model, valid, ctx, state.precision)
    finally:
        state.model.train()


def _checkpoint(run: _Run, state: TrainingState, export: bool) -> None:
    """Training state to checkpoints/, and the task's export when ``export`` (rank 0 writes;
    every rank contributes its RNG state)."""
    rng = _rng_state(run.ctx)
    if run.ctx.primary:
        save_training_state(
            state.checkpoint(rng), run.run_dir / "checkpoints", state.step, run.cfg.train.keep_checkpoints
        )
        if export:
            run.task.export(state.model, run.run_dir / run.task.export_dir, state.step)
    run.ctx.barrier()


def _check_replicas(model: torch.nn.Module, ctx: Context) -> None:
    """Under DDP every rank must end with the same weights (a VQ-VAE's codebook too): compare checksums."""
    if ctx.world == 1:
        return
    digest = torch.stack(
        [
            t.detach().double().sum() * (i + 1)
            for i, t in enumerate(model.state_dict().values())
            if t.is_floating_point()
        ]
    ).sum()
    everyone: list = [None] * ctx.world
    dist.all_gather_object(everyone, float(digest))
    if len(set(everyone)) != 1:
        raise TrainingError(f"ranks ended with different weights (checksums {everyone})")
    if ctx.primary:
        log.info("weights identical on all %d ranks (checksum %.9g)", ctx.world, everyone[0])


def _resume(run_dir: Path, ctx: Context) -> dict:
    found = load_latest_training_state(run_dir / "checkpoints", log)
    if found is None:
        raise ConfigError(
            f"train.resume=true: no readable checkpoint in {run_dir / 'checkpoints'} "
            "(give the run folder as hydra.run.dir=<run>)"
        )
    state, path = found
    if ctx.primary:
        log.info("resuming from %s", path)
    return state


def _claim_run_folder(run_dir: Path, cfg: DictConfig, task: Task) -> None:
    """Refuse a folder that holds something other than a run, or a trained run unless
    resuming it; a resume must keep every setting that shapes the run (only RESUME_CHANGEABLE
    may change, and what changed is logged). Temporaries of writes a kill cut short are removed."""
    remove_temporaries(run_dir, recursive=True)
    entries = sorted(e.name for e in run_dir.iterdir() if e.name != LOCK_NAME)
    foreign = [n for n in entries if n not in (*RUN_ENTRIES, task.export_dir)]
    trained = any((run_dir / "checkpoints").glob("step_*.pt")) or (run_dir / task.export_dir).exists()
    if foreign:
        raise ConfigError(
            f"hydra.run.dir={run_dir}: not a run folder (it holds {', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}); give a new or empty folder"
        )
    if cfg.train.resume:
        if (run_dir / "config.yaml").is_file():
            _check_resume_config(run_dir / "config.yaml", cfg)
    elif trained:
        raise ConfigError(
            f"hydra.run.dir={run_dir}: holds a trained run; continue it with train.resume=true, or give a new folder"
        )
    elif entries:  # a run stopped before its first checkpoint: start it over, without its old curves
        forget(run_dir)


def _check_resume_config(saved_path: Path, cfg: DictConfig) -> None:
    try:
        saved = flatten(OmegaConf.to_container(OmegaConf.load(saved_path), resolve=True))
    except Exception as e:  # a hand-edited or truncated config.yaml
        raise ConfigError(
            f"train.resume=true: {saved_path} is not readable ({' '.join(str(e).split())[:200]})"
        ) from None
    now = flatten(OmegaConf.to_container(cfg, resolve=True))
    for k, v in PREDATED_KEYS.items():  # a run from before the key trained as its value says
        if k in now:  # (a config of another kind, a prior's, has no such key)
            saved.setdefault(k, v)
    changed = [k for k in sorted(saved.keys() | now.keys()) if saved.get(k, "(absent)") != now.get(k, "(absent)")]
    fixed = [k for k in changed if k not in RESUME_CHANGEABLE]
    if fixed:
        said = ", ".join(f"{k}={saved.get(k, '(absent)')} (now {now.get(k, '(absent)')})" for k in fixed[:3])
        raise ConfigError(
            f"train.resume=true: the run was trained with {said}{' and more' if len(fixed) > 3 else ''}; "
            f"a resume may change only {', '.join(RESUME_CHANGEABLE)}; give a new run folder instead"
        )
    for k in changed:
        log.info("resume: %s %s -> %s (applied; config.yaml records it)", k, saved.get(k), now.get(k))


# ------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------


def _precision(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision=fp16: needs a CUDA device (use bf16 or fp32 on CPU)")
    if name == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        log.warning(
            "train.precision=bf16 on a CPU without bf16 instructions (AVX512-BF16 or AMX): its matrix "
            "products are emulated and a step takes several times as long as in fp32 "
            "(benchmarks/RESULTS.md); train.precision=fp32 is faster here"
        )
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (where bf16 autocast trains faster than
    fp32; elsewhere it is emulated, and slower). Asks torch's own check; True if it cannot tell."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def _lr_lambda(tc: DictConfig, total: int):
    """Linear warmup, then constant or cosine decay to min_lr_ratio at step ``total`` (the
    schedule's horizon), and min_lr_ratio after it."""
    warmup, floor, cosine = tc.warmup_steps, tc.min_lr_ratio, tc.lr_schedule == "cosine"

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if not cosine:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _schedule_horizon(tc: DictConfig, state: dict | None, run_dir: Path, ctx: Context) -> int:
    """The step the cosine decay ends at: ``train.schedule_steps`` when given, else the horizon
    the run recorded at its start, else ``train.max_steps``. A resume with a larger max_steps
    therefore runs on at min_lr_ratio past the old horizon instead of jumping back up the
    curve; stretching the decay is a choice the user states (train.schedule_steps=N)."""
    if tc.schedule_steps is not None:
        horizon = int(tc.schedule_steps)
    elif state is None:
        horizon = int(tc.max_steps)
    elif "schedule_steps" in state:
        horizon = int(state["schedule_steps"])
    else:  # a checkpoint from before horizons were recorded: the max_steps the run was started with
        horizon = int(ctx.agree(_saved_max_steps(run_dir) if ctx.primary else None) or tc.max_steps)
    if state is not None and ctx.primary and tc.lr_schedule == "cosine":
        before = state["scheduler"].get("_last_lr", [tc.lr])[0]
        after = tc.lr * _lr_lambda(tc, horizon)(state["step"])
        if horizon < tc.max_steps:
            log.info(
                "resume: the cosine schedule ends at step %d, so steps %d-%d run at min_lr_ratio x lr; "
                "train.schedule_steps=N stretches it",
                horizon,
                max(horizon, state["step"]) + 1,
                tc.max_steps,
            )
        if not math.isclose(before, after, rel_tol=1e-9):
            log.warning(
                "resume: train.schedule_steps=%d moves the learning rate from %.3g to %.3g at step %d",
                horizon,
                before,
                after,
                state["step"] + 1,
            )
    return horizon


def _saved_max_steps(run_dir: Path) -> int | None:
    try:
        return int(OmegaConf.load(run_dir / "config.yaml").train.max_steps)
    except Exception:  # no readable config.yaml: the caller falls back to this run's max_steps
        return None


# ------------------------------------------------------------------------------------------
# RNG state
# ------------------------------------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state(ctx: Context) -> list[dict]:
    """Every rank's RNG states (gathered to all ranks), as tensors and plain lists only."""
    np_state = np.random.get_state()
    mine = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(ctx.device)
        if ctx.device.type == "cuda"
        else torch.empty(0, dtype=torch.uint8),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if ctx.world == 1:
        return [mine]
    everyone: list = [None] * ctx.world
    dist.all_gather_object(everyone, mine)
    return everyone


def _set_rng(states: list[dict], ctx: Context) -> None:
    if len(states) != ctx.world:
        log.warning("checkpoint has RNG states of %d process(es), this run has %d: reseeding", len(states), ctx.world)
        _seed_everything(int(torch.randint(2**31, (1,))) + ctx.rank)
        return
    s = states[ctx.rank]
    torch.set_rng_state(s["torch"])
    if ctx.device.type == "cuda" and s["cuda"].numel():
        torch.cuda.set_rng_state(s["cuda"], ctx.device)
    name, keys, pos, has_gauss, cached = s["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    version, internal, gauss = s["python"]
    random.setstate((version, tuple(internal), gauss))


# ------------------------------------------------------------------------------------------
# Logging: metrics.csv, TensorBoard, train.log (rank 0)
# ------------------------------------------------------------------------------------------


class _Window:
    """Running means of step metrics between two log rows, and the throughput."""

    def __init__(self, rate_name: str):
        self.rate_name = rate_name
        self.sums: dict[str, float] = {}
        self.steps, self.amount, self.seconds = 0, 0.0, 0.0

    def add(self, metrics: dict, amount: float, seconds: float) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.steps += 1
        self.amount += amount
        self.seconds += seconds

    def flush(self, step: int, lr: float, nonfinite: int) -> dict:
        row = {k: v / max(1, self.steps) for k, v in self.sums.items()}
        row.update(step=step, lr=lr, nonfinite_steps=nonfinite)
        row[self.rate_name] = self.amount / max(self.seconds, 1e-9)
        self.__init__(self.rate_name)
        return row


class _Writer:
    """config.yaml, train.log and the loggers of a run (rank 0 only): each logger gets the same
    rows (the task's columns, ``split`` and ``time_s``) and the same audio."""

    def __init__(self, run_dir: Path, cfg: DictConfig, fields: tuple[str, ...], resumed_at: int | None):
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg))
        handler = logging.FileHandler(run_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.getLogger("audio_vq").addHandler(handler)
        self.handler = handler
        self.loggers = open_loggers(cfg.train.loggers, run_dir, cfg, fields, resumed_at)
        self.started = time.monotonic()

    def scalars(self, row: dict, split: str) -> None:
        row = {**row, "split": split, "time_s": round(time.monotonic() - self.started, 3)}
        for logger in self.loggers:
            logger.scalars(row["step"], split, row)

    def audio(self, step: int, tag: str, wave, sample_rate: int) -> None:
        """``wave``: (T,) float samples of a clip (``tag``: e.g. valid/generated)."""
        for logger in self.loggers:
            logger.audio(step, tag, np.asarray(wave, dtype=np.float32), sample_rate)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
        logging.getLogger("audio_vq").removeHandler(self.handler)
        self.handler.close()


def check_loggers(cfg: DictConfig) -> None:
    """Each of ``train.loggers`` available (its extra installed): checked before any heavy work."""
    for name in cfg.train.loggers:
        LOGGERS[name].check_available()
