"""The GPU path in one short run (issue 17): every part that only a GPU exercises, one table.

    bash benchmarks/gpu_check.sh [--out DIR]   # on a machine with a GPU: under 8 minutes
    bash benchmarks/gpu_check.sh --dry-run     # on the CPU at tiny sizes (the test suite runs it)

Rows, each through the toolkit's own entry points:

* ``train fp32`` / ``train bf16`` / ``train compile``: ``audio-vq train model=paper`` for --steps
  steps on the device with train.precision=fp32, bf16 (autocast), and bf16 with
  train.compile=true (train.compile_backend=aot_eager in the dry run); audio seconds trained per second over the
  last logged window (so the first steps, and compilation, are not in it) and the loss at the end.
* ``torchrun nccl``: the same training under ``torchrun --standalone --nproc_per_node=1``: one
  process that joins an NCCL process group (gloo in the dry run) and trains through
  DistributedDataParallel; the row says which backend the run logged.
* ``extract``: units of the corpus with :class:`audio_vq.units.UnitExtractor` on the device
  (the fp32 row's model), audio seconds per second.
* ``generate 1`` / ``generate 64``: the torch generation path (``Generator(backend="torch")``)
  of the reference decoder (benchmarks/generate.py, random weights) on the device for 1 and
  64 streams of --generate-seconds each, times real time in aggregate (the goal for 64 streams of
  the reference decoder on one H200: >= 50x), and whether the steps replayed a CUDA graph or ran
  eagerly (the CPU, or a capture that failed: its reason).

A row that fails prints FAILED and its reason; the exit status is 1 if any did. What the rows
write (the corpus, the runs, their logs) stays in --out (a temporary folder by default).
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

SAMPLE_RATE = 16_000
GOAL_64_STREAMS = 50.0  # x real time, 64 streams of the reference decoder on one H200
ROW_TIMEOUT_S = 240
# The dry run's model: model=paper's structure at a size that trains in seconds on a CPU
TINY = [
    "model.encoder.channels=16",
    "model.quantizer.codebook_size=32",
    "model.quantizer.dim=8",
    "model.decoder.stacks=1",
    "model.decoder.layers_per_stack=3",
    "model.decoder.residual_channels=8",
    "model.decoder.gate_channels=8",
    "model.decoder.skip_channels=8",
    "model.decoder.speaker_dim=4",
]
TRAIN_ROWS = [
    ("train fp32", ["train.precision=fp32"]),
    ("train bf16", ["train.precision=bf16"]),
    ("train compile", ["train.precision=bf16", "train.compile=true"]),
]
# The dry run compiles with aot_eager: dynamo traces the whole model (graph breaks and all) and
# AOTAutograd builds the joint graph, as with inductor, without minutes of C++ code generation
DRY_RUN_COMPILE = "train.compile_backend=aot_eager"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "audio_vq.cli", *args]


def train_command(args, manifest: Path, run: Path, extra: list[str]) -> list[str]:
    return cli(
        "train",
        f"data.manifest={manifest}",
        "model=paper",
        f"device={args.device}",
        f"train.max_steps={args.steps}",
        f"train.log_every={max(1, args.steps // 5)}",
        "train.max_minutes=null",
        f"train.valid_every={10 * args.steps}",
        f"train.audio_every={10 * args.steps}",
        f"train.checkpoint_every={args.steps}",
        f"train.batch_size={args.batch}",
        "train.warmup_steps=1",
        f"hydra.run.dir={run}",
        *(TINY if args.dry_run else []),
        *extra,
    )


def run_logged(cmd: list[str], log: Path) -> None:
    """Run ``cmd`` with its output in ``log``; RuntimeError with the log's last line on failure."""
    with open(log, "w") as f:
        try:
            code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=ROW_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"timed out after {ROW_TIMEOUT_S} s (log: {log})") from None
    if code != 0:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        raise RuntimeError(f"exit {code}: {lines[-1][:160] if lines else 'no output'} (log: {log})")


