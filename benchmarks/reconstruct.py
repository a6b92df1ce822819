"""Time the whole `audio-vq reconstruct` command against the generation kernel alone, and
print a table of where the command's time goes.

    python benchmarks/reconstruct.py [--utterances 16] [--batch 16] [--seconds 2] [--spread 0.5] [--threads 2]

The reference decoder with random weights (benchmarks/generate.py's REFERENCE), saved as a model
directory; ``--utterances`` inputs of noise-like audio whose lengths spread uniformly over
``seconds * (1 +- spread)`` (real corpora are not of equal length), one speaker. Rows:

* the command in a fresh process (``python -m audio_vq.cli reconstruct``), and the same command
  on one 64-sample utterance (start-up: imports, model load, numba cache load); the
  difference is what the issue's "start-up subtracted" figure means;
* in one process, the stages the command runs: Renderer set-up, encoding every input, the
  generation (through ``Renderer.write``, i.e. batches, seeded uniforms and the writing);
* ``Generator.generate`` on the same codes alone, in batches of ``--batch`` (the kernel
  benchmark's measure, which uses equal lengths).

The issue's target: the whole command (start-up subtracted) at >= 6x real time for 16 streams
on two threads.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from generate import NUM_SPEAKERS, REFERENCE, SAMPLE_RATE, build_model, time_call  # benchmarks/generate.py
from machine import busy_seconds  # benchmarks/machine.py

from audio_vq import audio
from audio_vq.checkpoint import save_model_dir
from audio_vq.commands import INFERENCE
from audio_vq.config import compose
from audio_vq.rendering import Renderer, read_sources
from audio_vq.stages.decode import _encode_all

TARGET = 6.0
SPEAKER = "spk0"


def write_inputs(folder: Path, lengths: list[int], seed: int = 0) -> None:
    """Noise-like utterances (the speed does not depend on the content)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(lengths):
        audio.save(
            folder / f"utt{i:03d}.wav", (0.1 * rng.standard_normal(n)).astype(np.float32), SAMPLE_RATE, subtype="PCM_16"
        )


def command(model: Path, inputs: Path, out: Path, threads: int, batch: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "audio_vq.cli",
        "reconstruct",
        f"input={inputs}",
        f"model={model}",
        f"out={out}",
        f"speaker={SPEAKER}",
        f"threads={threads}",
        f"batch_size={batch}",
        "device=cpu",
    ]


def run_command(argv: list[str], threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16, help="batch_size: utterances generated together")
    parser.add_argument("--seconds", type=float, default=2.0, help="mean utterance length")
    parser.add_argument("--spread", type=float, default=0.5, help="lengths uniform in seconds * (1 +- spread)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs per row")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(1)
    lengths = [
        int(SAMPLE_RATE * args.seconds * rng.uniform(1 - args.spread, 1 + args.spread)) for _ in range(args.utterances)
    ]
    audio_seconds = sum(lengths) / SAMPLE_RATE
    busy0, wall0 = busy_seconds(), time.perf_counter()
    rows = []  # (what, seconds)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = save_model_dir(
            build_model(),
            {"model": REFERENCE, "data": {"sample_rate": SAMPLE_RATE}},
            {f"spk{i}": i for i in range(NUM_SPEAKERS)},
            tmp / "model",
        )
        write_inputs(tmp / "in", lengths)
        write_inputs(tmp / "one", [64])
        warm = command(model_dir, tmp / "one", tmp / "warm", args.threads, args.batch)
        run_command(warm, args.threads)  # fills the numba cache

        def best(fn) -> float:
            return min(fn(k) for k in range(args.repeats))

        startup = best(
            lambda k: run_command(
                command(model_dir, tmp / "one", tmp / f"one{k}", args.threads, args.batch), args.threads
            )
        )
        whole = best(
            lambda k: run_command(
                command(model_dir, tmp / "in", tmp / f"cmd{k}", args.threads, args.batch), args.threads
            )
        )
        rows += [
            ("command, fresh process", whole),
            ("  start-up (one 64-sample input)", startup),
            ("  command - start-up", whole - startup),
        ]

        overrides = [
            f"input={tmp / 'in'}",
            f"model={model_dir}",
            f"speaker={SPEAKER}",
            f"threads={args.threads}",
            f"batch_size={args.batch}",
            "device=cpu",
        ]

        def stages(k: int) -> tuple[float, float, float]:
            t0 = time.perf_counter()
            dec = Renderer(compose("reconstruct", [*overrides, f"out={tmp / f'stage{k}'}"], package=INFERENCE))
            t1 = time.perf_counter()
            encoded = [(src.id, codes, 0) for src, codes in _encode_all(dec, read_sources(str(tmp / "in")), [])]
            t2 = time.perf_counter()
            dec.write(encoded, "reconstruct")
            return t1 - t0, t2 - t1, time.perf_counter() - t2

        timings = [stages(k) for k in range(args.repeats)]
        setup, encode, write = (min(t[i] for t in timings) for i in range(3))
        rows += [
            ("in process: Renderer set-up", setup),
            ("in process: encode all inputs", encode),
            ("in process: Renderer.write (generate + save)", write),
        ]

        dec = Renderer(compose("reconstruct", [*overrides, f"out={tmp / 'gen'}"], package=INFERENCE))
        codes = [dec.codec.encode(src.path).codes for src in read_sources(str(tmp / "in"))]
        codes.sort(key=len, reverse=True)  # the command's batches

        def generate_all() -> None:
            for i in range(0, len(codes), args.batch):
                dec.generator.generate(codes[i : i + args.batch], [0] * len(codes[i : i + args.batch]))

        gen = best(lambda k: time_call(generate_all))
        rows.append(("Generator.generate alone", gen))

    others = None
    if busy0 is not None:
        busy = busy_seconds() - busy0
        others = max(0.0, busy / (time.perf_counter() - wall0) - args.threads)
    print(
        f"{args.utterances} utterances, {audio_seconds:.1f} s of audio ({args.seconds:g} s +- {args.spread:.0%}), "
        f"{args.threads} threads, batch_size {args.batch}; best of {args.repeats}"
        + (f"; other processes used {others:.2f} cores on average" if others is not None else "")
    )
    print(f"{'what':<46} {'s':>7} {'x real time':>11}")
    for what, seconds in rows:
        speed = f"{audio_seconds / seconds:11.2f}" if "start-up (" not in what else ""
        print(f"{what:<46} {seconds:7.2f} {speed:>11}")
    net = audio_seconds / (whole - startup)
    print(
        f"whole command, start-up subtracted: {net:.2f}x real time "
        f"({'meets' if net >= TARGET else 'MISSES'} the {TARGET:g}x target)"
    )


if __name__ == "__main__":
    main()
