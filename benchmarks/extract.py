"""Time unit extraction (encoder + quantizer) on the CPU: real-time factor and fraction of matmul peak.

    python benchmarks/extract.py [--models small paper] [--threads 1 2] [--batch 16] [--seconds 4]
                                 [--repeats 7] [--matmul-sizes 1024 2048 4096] [--quick]

About 1.5-2 minutes on 2 quiet cores with the defaults (paper: ~4 s a call on one thread, the
4096 matmul ~1 s); ``--quick`` (batch 8 x 1 s, 3 repeats, matmul 1024 and 2048) takes ~15 s.
Leave OMP_NUM_THREADS unset (or >= the largest --threads): the rows switch thread counts with
torch.set_num_threads inside one process.

Each model preset is built from its config (``compose("train", ["model=<preset>"])``) with random
weights, since the cost of extraction does not depend on the weights' values, and wrapped in a
:class:`audio_vq.units.UnitExtractor`. The input is --batch pieces of --seconds of the synthetic
toy speech (generated once in a temporary folder, not timed), all the same length, so the padded
batch holds no padding. One call is ``extractor.extract_batch(waves)``: padding to a tensor, the
encoder with its length masks, the quantizer's nearest-code search (eval mode, no gradients) and
the codes back to numpy. The rows, (model, threads) plus fp32 ``torch.mm`` of n x n matrices at
each thread count, are timed interleaved (one call of each per round, torch.set_num_threads
before each) after one warm-up call each, and each is the median of --repeats rounds, so load
from other processes on a shared machine hits every row alike.

Columns: ``audio s/s`` is seconds of audio turned into units per wall second (the real-time
factor); ``GFLOP/s`` is the encoder's and quantizer's floating-point operations per call (counted
from the modules' shapes: see :func:`extraction_flops`) over the call's median time;
``matmul GFLOP/s`` is the best, over --matmul-sizes, of 2 n^3 / median time of ``torch.mm`` at the
row's thread count; ``of peak`` is the ratio of the two. The call's time includes everything
extract_batch does (masks, ReLUs, padding, the min over distances), so ``of peak`` is a lower
bound on what the convolutions alone reach. ``others`` (after the table) is how many cores the
rest of the machine kept busy during the timed rounds (from /proc/stat, minus this process's CPU
time): well above 0 means the numbers are slowed by other jobs: rerun when it is quiet.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from machine import busy_seconds  # benchmarks/machine.py
from torch import nn

from audio_vq import audio
from audio_vq.config import compose
from audio_vq.corpora.synthetic import generate
from audio_vq.models.vqvae import VQVAE
from audio_vq.units import UnitExtractor

FULL = {"batch": 16, "seconds": 4.0, "repeats": 7, "matmul_sizes": [1024, 2048, 4096]}
QUICK = {"batch": 8, "seconds": 1.0, "repeats": 3, "matmul_sizes": [1024, 2048]}
NUM_SPEAKERS = 1  # the presets' decoders are speaker-conditioned; extraction never uses the table


def speech(batch: int, seconds: float, sample_rate: int) -> list[np.ndarray]:
    """``batch`` pieces of ``seconds`` each, cut from one stream of synthetic toy speech (all
    utterances of a fresh small corpus, concatenated; repeated if it falls short)."""
    samples = round(seconds * sample_rate)
    with tempfile.TemporaryDirectory(prefix="extract-bench-") as tmp:
        minutes = 1.1 * batch * samples / sample_rate / 60 + 0.05
        root = generate(Path(tmp) / "corpus", minutes=minutes, sample_rate=sample_rate)
        stream = np.concatenate([audio.load(w, sample_rate) for w in sorted(root.glob("*/*.wav"))])
    stream = np.resize(stream, batch * samples).astype(np.float32)  # np.resize repeats if short
    return [stream[i * samples : (i + 1) * samples].copy() for i in range(batch)]


def extraction_flops(extractor: UnitExtractor, waves: list[np.ndarray]) -> int:
    """Floating-point operations of one ``extract_batch(waves)`` in the encoder and quantizer,
    counting a multiply-add as 2 and leaving out biases, activations and masks (O(outputs)).

    Every Conv1d and Linear of the encoder and quantizer gets a forward hook that reads the
    output's shape during one real call, so strides, padding and the batch's padded length are
    whatever the model actually ran: a Conv1d costs 2 * C_in / groups * kernel * C_out * T_out per
    batch row, a Linear 2 * in * out per output row. By hand, for ``model=small`` and 4 s at
    16 kHz: the second strided conv is Conv1d(64, 64, kernel 4, stride 2) from 32,000 to 16,000
    steps, 2 * 64 * 4 * 64 * 16,000 = 524.3 MFLOP per utterance, which is what its hook records.
    The quantizer's nearest-code search (``kmeans.nearest``: one addmm per block of rows) adds
    2 * d * K per frame searched, d its codebook dimension, over all B x frames of the batch."""
    model = extractor.model
    total = 0

    def count(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv1d):
            batch, c_out, t_out = output.shape
            total += 2 * module.in_channels // module.groups * module.kernel_size[0] * c_out * t_out * batch
        else:  # nn.Linear
            total += 2 * module.in_features * module.out_features * (output.numel() // module.out_features)

    hooks = [
        m.register_forward_hook(count)
        for part in (model.encoder, model.quantizer)
        for m in part.modules()
        if isinstance(m, (nn.Conv1d, nn.Linear))
    ]
    try:
        extractor.extract_batch(waves)
    finally:
        for h in hooks:
            h.remove()
    quantizer = model.quantizer
    if not hasattr(quantizer, "codebook_dim"):
        raise SystemExit(f"FLOP count knows the vector quantizer only, not {type(quantizer).__name__}")
    frames = extractor.num_frames(max(len(w) for w in waves))
    return total + 2 * quantizer.codebook_dim * quantizer.codebook_size * len(waves) * frames


def matmul_call(n: int) -> Callable[[], object]:
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    return lambda: torch.mm(a, b, out=c)


def median_seconds(rows: dict[tuple, tuple[int, Callable[[], object]]], repeats: int) -> dict[tuple, float]:
    """Median seconds per call of each row's function at its thread count, the rows interleaved
    (one call of each per round) after one warm-up call each."""
    for threads, fn in rows.values():
        torch.set_num_threads(threads)
        fn()  # warm-up: oneDNN primitives, allocations, the thread pool at this size
    times: dict[tuple, list[float]] = {key: [] for key in rows}
    for _ in range(repeats):
        for key, (threads, fn) in rows.items():
            torch.set_num_threads(threads)
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["small", "paper"], help="model presets")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, help=f"utterances per call (default {FULL['batch']})")
    parser.add_argument("--seconds", type=float, help=f"seconds per utterance (default {FULL['seconds']:g})")
    parser.add_argument("--repeats", type=int, help=f"timed rounds (default {FULL['repeats']})")
    parser.add_argument(
        "--matmul-sizes",
        type=int,
        nargs="+",
        help=f"n of the n x n fp32 matmuls; the best counts (default {FULL['matmul_sizes']})",
    )
    parser.add_argument("--quick", action="store_true", help=f"smoke run: defaults {QUICK} instead of {FULL}")
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    omp = os.environ.get("OMP_NUM_THREADS")
    if omp and int(omp) < max(args.threads):
        print(f"warning: OMP_NUM_THREADS={omp} may cap the rows asking for more threads")

    torch.manual_seed(0)
    extractors, flops, infos = {}, {}, {}
    for name in args.models:
        cfg = compose("train", [f"model={name}"])
        model = VQVAE.from_config(cfg.model, num_speakers=NUM_SPEAKERS)
        extractor = UnitExtractor(model)
        extractors[name] = extractor
        used = sum(p.numel() for part in (model.encoder, model.quantizer) for p in part.parameters())
        if not isinstance(model.quantizer.embedding, nn.Parameter):  # the EMA quantizer's codebook is a buffer
            used += model.quantizer.embedding.numel()
        infos[name] = (used, sum(p.numel() for p in model.parameters()))
    sample_rate = next(iter(extractors.values())).sample_rate
    waves = speech(args.batch, args.seconds, sample_rate)
    audio_seconds = sum(len(w) for w in waves) / sample_rate
    torch.set_num_threads(max(args.threads))
    for name, extractor in extractors.items():
        flops[name] = extraction_flops(extractor, waves)

    print(
        f"unit extraction (UnitExtractor.extract_batch: encoder + quantizer), batch {args.batch} x "
        f"{args.seconds:g} s of synthetic speech, median of {args.repeats} interleaved rounds, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}"
    )
    for name, extractor in extractors.items():
        ours, whole = infos[name]
        print(
            f"{name}: hop {extractor.hop} ({extractor.frame_rate:g} frames/s), K = {extractor.codebook_size}, "
            f"encoder + codebook {ours / 1e6:.3f} M parameters (whole VQVAE {whole / 1e6:.2f} M), "
            f"{flops[name] / audio_seconds / 1e9:.3f} GFLOP per second of audio"
        )

    rows: dict[tuple, tuple[int, Callable[[], object]]] = {}
    for name, extractor in extractors.items():
        for threads in args.threads:
            rows[("extract", name, threads)] = (threads, lambda e=extractor: e.extract_batch(waves))
    for n in args.matmul_sizes:
        call = matmul_call(n)
        for threads in args.threads:
            rows[("matmul", n, threads)] = (threads, call)

    load_before = os.getloadavg()[0]
    busy_start, cpu_start, start = busy_seconds(), time.process_time(), time.perf_counter()
    with torch.no_grad():
        medians = median_seconds(rows, args.repeats)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    busy_end = busy_seconds()
    others = None if busy_start is None or busy_end is None else max(0.0, (busy_end - busy_start - cpu) / wall)

    matmul = {(n, t): 2 * n**3 / medians[("matmul", n, t)] / 1e9 for n in args.matmul_sizes for t in args.threads}
    peak = {t: max(matmul[(n, t)] for n in args.matmul_sizes) for t in args.threads}
    print(
        f"{'model':>7}  {'threads':>7}  {'s/call':>7}  {'audio s/s':>9}  {'GFLOP/s':>8}  "
        f"{'matmul GFLOP/s':>14}  {'of peak':>7}"
    )
    speeds: dict[tuple[str, int], float] = {}
    for name in args.models:
        for threads in args.threads:
            seconds = medians[("extract", name, threads)]
            speeds[(name, threads)] = audio_seconds / seconds
            achieved = flops[name] / seconds / 1e9
            print(
                f"{name:>7}  {threads:>7}  {seconds:>7.3f}  {audio_seconds / seconds:>9.1f}  {achieved:>8.1f}  "
                f"{peak[threads]:>14.1f}  {achieved / peak[threads]:>7.1%}"
            )
    for threads in args.threads:
        sizes = ", ".join(f"n={n}: {matmul[(n, threads)]:.1f}" for n in args.matmul_sizes)
        print(f"matmul fp32 GFLOP/s at {threads} thread{'s' if threads > 1 else ''}: {sizes}")
    others_text = "?" if others is None else f"{others:.2f}"
    print(
        f"timed rounds: {wall:.1f} s wall, CPU {100 * cpu / wall:.0f}%, others {others_text} cores; "
        f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    for name in args.models:
        ones = speeds.get((name, 1))
        for threads in args.threads:
            if ones and threads != 1:
                print(f"{name}: {threads} threads / 1 thread = {speeds[(name, threads)] / ones:.2f}x")


if __name__ == "__main__":
    main()