def last_train_row(run: Path) -> dict:
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r["split"] == "train"]
    if not rows:
        raise RuntimeError(f"{run / 'metrics.csv'}: no training rows")
    loss = float(rows[-1]["loss"])
    if not math.isfinite(loss):
        raise RuntimeError(f"loss {loss} at step {rows[-1]['step']}")
    return rows[-1]


def train_row(args, manifest: Path, out: Path, name: str, extra: list[str]) -> tuple[str, str]:
    run = out / name.replace(" ", "_")
    run_logged(train_command(args, manifest, run, extra), out / f"{run.name}.log")
    row = last_train_row(run)
    return f"{float(row['audio_s_per_s']):.2f} audio s/s", f"loss {float(row['loss']):.3f} at step {row['step']}"


def torchrun_row(args, manifest: Path, out: Path) -> tuple[str, str]:
    run = out / "torchrun"
    log = out / "torchrun.log"
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=1",
        "-m",
        "audio_vq.cli",
    ]
    run_logged(torchrun + train_command(args, manifest, run, ["train.precision=bf16"])[3:], log)
    backend = "nccl" if args.device.startswith("cuda") else "gloo"
    if f"DistributedDataParallel, {backend}" not in (run / "train.log").read_text():
        raise RuntimeError(f"the run did not train through DistributedDataParallel over {backend} (log: {log})")
    row = last_train_row(run)
    return f"{float(row['audio_s_per_s']):.2f} audio s/s", f"DDP over {backend}, loss {float(row['loss']):.3f}"


def extract_row(args, manifest: Path, model_dir: Path) -> tuple[str, str]:
    import torch

    from audio_vq import audio
    from audio_vq.manifest import read_manifest
    from audio_vq.units import UnitExtractor

    extractor = UnitExtractor.from_pretrained(model_dir, device=args.device)
    waves = [audio.load(u.path).astype("float32") for u in read_manifest(manifest)]
    extractor.extract_batch(waves[:2])  # warm-up (cuDNN autotuning, first allocations)
    sync(args.device)
    start = time.perf_counter()
    units = [u for k in range(0, len(waves), 16) for u in extractor.extract_batch(waves[k : k + 16])]
    sync(args.device)
    seconds = sum(len(w) for w in waves) / SAMPLE_RATE
    speed = seconds / (time.perf_counter() - start)
    used = len({int(c) for u in units for c in torch.as_tensor(u.codes).flatten()})
    return f"{speed:.1f} audio s/s", f"{len(waves)} utterances, {seconds:.0f} s, {used} codes used"


