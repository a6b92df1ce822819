"""What a configuration learns at a fixed step budget: train each named configuration on the
demo corpus, evaluate it on the held-out utterances, print one table.

    python benchmarks/quality.py [--configs baseline noise0.02 ...] [--steps 600] [--seeds 1]
                                 [--jobs 1] [--threads auto] [--exp /tmp/audio_vq_quality] [--list]

Every run is ``audio-vq train`` with the demo recipe's settings (model=small, train=demo, the
synthetic corpus with every speaker reading the same 30 sentences) plus the configuration's
overrides, for exactly --steps steps (steps, not minutes: the table does not depend on how busy
the machine was), with train.threads=--threads; --jobs trainings go side by side. Each trained
model is then evaluated (``audio-vq evaluate`` on the held-out splits, one thread, beside the
next training) with the configuration's evaluate overrides (e.g. a sampling
temperature: such rows reuse the trained model of the row they name in ``model_of``).

A run is resumed or reused when its folder already holds it: training resumes from its
checkpoints and stops at --steps; an evaluation is redone only when its model is newer than its
report. Rows print as markdown (paste into RESULTS.md); each row's numbers come from its
``report.json`` and the MFCC k-means baseline in it has the row's own K and frame rate.

--seeds N repeats every row with seeds 0..N-1: seed s sets train.seed=s (weights, crops, batch
order) and the evaluation's seed=s (its ABX triples, k-means and sampling), in a run folder of
its own (<name> for seed 0, so a one-seed table reuses and prints exactly what it did before,
<name>.seed<s> for the others). Each seed's row prints, then a row "<name> (N seeds)" whose
every number is the mean ± half the range (max - min) over the seeds. Two single runs of one
configuration can differ by up to that range, so a difference between single-run rows smaller
than it is not the configuration's.

Columns:
  bit/s           nominal (the levels' frame rates summed x log2 K) / entropy bitrate of the
                  frame stream (each level at its own rate, given the levels before it)
  PNMI / MFCC     PNMI of the codes, of MFCC+delta k-means at the same K and frame rate
  acc             many-to-one code-to-phone accuracy (MFCC's after the slash)
  ABX w / a       ABX phone-only error %, within / across speakers, codebook vectors (MFCC's in the next column)
  spk<-codes      speaker-ID accuracy from code histograms (lower: fewer speaker cues in the units)
  gain, best      decoder speaker use: teacher-forced loss gain of the own speaker (nats/sample),
                  and the share of excerpts where the own speaker is best
  conv->tgt       conversions classified as their target speaker (speaker-ID probe on real audio)
  rec->own        reconstructions classified as their own speaker
  STOI            of reconstructions
  F0 rec / conv   share of reconstructions with median F0 within 10% of the source's, and of
                  conversions within 10% of the target speaker's (pYIN; noise fails)
  voiced rec/src  pYIN's voiced-frame share of the reconstructions, and of their sources
  F0 RMSE st      reconstructions' F0 RMSE (semitones) on frames voiced in both (pYIN)
  conv F0 err     conversions' median relative error of their median F0 from the target speaker's
  SECS closer     share of conversions closer to the target than to the source speaker (SECS)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

# The demo recipe's training setup (recipes/demo/run.sh): every row starts from it, with the
# paper's decoder (model=small's default became pitch=excitation from the rows of issue 28, so
# the rows before them pin what they measured; the pitch rows override it).
BASE = ["model=small", "train=demo", "data.crop_seconds=0.5", "model.decoder.pitch=none"]

# The exploration of issue 12 varied one thing at a time from the defaults of then (250 Hz, no
# input noise): its rows pin those, so they still mean what RESULTS.md says after the defaults
# moved (model=small is now 50 Hz with input noise 0.1: the `baseline` row, = `50hz+noise0.1`).
HZ250 = ["model.encoder.strides=[2,2,2,2,2,2]"]
NOISE0 = ["model.input_noise=0.0"]
OLD = [*HZ250, *NOISE0]  # rows that set their own strides pin NOISE0 only
RVQ4 = ["model/quantizer=residual", "model.quantizer.num_quantizers=4"]
RVQ2 = ["model/quantizer=residual", "model.quantizer.num_quantizers=2"]
HIERARCHY = ["model/quantizer=hierarchical"]  # what model=hierarchical sets: a top level at 8x the hop

# name -> (train overrides, evaluate overrides, model_of: the row whose trained model an
# evaluate-only row reuses, or None). Hypotheses of issue 12; the table decides.
CONFIGS: dict[str, tuple[list[str], list[str], str | None]] = {
    "baseline": ([], [], None),  # model=small (50 Hz, input_noise 0.1) with the paper's decoder (no pitch)
    "noise0": (OLD, [], None),  # the defaults before issue 12
    "jitter0.12": (["model.jitter=0.12", *OLD], [], None),
    "jitter0.5": (["model.jitter=0.5", *OLD], [], None),
    "noise0.02": ([*HZ250, "model.input_noise=0.02"], [], None),
    "noise0.05": ([*HZ250, "model.input_noise=0.05"], [], None),
    "noise0.1": ([*HZ250, "model.input_noise=0.1"], [], None),
    "50hz+noise0.1": (["model.encoder.strides=[2,2,2,2,4,5]", "model.input_noise=0.1"], [], None),
    "noise0.05+adversary0.1": ([*HZ250, "model.input_noise=0.05", "model.adversary.weight=0.1"], [], None),
    "dropout0.3": (["model.input_dropout=0.3", *OLD], [], None),
    "adversary0.1": (["model.adversary.weight=0.1", *OLD], [], None),
    "adversary1": (["model.adversary.weight=1.0", *OLD], [], None),
    "125hz": (["model.encoder.strides=[2,2,2,2,2,2,2]", *NOISE0], [], None),
    "50hz": (["model.encoder.strides=[2,2,2,2,4,5]", *NOISE0], [], None),
    "K64": (["model.quantizer.codebook_size=64", *OLD], [], None),
    "K256": (["model.quantizer.codebook_size=256", *OLD], [], None),
    "K512": (["model.quantizer.codebook_size=512", *OLD], [], None),
    "vector": (
        [
            "model/quantizer=vector",
            "model.quantizer.dim=32",
            "model.quantizer.codebook_size=128",
            "model.quantizer.kmeans_init=true",
            "model.quantizer.restart_after=100",
            *OLD,
        ],
        [],
        None,
    ),
    "restart20": (["model.quantizer.restart_after=20", *OLD], [], None),
    "residual2": (["model.encoder.residual_layers=2", *OLD], [], None),
    "rf1stack": (["model.decoder.stacks=1", *OLD], [], None),
    "rf3stacks": (["model.decoder.stacks=3", *OLD], [], None),
    "mol": (["model.decoder.output=logistic_mixture", *OLD], [], None),
    "lr4e-4": (["train.lr=4.0e-4", *OLD], [], None),
    "batch16": (["train.batch_size=16", *OLD], [], None),
    "noise0@t0.8": ([], ["temperature=0.8"], "noise0"),
    "noise0@t0.6": ([], ["temperature=0.6"], "noise0"),
    "baseline@t0.7": ([], ["temperature=0.7"], "baseline"),
    # issue 18: residual VQ, 4 levels of K = 128 (quantizer dropout 0.5), decoded from its first n
    "rvq4": (RVQ4, [], None),
    "rvq4@levels1": ([], ["levels=1"], "rvq4"),
    "rvq4@levels2": ([], ["levels=2"], "rvq4"),
    "rvq4@levels3": ([], ["levels=3"], "rvq4"),
    "rvq2": (RVQ2, [], None),  # trained with 2 levels: beside rvq4's first two
    "hier": (HIERARCHY, [], None),  # VQ-VAE-2's two levels: 6.25 Hz top, 50 Hz bottom given it
    # issue 28: pitch given to the decoder
    "pitch-frame": (["model.decoder.pitch=frame"], [], None),
    "excitation": (["model.decoder.pitch=excitation"], [], None),  # the defaults since issue 28
    # bf16 autocast: about 2x faster on a CPU with bf16 instructions (issue 17's Xeon), 6x slower
    # on one without (RESULTS.md, issue 28): a row for such a machine
    "excitation-bf16": (["model.decoder.pitch=excitation", "train.precision=bf16"], [], None),
    "excitation@t1": ([], ["voiced_temperature=null"], "excitation"),  # every sample at temperature 1 (the
    # decode default before voiced_temperature: what the rows above this one were decoded at)
    "excitation@t0.7": ([], ["temperature=0.7", "voiced_temperature=null"], "excitation"),
    "excitation@t0.5": ([], ["temperature=0.5", "voiced_temperature=null"], "excitation"),
    # LPCNet's idea: the lower temperature on the voiced samples only (unvoiced ones keep 1.0)
    "excitation@vt0.5": ([], ["voiced_temperature=0.5"], "excitation"),
    "excitation-h4": (["model.decoder.pitch=excitation", "model.decoder.harmonics=4"], [], None),
    "aux-mel": (["model.aux_mel.weight=1.0"], [], None),
    "excitation+aux-mel": (["model.decoder.pitch=excitation", "model.aux_mel.weight=1.0"], [], None),
    "excitation+cpc": (["model.decoder.pitch=excitation", "model.cpc.weight=1.0"], [], None),  # VQ-CPC
}

# (header, separator, decimals of each number in the cell)
COLUMNS: list[tuple[str, str, tuple[int, ...]]] = [
    ("bit/s nominal / entropy", " / ", (0, 0)),
    ("PNMI / MFCC", " / ", (3, 3)),
    ("acc / MFCC", " / ", (3, 3)),
    ("ABX w / a", " / ", (1, 1)),
    ("MFCC ABX w / a", " / ", (1, 1)),
    ("spk<-codes", "", (2,)),
    ("gain, best", ", ", (4, 2)),
    ("conv->tgt", "", (2,)),
    ("rec->own", "", (2,)),
    ("STOI", "", (2,)),
    ("F0 rec / conv", " / ", (2, 2)),
    ("voiced rec / src", " / ", (2, 2)),
    ("F0 RMSE st", "", (2,)),
    ("conv F0 err", "", (3,)),
    ("SECS closer", "", (2,)),
    ("loss@end", "", (2,)),
]
Numbers = list[tuple[float | None, ...]]  # one tuple per column of COLUMNS


def sh(cmd: list[str], log: Path, threads: str = "1") -> None:
    env = dict(os.environ)
    if threads != "auto":
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, NUMBA_NUM_THREADS=threads)
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        done = subprocess.run(["nice", "-n", "10", *cmd], stdout=f, stderr=subprocess.STDOUT, env=env)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed (exit {done.returncode}); see {log}")


def prepare(exp: Path) -> Path:
    data = exp / "data"
    if not (data / "manifest.jsonl").is_file():
        sh(
            [
                "audio-vq",
                "prepare",
                "corpus=synthetic",
                "corpus.sentences=30",
                f"root={exp / 'synthetic'}",
                f"out={data}",
            ],
            exp / "prepare.log",
        )
    return data


def last_step(run: Path) -> int:
    ckpts = sorted((run / "checkpoints").glob("step_*.pt"))
    return int(ckpts[-1].stem.split("_")[1]) if ckpts else 0


def seeded(name: str, seed: int) -> str:
    """The folder (and log) name of a row's run with ``seed``: seed 0 keeps the row's own name."""
    return name if seed == 0 else f"{name}.seed{seed}"


def train(name: str, seed: int, overrides: list[str], data: Path, exp: Path, steps: int, threads: str) -> Path:
    run = exp / seeded(name, seed)
    if last_step(run) >= steps and (run / "model" / "checksum.sha256").is_file():
        return run
    resume = ["train.resume=true"] if last_step(run) > 0 else []
    sh(
        [
            "audio-vq",
            "train",
            f"data.manifest={data / 'manifest.jsonl'}",
            *BASE,
            f"train.max_steps={steps}",
            "train.max_minutes=null",
            f"train.threads={threads}",
            "data.num_workers=1",
            f"hydra.run.dir={run}",
            f"train.seed={seed}",
            *resume,
            *overrides,
        ],
        exp / f"{seeded(name, seed)}.log",
        threads,
    )
    return run


def evaluate(name: str, seed: int, run: Path, overrides: list[str], data: Path, exp: Path) -> dict:
    out = exp / "eval" / seeded(name, seed)
    report = out / "report.json"
    model = run / "model" / "checksum.sha256"
    if not (report.is_file() and report.stat().st_mtime > model.stat().st_mtime):
        sh(
            [
                "audio-vq",
                "evaluate",
                f"model={run / 'model'}",
                f"data={data}",
                f"out={out}",
                "threads=1",
                "device=cpu",
                f"seed={seed}",
                *overrides,
            ],
            exp / f"{seeded(name, seed)}.log",
        )
    return json.loads(report.read_text())


def numbers(r: dict, run: Path) -> Numbers:
    """A row's numbers, one tuple per column of COLUMNS, from its report and its training metrics."""
    sysm = (r.get("phonetic") or {}).get("systems", {})
    model, mfcc = sysm.get("model", {}), sysm.get("mfcc_kmeans", {})
    abx = r.get("abx") or {}
    mine = abx.get("model codebook vectors, phone only", {})
    base = abx.get("mfcc, phone only", {})
    cv = r.get("conversion") or {}
    su = cv.get("decoder_speaker_use") or {}
    f0 = (r.get("f0") or {}).get("seen") or {}
    rec = (r.get("reconstruction") or {}).get("mean", {})
    secs = (((r.get("voice") or {}).get("secs") or {}).get("seen")) or {}
    loss = None
    metrics = run / "metrics.csv"
    if metrics.is_file():
        with open(metrics, newline="") as fh:
            train_rows = [r for r in csv.DictReader(fh) if r["split"] == "train"]
        if train_rows:
            loss = float(train_rows[-1]["reconstruction_loss"])
    c = r.get("codebook") or {}
    return [
        (c.get("bitrate_nominal"), c.get("bitrate_entropy")),
        (model.get("pnmi"), mfcc.get("pnmi")),
        (model.get("code_to_phone_accuracy"), mfcc.get("code_to_phone_accuracy")),
        (mine.get("within"), mine.get("across")),
        (base.get("within"), base.get("across")),
        ((cv.get("code_probe") or {}).get("accuracy"),),
        (su.get("gain_nats"), su.get("own_is_best")),
        (cv.get("classified_as_target"),),
        (cv.get("probe_reconstruction_accuracy"),),
        (rec.get("stoi"),),
        (f0.get("reconstruction_within"), f0.get("conversion_within")),
        (f0.get("reconstruction_voiced"), f0.get("source_voiced")),
        (f0.get("reconstruction_f0_rmse_semitones"),),
        (f0.get("conversion_median_f0_error"),),
        (secs.get("closer_to_target"),),
        (loss,),
    ]


