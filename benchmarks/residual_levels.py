"""Rate against reconstruction for codes of several levels: how well a residual VQ-VAE's first n
levels decode, and a two-level hierarchy, beside the one-codebook model trained the same way.

    python benchmarks/residual_levels.py [--models baseline rvq2 rvq4 hier] [--steps 400] [--jobs 2]
                                         [--exp /tmp/audio_vq_quality] [--max-utterances 40] [--seconds 2]

Trains (or reuses, resuming as quality.py does, in the same --exp folder) quality.py's
configurations of those names with the demo recipe's settings for --steps steps: ``baseline``
(model=small, one ema codebook), ``rvq<Q>`` (model/quantizer=residual with Q levels, quantizer
dropout 0.5) and ``hier`` (model/quantizer=hierarchical: a top level at 8x the hop, the bottom
conditioned on it); --jobs trainings side by side, one thread each. Then, on the held-out
(valid and test) utterances, at most --max-utterances of them, the first --seconds of each, it
prints per model and per number of levels n that decodes: the nominal bitrate (the n levels'
frame rates summed x log2 K), the mean squared error between the encoder output and its
quantization by the first n levels (relative to the encoder output's energy; n/a for the
hierarchy, whose latents are not a quantization of the encoder output but its two levels side
by side), and the decoder's teacher-forced reconstruction loss in nats per sample (the training
loss, no sampling) with the first n levels' latents.
"""

from __future__ import annotations

import argparse
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from quality import CONFIGS, prepare, train  # benchmarks/quality.py: the demo recipe's training setup

from audio_vq import audio
from audio_vq.checkpoint import load_model
from audio_vq.manifest import read_manifest

MODELS = ("baseline", "rvq2", "rvq4", "hier")


@torch.no_grad()
def measure(model_dir: Path, data: Path, max_utterances: int, seconds: float) -> list[dict]:
    """Per number of levels n: bitrate, relative quantization error, teacher-forced loss."""
    model = load_model(model_dir).eval()
    held_out = [u for u in read_manifest(data) if u.split in ("valid", "test")][:max_utterances]
    length = int(seconds * model.sample_rate) // model.hop * model.hop
    waves = [audio.load(u.path, model.sample_rate)[:length] for u in held_out]
    waves = [w for w in waves if len(w) == length]
    x = torch.from_numpy(np.stack(waves))
    speakers = torch.tensor([model.speaker_index[u.speaker] for u, w in zip(held_out, waves)])
    z = model.encoder(x)
    codes = model.encode(x)
    rates = [model.sample_rate / hop for hop in model.level_hops]
    rows = []
    for n in range(model.min_levels, model.num_quantizers + 1):
        latents = model.latents(codes[:, :n])
        error = float((z - latents).pow(2).mean() / z.pow(2).mean()) if latents.shape == z.shape else None
        loss = float(model.decoder.loss(model.decoder_logits(x, latents, speakers), x))
        rows.append(
            {
                "levels": n,
                "bitrate": sum(rates[:n]) * math.log2(model.quantizer.codebook_size),
                "quantization_error": error,
                "reconstruction_loss": loss,
                "utterances": len(waves),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="quality.py configurations")
    ap.add_argument("--steps", type=int, default=400, help="training steps of every model (the demo's budget)")
    ap.add_argument("--jobs", type=int, default=2, help="trainings side by side")
    ap.add_argument("--exp", type=Path, default=Path("/tmp/audio_vq_quality"))
    ap.add_argument("--max-utterances", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=2.0, help="of each held-out utterance")
    args = ap.parse_args()
    args.exp.mkdir(parents=True, exist_ok=True)
    data = prepare(args.exp)
    configs = {name: CONFIGS[name][0] for name in args.models}
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = dict(
            zip(configs, pool.map(lambda kv: train(kv[0], kv[1], data, args.exp, args.steps, "1"), configs.items()))
        )
    torch.set_num_threads(2)
    print(f"held-out utterances of the demo corpus, first {args.seconds:g} s each, after {args.steps} steps")
    print("| model | levels | bitrate (bit/s) | quantization error (relative) | reconstruction loss (nats/sample) |")
    print("|---|---|---|---|---|")
    for name, run in runs.items():
        for r in measure(run / "model", data / "manifest.jsonl", args.max_utterances, args.seconds):
            error = "n/a" if r["quantization_error"] is None else f"{r['quantization_error']:.3f}"
            print(
                f"| {name} | {r['levels']} | {r['bitrate']:.0f} | {error} | {r['reconstruction_loss']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
