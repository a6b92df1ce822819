"""Time the generation of the embedded toy-speech corpus and print a table.

    python benchmarks/synthetic.py [--minutes 10] [--workers 1 2]

Each run generates into a fresh temporary folder (so nothing is skipped as already present) and
reports wall-clock seconds and the real-time factor: seconds of audio made per second spent.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from audio_vq.corpora.synthetic import generate


def run(minutes: float, workers: int, seed: int) -> tuple[float, float, int]:
    """(wall seconds, seconds of audio, utterances) of one fresh generation."""
    with tempfile.TemporaryDirectory(prefix="synthetic-bench-") as tmp:
        start = time.perf_counter()
        root = generate(Path(tmp) / "corpus", minutes=minutes, seed=seed, num_workers=workers)
        elapsed = time.perf_counter() - start
        record = json.loads((root / "corpus.json").read_text())
    return elapsed, record["total_seconds"], len(record["utterances"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"synthetic corpus, {args.minutes:g} minutes requested, {os.cpu_count()} CPUs")
    print(f"{'workers':>7}  {'utterances':>10}  {'audio s':>8}  {'wall s':>7}  {'x real time':>11}")
    for workers in args.workers:
        elapsed, audio_seconds, count = run(args.minutes, workers, args.seed)
        speed = audio_seconds / elapsed
        print(f"{workers:>7}  {count:>10}  {audio_seconds:>8.1f}  {elapsed:>7.2f}  {speed:>11.1f}")


if __name__ == "__main__":
    main()