def row(name: str, seeds: list[Numbers]) -> list[str]:
    """A table row: one seed's numbers as they are, several seeds' as mean ± half-range (max - min) / 2
    (n/a where a seed has none)."""

    def cell(values: list[float | None], d: int) -> str:
        if any(v is None for v in values):
            return "n/a"
        mean = sum(values) / len(values)
        return f"{mean:.{d}f}" if len(values) == 1 else f"{mean:.{d}f}±{(max(values) - min(values)) / 2:.{d}f}"

    return [name] + [
        sep.join(cell([s[c][i] for s in seeds], d) for i, d in enumerate(decimals))
        for c, (_, sep, decimals) in enumerate(COLUMNS)
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["baseline"], help="names from CONFIGS (or 'all')")
    ap.add_argument("--steps", type=int, default=600, help="training steps of every row")
    ap.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="runs of every row, with seeds 0..N-1; several print their mean ± half-range",
    )
    ap.add_argument("--jobs", type=int, default=1, help="trainings side by side")
    ap.add_argument(
        "--threads",
        default="auto",
        help="train.threads of each training (auto or N); evaluations run on one thread beside the next training",
    )
    ap.add_argument("--exp", type=Path, default=Path("/tmp/audio_vq_quality"))
    ap.add_argument("--list", action="store_true", help="print the configurations and exit")
    args = ap.parse_args()
    if args.list:
        for name, (t, e, m) in CONFIGS.items():
            print(
                f"{name:16s} train: {' '.join(t) or '-'}  evaluate: {' '.join(e) or '-'}"
                + (f"  (model of {m})" if m else "")
            )
        return 0
    names = list(CONFIGS) if args.configs == ["all"] else args.configs
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        print(f"quality.py: error: unknown configuration(s) {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    if args.seeds < 1:
        print(f"quality.py: error: --seeds {args.seeds}: needs at least 1 seed", file=sys.stderr)
        return 2
    exp = args.exp.expanduser().resolve()
    exp.mkdir(parents=True, exist_ok=True)
    data = prepare(exp)
    started = time.monotonic()
    seeds = range(args.seeds)

    trained = [(t, s) for t in sorted({CONFIGS[n][2] or n for n in names}, key=list(CONFIGS).index) for s in seeds]

    runs: dict[tuple[str, int], Path] = {}
    failed: dict[tuple[str, int], str] = {}

    def evaluate_one(n: str, s: int) -> dict:
        t0 = time.monotonic()
        r = evaluate(n, s, runs[CONFIGS[n][2] or n, s], CONFIGS[n][1], data, exp)
        print(
            f"[{time.monotonic() - started:6.0f} s] evaluated {seeded(n, s)} ({time.monotonic() - t0:.0f} s)",
            flush=True,
        )
        return r

    reports: dict[tuple[str, int], Future] = {}
    with ThreadPoolExecutor(args.jobs) as trainers, ThreadPoolExecutor(1) as evaluators:

        def train_one(t: str, s: int) -> None:
            t0 = time.monotonic()
            try:
                runs[t, s] = train(t, s, CONFIGS[t][0], data, exp, args.steps, args.threads)
            except RuntimeError as e:  # one failed run is reported, the others go on
                failed[t, s] = str(e)
                print(f"[{time.monotonic() - started:6.0f} s] {e}", flush=True)
                return
            print(
                f"[{time.monotonic() - started:6.0f} s] trained {seeded(t, s)} ({time.monotonic() - t0:.0f} s)",
                flush=True,
            )
            for n in names:
                if (CONFIGS[n][2] or n) == t:
                    reports[n, s] = evaluators.submit(evaluate_one, n, s)

        for f in [trainers.submit(train_one, t, s) for t, s in trained]:
            f.result()
    over = "" if args.seeds == 1 else f", seeds {', '.join(map(str, seeds))} (their rows: mean ± (max - min) / 2)"
    print(
        f"\n{args.steps} steps per row{over}, train.threads={args.threads}, {args.jobs} job(s), "
        f"{time.monotonic() - started:.0f} s; reports in {exp / 'eval'}\n"
    )
    header = ["config", *(c[0] for c in COLUMNS)]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for n in names:
        done = []
        for s in seeds:
            try:
                done.append(numbers(reports[n, s].result(), runs[CONFIGS[n][2] or n, s]))
                print("| " + " | ".join(row(seeded(n, s), done[-1:])) + " |")
            except (KeyError, RuntimeError) as e:
                print(f"| {seeded(n, s)} | failed: {failed.get((CONFIGS[n][2] or n, s), e)} |")
        if args.seeds > 1 and done:
            seeds_done = f"{len(done)} seeds" if len(done) == args.seeds else f"{len(done)} of {args.seeds} seeds"
            print("| " + " | ".join(row(f"{n} ({seeds_done})", done)) + " |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
