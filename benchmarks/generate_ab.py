"""A/B the numba generation kernel of two checkouts of audio_vq in one run.

    python benchmarks/generate_ab.py <checkout A> <checkout B> [--rounds 2]

Each round runs each checkout in a fresh process (PYTHONPATH=<checkout>, one thread) on the
reference decoder of benchmarks/generate.py with random weights, through Generator.generate,
alternating A, B, A, B, ... so that a change in the machine's load hits both; it prints one row
per run: samples/s at batch 1 (best of 3 runs of 4,000 samples) and at batch 16 (best of 2 of
16 x 2,000), after a warm-up that compiles or loads the kernel.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

FRAMES_1, FRAMES_16, WARM_FRAMES = 62, 31, 4  # x hop 64: ~4,000 and ~2,000 samples per stream

CHILD = f"""
import sys, time, numpy as np, torch
torch.set_num_threads(1)
import audio_vq
from audio_vq.generate import Generator
from audio_vq.models.vqvae import VQVAE
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from generate import REFERENCE
model = VQVAE.from_config(REFERENCE, num_speakers=4).eval()
gen = Generator(model, backend="numba", threads=1)
rng = np.random.default_rng(0)
def run(batch, frames):
    codes = [rng.integers(0, 512, (1, frames)) for _ in range(batch)]
    t = time.perf_counter()
    gen.generate(codes, [0] * batch, seed=0)
    return batch * frames * model.hop / (time.perf_counter() - t)
run(1, {WARM_FRAMES}); run(16, {WARM_FRAMES})
print(max(run(1, {FRAMES_1}) for _ in range(3)), max(run(16, {FRAMES_16}) for _ in range(2)), audio_vq.__file__)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkouts", nargs=2, type=Path, help="two repository roots (A and B)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    print(f"{'checkout':40s} {'batch 1 samples/s':>18s} {'batch 16 samples/s':>19s}")
    for _ in range(args.rounds):
        for root in args.checkouts:
            root = root.resolve()
            out = subprocess.run(
                [sys.executable, "-c", CHILD],
                env={**env, "PYTHONPATH": str(root)},
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            if not out[2].startswith(str(root)):
                raise SystemExit(f"{root}: imported audio_vq from {out[2]} instead")
            print(f"{str(root):40s} {float(out[0]):18,.0f} {float(out[1]):19,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
