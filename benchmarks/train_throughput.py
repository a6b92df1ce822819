"""Time VQ-VAE training steps on the CPU and print a table: audio trained per second, peak memory.

    python benchmarks/train_throughput.py [--models small paper [phoneme25hz]] [--threads 1 2 auto]
                                          [--batch 8] [--crop-samples 8192] [--steps 0]
                                          [--target-seconds 30] [--busy 0 1]
    python benchmarks/train_throughput.py --peer r9y9 [--peer-source PATH] [--threads 1 2] [--precision fp32 bf16]
                                          [--memory default huge_pages low] [--checkpointing off on]

``--peer r9y9`` puts our VQ-VAE with the reference decoder (model ``reference``: model=paper with
REFERENCE_DECODER, i.e. 2 x 10 layers of kernel 2, residual 64, gate 128, skip 128, speaker
embedding 32, the 64-channel codes at 250 Hz repeated x64) beside r9y9's wavenet_vocoder WaveNet
at the same sizes (model ``r9y9``: mu-law 256 one-hot input, 64 local-conditioning channels at
250 Hz upsampled x64 by its transposed convolutions, an embedding of 32 per speaker, its default
weight normalisation and dropout 0.05), batch 4 x 1 s, Adam, each in a fresh process, and prints
the ratios (ours against r9y9 in fp32 with the same allocator, and against r9y9 as it comes;
r9y9's rows run in fp32 only). ``--memory huge_pages|low`` runs a row with that train.memory
allocator policy (audio_vq/memory.py, applied before the model is built; ``default`` leaves the
process as it comes), for r9y9's rows too: it is a property of the process, not of the model.
``--checkpointing on`` runs our rows with train.activation_checkpointing (each WaveNet stack's
activations recomputed in the backward pass instead of kept); r9y9's rows run without it.
r9y9's code is a benchmark-only dependency, never part of audio_vq: ``pip install
wavenet_vocoder==0.1.1`` (its PyPI release; needs numpy, scipy and any torch), or
``--peer-source`` a checkout of github.com/r9y9/wavenet_vocoder. Its conditioning features are
uniform noise in [0, 1) (it has no encoder); ours come from our encoder and quantizer, which our
rows therefore also pay for.

About 4-5 minutes on 2 quiet cores with the defaults (paper: ~16 s a step on one thread), 7 with
phoneme25hz, which costs what paper does (the sample-rate WaveNet decoder dominates). The
trainer's own default crop is 1 s (data.crop_seconds): --crop-samples 16000 for its numbers.

One training step is what the trainer does: the VQVAE's teacher-forced forward on a batch of
crops (with their mask and speaker ids), ``out.loss.backward()``, ``clip_grad_norm_`` and an Adam
step, in train mode. The crops come from the synthetic toy-speech corpus (generated once in a
temporary folder, not timed): random utterances, random offsets that are multiples of the hop,
drawn before the clock starts so that only the model is timed. The crop length is rounded up to
a multiple of each model's hop (8192 -> 8320 for phoneme25hz, hop 640).

Each (model, threads) row runs in a fresh subprocess (this script with the hidden --worker flag),
with torch.set_num_threads and OMP_NUM_THREADS / MKL_NUM_THREADS set there, so thread settings
don't leak between rows and ``ru_maxrss`` is that row's peak memory (model, optimizer state,
activations of one step, and the ~250 MiB of Python + torch + the built model). Two warm-up steps (the
first runs the EMA quantizer's k-means initialisation), then --steps timed ones; --steps 0 picks
the count from the second warm-up step so that each row times about --target-seconds.
``--threads auto`` is the trainer's train.threads=auto: a ThreadTuner (audio_vq/threads.py)
times steps at every candidate count and keeps the fastest, re-probing every 200 steps; its
first probe is part of the warm-up (untimed), so the row is its steady state; a re-probe every
200 steps adds about 3 x (slow step / fast step - 1) / 200 of a step per step on top (about 5% when
the slow count is 4x slower). ``--busy N`` runs each row again while N other processes spin on
the CPU (one busy Python loop each, started before the row and stopped after it): the row's
``busy`` column. The trainer's goal: with one of two cores busy, train.threads=auto keeps at
least 0.8 x the one-thread speed of the idle machine (printed at the end).
``audio s/s`` is seconds of audio trained per wall second, i.e. the real-time factor;
``10-min epoch`` is the wall time of one pass over 600 s of audio (the default synthetic corpus);
``CPU %`` is the row's process CPU time over wall time while timed (about 100 per busy thread:
well below 100 x threads means it waited for the cores); ``others`` is how many cores the rest
of the machine kept busy meanwhile (from /proc/stat, minus this row's own CPU time). On a shared
machine a row with others well above 0 is slowed down by other jobs: rerun it when it is quiet.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import busy_seconds  # benchmarks/machine.py

from audio_vq.memory import POLICIES as MEMORY_POLICIES

SAMPLE_RATE = 16_000
CORPUS_SECONDS = 600.0  # the embedded default corpus: 10 minutes
WARMUP_STEPS = 2
PEER = "r9y9"
REFERENCE = "reference"  # our model at the peer's sizes
REFERENCE_DECODER = [
    "model=paper",
    "model.decoder.residual_channels=64",
    "model.decoder.gate_channels=128",
    "model.decoder.skip_channels=128",
    "model.decoder.speaker_dim=32",
]
PEER_BATCH, PEER_CROP = 4, SAMPLE_RATE  # the configuration r9y9 was measured at: 4 x 1 s


def worker(args: argparse.Namespace) -> None:
    """One row: build the model, train warm-up + timed steps, print one JSON line."""
    import resource

    import numpy as np
    import torch

    from audio_vq import audio, contours, memory
    from audio_vq.data import crop_pitch
    from audio_vq.threads import ThreadTuner

    memory.apply(args.worker_allocator)  # "default" leaves the allocator as it comes
    tuner = ThreadTuner() if args.worker_threads == "auto" else None
    if tuner is None:
        torch.set_num_threads(int(args.worker_threads))
    torch.manual_seed(0)
    wavs = sorted(Path(args.corpus).glob("*/*.wav"))
    speakers = {name: i for i, name in enumerate(sorted({w.parent.name for w in wavs}))}
    clips = [(audio.load(w).astype(np.float32), speakers[w.parent.name]) for w in wavs]

    model, hop, loss_of = _build(args.worker_model, len(speakers), args.peer_source)
    # a pitch model's F0 contours, tracked once as the trainer does (audio_vq.contours), not timed
    pitched = getattr(model, "uses_pitch", False)  # r9y9's WaveNet has no pitch
    f0s = [contours.track_for(model, samples) for samples, _ in clips] if pitched else None
    if args.worker_checkpointing == "on":
        for module in model.modules():  # what the trainer does for train.activation_checkpointing=true
            if hasattr(module, "activation_checkpointing"):
                module.activation_checkpointing = True
    crop = math.ceil(args.crop_samples / hop) * hop
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    rng = np.random.default_rng(0)

    def draw_batch() -> tuple:
        """audio (B, T), mask (B, T), speaker (B,) and, for a pitch model, its f0 (B, frames) and
        excitation (B, 2 * harmonics, T) or None: built here as the trainer's loader workers do,
        outside the timed step."""
        x = np.zeros((args.batch, crop), dtype=np.float32)
        m = np.zeros((args.batch, crop), dtype=bool)
        spk = np.zeros(args.batch, dtype=np.int64)
        f0, e = [], []
        for b in range(args.batch):
            i = int(rng.integers(len(clips)))
            samples, spk[b] = clips[i]
            slack = len(samples) - crop
            offset = hop * int(rng.integers(slack // hop + 1)) if slack > 0 else 0
            piece = samples[offset : offset + crop]
            x[b, : len(piece)], m[b, : len(piece)] = piece, True
            if pitched:  # what the trainer's CropDataset gives a pitch model
                harmonics = model.decoder.harmonics if model.uses_excitation else None
                f, exc = crop_pitch(f0s[i], offset, x[b], hop, SAMPLE_RATE, harmonics, rng)
                f0.append(f)
                e.append(exc)
        batch = (torch.from_numpy(x), torch.from_numpy(m), torch.from_numpy(spk))
        if not pitched:
            return (*batch, None, None)
        return (*batch, torch.from_numpy(np.stack(f0)), torch.from_numpy(np.stack(e)) if e[0] is not None else None)

    def step(batch) -> float:
        x, m, spk, f0, e = batch
        if tuner:
            tuner.before_step()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.worker_precision == "bf16"):
            loss = loss_of(x, m, spk) if f0 is None else model(x, spk, m, f0, e).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        elapsed = time.perf_counter() - start
        if tuner:
            tuner.after_step(elapsed)
        if not torch.isfinite(loss):
            raise RuntimeError(f"non-finite loss {loss.item()}")
        return elapsed

    warmup = [step(draw_batch()) for _ in range(WARMUP_STEPS)]
    while tuner is not None and tuner.probing:  # the first probe is warm-up too; timed rows are steady state
        warmup.append(step(draw_batch()))
    steps = args.steps or max(args.min_steps, round(args.target_seconds / warmup[-1]))
    batches = [draw_batch() for _ in range(steps)]
    busy_start, cpu_start, start = busy_seconds(), time.process_time(), time.perf_counter()
    times = [step(b) for b in batches]
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    busy_end = busy_seconds()
    others = None if busy_start is None or busy_end is None else max(0.0, (busy_end - busy_start - cpu) / wall)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "model": args.worker_model,
                "precision": args.worker_precision,
                "allocator": args.worker_allocator,
                "checkpointing": args.worker_checkpointing,
                "threads": f"auto:{tuner.threads}" if tuner else torch.get_num_threads(),
                "parameters": parameters,
                "hop": hop,
                "batch": args.batch,
                "crop": crop,
                "warmup_s": warmup,
                "steps": steps,
                "step_s": times,
                "wall_s": wall,
                "cpu_s": cpu,
                "others_cores": others,
                "peak_rss_mib": peak_kib / 1024,
            }
        )
    )


def _build(name: str, num_speakers: int, peer_source: str | None):
    """(model in train mode, hop, loss(audio (B, T), mask (B, T), speaker (B,)) -> 0-d loss) of
    one of our presets, ``reference``, or r9y9's WaveNet."""
    import numpy as np
    import torch

    from audio_vq import audio
    from audio_vq.config import compose
    from audio_vq.models.vqvae import VQVAE

    torch.manual_seed(0)
    if name != PEER:
        overrides = REFERENCE_DECODER if name == REFERENCE else [f"model={name}"]
        model = VQVAE.from_config(compose("train", overrides).model, num_speakers=num_speakers).train()
        return model, model.hop, lambda x, m, spk: model(x, spk, m).loss
    if peer_source:
        sys.path.insert(0, str(Path(peer_source).expanduser().resolve()))
    try:
        from wavenet_vocoder import WaveNet
    except ImportError as e:
        raise SystemExit(
            f"--peer r9y9: cannot import wavenet_vocoder ({e}); pip install wavenet_vocoder==0.1.1 "
            "or give --peer-source <checkout of r9y9/wavenet_vocoder>"
        ) from None
    ref = compose("train", REFERENCE_DECODER).model
    d, channels, hop = ref.decoder, ref.decoder.mu_law_channels, int(np.prod(ref.encoder.strides))
    scales = [4] * round(math.log(hop, 4))  # 64 = 4 x 4 x 4, as r9y9's upsample_scales
    model = WaveNet(
        out_channels=channels,
        layers=d.stacks * d.layers_per_stack,
        stacks=d.stacks,
        residual_channels=d.residual_channels,
        gate_channels=d.gate_channels,
        skip_out_channels=d.skip_channels,
        kernel_size=d.kernel_size,
        cin_channels=ref.quantizer.dim,
        gin_channels=d.speaker_dim,
        n_speakers=num_speakers,
        upsample_conditional_features=True,
        upsample_scales=scales,
    ).train()
    features = ref.quantizer.dim

    def loss(x, m, spk):
        q = torch.as_tensor(audio.mulaw_encode(x.numpy(), channels), dtype=torch.long)  # (B, T)
        onehot = torch.nn.functional.one_hot(q, channels).transpose(1, 2).float()  # (B, C, T)
        c = torch.rand(x.size(0), features, x.size(1) // hop)
        logits = model(onehot, c=c, g=spk[:, None])
        return torch.nn.functional.cross_entropy(logits[:, :, :-1], q[:, 1:], reduction="none")[m[:, 1:]].mean()

    return model, hop, loss


def run_row(
    args: argparse.Namespace,
    corpus: Path,
    model: str,
    precision: str,
    allocator: str,
    checkpointing: str,
    threads: str,
    busy: int,
) -> dict:
    """Run one (model, precision, memory policy, checkpointing, threads) row in a fresh interpreter, with
    ``busy`` spinning processes beside it; its JSON result."""
    env = dict(os.environ)
    if threads != "auto":
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--worker-model",
        model,
        "--worker-precision",
        precision,
        "--worker-allocator",
        allocator,
        "--worker-checkpointing",
        checkpointing,
        "--worker-threads",
        str(threads),
        "--corpus",
        str(corpus),
        "--batch",
        str(args.batch),
        "--crop-samples",
        str(args.crop_samples),
        "--steps",
        str(args.steps),
        "--min-steps",
        str(args.min_steps),
        "--target-seconds",
        str(args.target_seconds),
        "--lr",
        str(args.lr),
        "--clip",
        str(args.clip),
        *(["--peer-source", args.peer_source] if args.peer_source else []),
    ]
    try:
        done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    if done.returncode != 0:
        raise SystemExit(
            f"worker for model={model} precision={precision} memory={allocator} "
            f"checkpointing={checkpointing} threads={threads} "
            f"failed with exit code {done.returncode}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["small", "paper"], help="model presets (small, paper, phoneme25hz)"
    )
    parser.add_argument("--threads", nargs="+", default=["1", "2", "auto"], help="counts, or auto (ThreadTuner)")
    parser.add_argument("--busy", type=int, nargs="+", default=[0], help="competing busy processes per row (e.g. 0 1)")
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["fp32"],
        choices=["fp32", "bf16"],
        help="fp32, or bf16 autocast (train.precision=bf16) for each row",
    )
    parser.add_argument(
        "--memory",
        dest="allocator",
        nargs="+",
        default=["default"],
        choices=MEMORY_POLICIES,
        help="the process's allocator as it comes, or a train.memory policy",
    )
    parser.add_argument(
        "--checkpointing",
        nargs="+",
        default=["off"],
        choices=["off", "on"],
        help="our rows without/with train.activation_checkpointing",
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--crop-samples", type=int, default=8192, help="samples per crop, rounded up to a multiple of the model's hop"
    )
    parser.add_argument("--steps", type=int, default=0, help="timed steps per row (0 = from --target-seconds)")
    parser.add_argument(
        "--target-seconds", type=float, default=30.0, help="with --steps 0: time about this long per row"
    )
    parser.add_argument("--min-steps", type=int, default=2, help="with --steps 0: at least this many")
    parser.add_argument("--lr", type=float, default=4e-4, help="Adam learning rate (train.lr)")
    parser.add_argument("--clip", type=float, default=1.0, help="max gradient norm (train.grad_clip)")
    parser.add_argument(
        "--corpus-minutes", type=float, default=1.0, help="size of the synthetic corpus the crops come from"
    )
    parser.add_argument(
        "--peer",
        choices=[PEER],
        help="time our reference-sized model beside r9y9's WaveNet "
        f"(models {REFERENCE} and {PEER}, batch {PEER_BATCH} x {PEER_CROP} samples)",
    )
    parser.add_argument("--peer-source", help="a checkout of r9y9/wavenet_vocoder (else the installed package)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-model", help=argparse.SUPPRESS)
    parser.add_argument("--worker-threads", help=argparse.SUPPRESS)
    parser.add_argument("--worker-precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--worker-allocator", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--worker-checkpointing", default="off", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.peer:
        args.models, args.batch, args.crop_samples = [REFERENCE, PEER], PEER_BATCH, PEER_CROP

    import torch  # for the version line only; the rows import it in their own processes

    from audio_vq.corpora.synthetic import generate

    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        corpus = generate(Path(tmp) / "corpus", minutes=args.corpus_minutes)
        print(
            f"training step (forward + backward + clip_grad_norm_ + Adam), batch {args.batch}, "
            f"crops of synthetic speech, {os.cpu_count()} CPUs, torch {torch.__version__}"
        )
        header = (
            f"{'model':>11}  {'prec':>4}  {'memory':>10}  {'ckpt':>4}  {'threads':>7}  {'busy':>4}  {'params M':>8}  "
            f"{'batch x crop':>12}  {'steps':>5}  {'s/step':>7}  {'audio s/s':>9}  {'10-min epoch':>12}  "
            f"{'peak RSS MiB':>12}  {'CPU %':>5}  {'others':>6}"
        )
        print(header, flush=True)
        load_before = os.getloadavg()[0]
        rows = []
        configs = [
            (m, p, a, c)
            for m in args.models
            for p in (args.precision if m != PEER else ["fp32"])
            for a in args.allocator
            for c in (args.checkpointing if m != PEER else ["off"])
        ]
        for model, precision, allocator, checkpointing in configs:
            for busy, threads in [(b, t) for b in args.busy for t in args.threads]:
                r = run_row(args, corpus, model, precision, allocator, checkpointing, threads, busy)
                r["busy"], r["setting"] = busy, threads
                r["s_per_step"] = r["wall_s"] / r["steps"]
                r["speed"] = r["batch"] * r["crop"] / SAMPLE_RATE / r["s_per_step"]
                epoch = CORPUS_SECONDS / r["speed"]
                others = "?" if r["others_cores"] is None else f"{r['others_cores']:.2f}"
                epoch_text = f"{epoch / 60:.1f} min" if epoch < 5400 else f"{epoch / 3600:.1f} h"
                print(
                    f"{model:>11}  {precision:>4}  {allocator:>10}  {checkpointing:>4}  {r['threads']:>7}  {busy:>4}  "
                    f"{r['parameters'] / 1e6:>8.2f}  {r['batch']:>3} x {r['crop']:<6}  {r['steps']:>5}  "
                    f"{r['s_per_step']:>7.3f}  {r['speed']:>9.3f}  {epoch_text:>12}  {r['peak_rss_mib']:>12.0f}  "
                    f"{100 * r['cpu_s'] / r['wall_s']:>5.0f}  {others:>6}",
                    flush=True,
                )
                rows.append(r)
    print(f"1-min load average: {load_before:.2f} before the first row, {os.getloadavg()[0]:.2f} after the last")
    for model, precision, allocator, checkpointing in configs:
        speeds = {
            (r["setting"], r["busy"]): r["speed"]
            for r in rows
            if (r["model"], r["precision"], r["allocator"], r["checkpointing"])
            == (model, precision, allocator, checkpointing)
        }
        ones = speeds.get(("1", 0))
        for (threads, busy), speed in sorted(speeds.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            if ones and (threads, busy) != ("1", 0):
                print(
                    f"{model} {precision} {allocator} checkpointing={checkpointing}: "
                    f"threads={threads} with {busy} busy process(es) / "
                    f"1 thread idle = {speed / ones:.2f}x"
                )
    if args.peer:

        def row(model, precision, allocator, checkpointing, threads):
            found = [
                r
                for r in rows
                if (r["model"], r["precision"], r["allocator"], r["checkpointing"], r["setting"], r["busy"])
                == (model, precision, allocator, checkpointing, threads, 0)
            ]
            return found[0] if found else None

        for threads in args.threads:
            for _, precision, allocator, checkpointing in [c for c in configs if c[0] == REFERENCE]:
                ours = row(REFERENCE, precision, allocator, checkpointing, threads)
                for peer_allocator in sorted({allocator, "default"} & set(args.allocator)):
                    peer = row(PEER, "fp32", peer_allocator, "off", threads)
                    if ours and peer:
                        speed, memory = (ours[k] / peer[k] for k in ("speed", "peak_rss_mib"))
                        print(
                            f"threads={threads}: {REFERENCE} {precision} {allocator} checkpointing={checkpointing} / "
                            f"{PEER} fp32 {peer_allocator}: "
                            f"speed {speed:.2f}x (goal >= 1.5x), peak RSS {memory:.2f}x (goal <= 0.5x)"
                        )


if __name__ == "__main__":
    main()
