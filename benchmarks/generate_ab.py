"""A/B two checkouts of audio_vq in one run: generation, the quantizer and extraction.

    python benchmarks/generate_ab.py <checkout A> <checkout B> [--rounds 2] [--what generate quantizer extract]

Each round runs each checkout in a fresh process (PYTHONPATH=<checkout>, one thread),
alternating A, B, A, B, ... so that a change in the machine's load hits both, and prints one row
per run and measure, on the reference model of benchmarks/generate.py with random weights:

* generate: the numba kernel through Generator.generate, samples/s at batch 1 (best of 3 runs of
  4,000 samples) and at batch 16 (best of 2 of 16 x 2,000), after a warm-up that compiles or
  loads the kernel;
* quantizer: a training forward of the EMA VectorQuantizer (dim 64, K 512) on z (16, 64, 1000),
  frames/s (best of 5, after a warm-up);
* extract: UnitExtractor.extract_batch of 8 utterances of 2 s, audio seconds per second (best of
  3, after a warm-up).

Only what both checkouts import by the same names is used (audio_vq.generate, audio_vq.units,
audio_vq.models), so a checkout from before a refactor runs the same script.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

FRAMES_1, FRAMES_16, WARM_FRAMES = 62, 31, 4  # x hop 64: ~4,000 and ~2,000 samples per stream
HERE = str(Path(__file__).resolve().parent)

SETUP = f"""
import sys, time, numpy as np, torch
torch.set_num_threads(1)
import audio_vq
from audio_vq.models.vqvae import VQVAE
sys.path.insert(0, {HERE!r})
from generate import REFERENCE
model = VQVAE.from_config(REFERENCE, num_speakers=4).eval()
rng = np.random.default_rng(0)
def best(fn, n):
    return max(fn() for _ in range(n))
"""

CHILDREN = {
    "generate": (
        ("batch 1 samples/s", "batch 16 samples/s"),
        f"""
from audio_vq.generate import Generator
gen = Generator(model, backend="numba", threads=1)
def run(batch, frames):
    codes = [rng.integers(0, 512, (1, frames)) for _ in range(batch)]
    t = time.perf_counter()
    gen.generate(codes, [0] * batch, seed=0)
    return batch * frames * model.hop / (time.perf_counter() - t)
run(1, {WARM_FRAMES}); run(16, {WARM_FRAMES})
print(best(lambda: run(1, {FRAMES_1}), 3), best(lambda: run(16, {FRAMES_16}), 2), audio_vq.__file__)
""",
    ),
    "quantizer": (
        ("frames/s",),
        """
from audio_vq.models.quantizer import VectorQuantizer
vq = VectorQuantizer(dim=64, codebook_size=512, ema=True).train()
z = torch.randn(16, 64, 1000)
def run():
    t = time.perf_counter()
    vq(z)
    return z.shape[0] * z.shape[2] / (time.perf_counter() - t)
run()
print(best(run, 5), audio_vq.__file__)
""",
    ),
    "extract": (
        ("audio s/s",),
        """
from audio_vq.units import UnitExtractor
extractor = UnitExtractor(model)
waves = [rng.uniform(-0.5, 0.5, 2 * model.sample_rate).astype(np.float32) for _ in range(8)]
def run():
    t = time.perf_counter()
    extractor.extract_batch(waves)
    return 2.0 * len(waves) / (time.perf_counter() - t)
run()
print(best(run, 3), audio_vq.__file__)
""",
    ),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkouts", nargs=2, type=Path, help="two repository roots (A and B)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--what", nargs="+", choices=list(CHILDREN), default=["generate"])
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    print(f"{'measure':10s} {'checkout':40s} numbers")
    for _ in range(args.rounds):
        for what in args.what:
            columns, child = CHILDREN[what]
            for root in args.checkouts:
                root = root.resolve()
                out = subprocess.run(
                    [sys.executable, "-c", SETUP + child],
                    env={**env, "PYTHONPATH": str(root)},
                    cwd=root,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                if not out[-1].startswith(str(root)):
                    raise SystemExit(f"{root}: imported audio_vq from {out[-1]} instead")
                numbers = "  ".join(f"{name} {float(v):,.0f}" for name, v in zip(columns, out))
                print(f"{what:10s} {str(root):40s} {numbers}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
