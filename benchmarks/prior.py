"""Time the prior over units and print a table: sampling units per second with the KV cache and
with the whole prefix recomputed at every step (batch 1 and 16), training units per second,
and the time to sample a 4 s sample's units against the time to render it with the WaveNet.

    python benchmarks/prior.py [--prior tiny] [--units 250] [--threads 1] [--model small]

Random weights (speed does not depend on them): the prior of the preset ``--prior`` at K = 128
(the demo's), the VQ-VAE of ``--model`` for rendering (its numba generator, batch 1). Every row
runs in this one process, so the ratios are the numbers to compare; the machine being busy
scales all rows alike only roughly: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import time

import torch
from omegaconf import OmegaConf

from audio_vq.config import compose
from audio_vq.generate import Generator
from audio_vq.models.prior import UnitPrior
from audio_vq.models.vqvae import VQVAE

K = 128
RENDER_SECONDS = 4.0


def timed(fn, repeat: int = 2) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


@torch.no_grad()
def recompute(prior: UnitPrior, steps: int, batch: int) -> None:
    """Sampling without a cache: the whole prefix through the model at every step."""
    tokens = prior.start_tokens(None, batch, "cpu")
    for _ in range(steps):
        logits = prior(tokens).unit_logits[:, -1]
        tokens = torch.cat([tokens, logits.softmax(-1).multinomial(1)], dim=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default="tiny", help="prior preset (configs/prior/)")
    ap.add_argument("--units", type=int, default=250, help="units sampled per row (one second at 250 Hz)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default="small", help="VQ-VAE preset for the rendering row")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    p = compose("train_prior", [f"prior={args.prior}", "units=x"]).prior
    prior = UnitPrior(K, p.dim, p.layers, p.heads, p.max_len, dropout=0.0).eval()
    steps = min(args.units, p.max_len - 1)
    rows = []
    for batch in (1, 16):
        t = timed(lambda: prior.sample(steps, batch=batch))
        rows.append((f"sample, KV cache, batch {batch}", batch * steps / t))
        t = timed(lambda: recompute(prior, steps, batch), repeat=1)
        rows.append((f"sample, prefix recomputed, batch {batch}", batch * steps / t))
    prior.train()
    opt = torch.optim.Adam(prior.parameters(), lr=1e-4)
    units = torch.randint(0, K, (16, p.max_len - 1))
    lengths = torch.full((16,), p.max_len - 1)

    def train_steps(n=5):
        for _ in range(n):
            loss, _ = prior.loss(units, lengths)
            opt.zero_grad()
            loss.backward()
            opt.step()

    train_steps(1)
    t = timed(train_steps, repeat=1)
    rows.append(("train (batch 16 crops)", 5 * units.numel() / t))
    prior.eval()

    model_cfg = OmegaConf.to_container(compose("train", [f"model={args.model}"]).model, resolve=True)
    model = VQVAE.from_config(model_cfg, num_speakers=1).eval()
    frames = int(RENDER_SECONDS * model.sample_rate / model.hop)
    sample_t = (
        timed(lambda: prior.sample(min(frames, p.max_len - 1), batch=1), repeat=1) * frames / min(frames, p.max_len - 1)
    )
    gen = Generator(model, backend="auto", threads=args.threads)
    codes = torch.randint(0, model.quantizer.codebook_size, (1, frames))
    gen.generate([codes], [0], seed=0)  # compile the kernel
    render_t = timed(lambda: gen.generate([codes], [0], seed=0), repeat=1)

    print(
        f"prior={args.prior} (dim {p.dim}, {p.layers} layers, max_len {p.max_len}), K = {K}, {args.threads} thread(s)\n"
    )
    print("| row | units/s |\n|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")
    print(
        f"\n{RENDER_SECONDS:g} s sample ({frames} units at {model.sample_rate / model.hop:g} Hz, model={args.model}): "
        f"sampling the units {sample_t:.2f} s, rendering {render_t:.2f} s (sampling / rendering = "
        f"{sample_t / render_t:.3f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