def generate_row(args, model_dir: Path, streams: int) -> tuple[str, str]:
    """The reference decoder of benchmarks/generate.py with random weights (the dry run: the
    fp32 row's tiny model)."""
    import numpy as np
    import torch
    from generate import NUM_SPEAKERS, REFERENCE  # benchmarks/generate.py

    from audio_vq.checkpoint import load_model
    from audio_vq.generate import Generator
    from audio_vq.models.vqvae import VQVAE

    if args.dry_run:
        model = load_model(model_dir, args.device)
    else:
        torch.manual_seed(0)
        model = VQVAE.from_config(REFERENCE, num_speakers=NUM_SPEAKERS).to(args.device).eval()
    gen = Generator(model, backend="torch")
    frames = max(1, round(args.generate_seconds * SAMPLE_RATE / model.hop))
    rng = np.random.default_rng(0)
    codes = [rng.integers(0, model.quantizer.codebook_size, (1, frames)) for _ in range(streams)]
    speakers = [int(rng.integers(model.num_speakers)) for _ in range(streams)] if model.num_speakers else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gen.generate(codes[:1], speakers[:1] if speakers else None)  # warm-up
        sync(args.device)
        start = time.perf_counter()
        audio = gen.generate(codes, speakers)
        sync(args.device)
        wall = time.perf_counter() - start
    failed = [str(w.message) for w in caught if "CUDA graph" in str(w.message)]
    stepping = (
        "eager steps"
        if not args.device.startswith("cuda")
        else f"eager steps ({failed[0][:120]})"
        if failed
        else "CUDA graph per step"
    )
    realtime = streams * frames * model.hop / SAMPLE_RATE / wall
    if not all(np.isfinite(a).all() for a in audio):
        raise RuntimeError("non-finite audio")
    goal = f"; goal >= {GOAL_64_STREAMS:.0f}x on an H200" if streams == 64 and not args.dry_run else ""
    seconds = frames * model.hop / SAMPLE_RATE
    return f"{realtime:.2f}x real time", f"{streams} x {seconds:.2f} s in {wall:.1f} s, {stepping}{goal}"


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model and sizes: the script's own test")
    parser.add_argument("--device", help="default: cuda (cpu with --dry-run)")
    parser.add_argument("--steps", type=int, help="training steps per row (default 60; 4 with --dry-run)")
    parser.add_argument("--batch", type=int, help="crops per step (default 8; 2 with --dry-run)")
    parser.add_argument("--minutes", type=float, help="synthetic corpus (default 2; 0.3 with --dry-run)")
    parser.add_argument("--generate-seconds", type=float, help="per stream (default 1; 0.02 with --dry-run)")
    parser.add_argument("--out", help="where the corpus, runs and logs go (default: a temporary folder)")
    args = parser.parse_args()
    dry = args.dry_run
    args.device = args.device or ("cpu" if dry else "cuda")
    args.steps = args.steps or (4 if dry else 60)
    args.batch = args.batch or (2 if dry else 8)
    args.minutes = args.minutes or (0.3 if dry else 2.0)
    args.generate_seconds = args.generate_seconds or (0.02 if dry else 1.0)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        out = Path(args.out or tmp).expanduser().resolve()
        out.mkdir(parents=True, exist_ok=True)
        return check(args, out)


def check(args, out: Path) -> int:
    import torch

    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(
        f"GPU check{' (dry run)' if args.dry_run else ''}: {where}, torch {torch.__version__}, "
        f"{args.steps} steps x batch {args.batch}, output in {out}",
        flush=True,
    )
    run_logged(
        cli(
            "prepare",
            "corpus=synthetic",
            f"corpus.minutes={args.minutes}",
            f"root={out / 'synthetic'}",
            f"out={out / 'data'}",
            "split.valid=0",
            "split.test=0",
        ),
        out / "prepare.log",
    )
    manifest = out / "data" / "manifest.jsonl"
    model_dir = out / "train_fp32" / "model"
    rows = [
        (
            name,
            lambda extra=extra, name=name: train_row(
                args, manifest, out, name, extra + ([DRY_RUN_COMPILE] if args.dry_run and "compile" in name else [])
            ),
        )
        for name, extra in TRAIN_ROWS
    ]
    rows += [
        ("torchrun nccl", lambda: torchrun_row(args, manifest, out)),
        ("extract", lambda: extract_row(args, manifest, model_dir)),
        ("generate 1", lambda: generate_row(args, model_dir, 1)),
        ("generate 64", lambda: generate_row(args, model_dir, 64)),
    ]
    print(f"| {'row':<14} | {'result':<20} | {'seconds':>7} | notes", flush=True)
    print(f"|{'-' * 16}|{'-' * 22}|{'-' * 9}|------", flush=True)
    failed = 0
    for name, fn in rows:
        start = time.perf_counter()
        try:
            result, notes = fn()
        except Exception as e:  # a row's failure is the row's result; the others still run
            result, notes = "FAILED", " ".join(str(e).split())[:300]
            failed += 1
        print(f"| {name:<14} | {result:<20} | {time.perf_counter() - start:>7.1f} | {notes}", flush=True)
    print(f"{len(rows) - failed} of {len(rows)} rows ran" + ("" if not failed else f"; {failed} FAILED"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
