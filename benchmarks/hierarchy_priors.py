"""The priors of a two-level hierarchy (VQ-VAE-2): what its top level costs under a prior, and
how much the top codes tell a prior of the bottom codes.

    python benchmarks/hierarchy_priors.py [--exp /tmp/audio_vq_quality] [--steps 400] [--prior-steps 300]
                                          [--threads 2]

Trains (or reuses, in the same --exp folder) quality.py's ``hier`` model for --steps steps,
extracts the units of every utterance of the demo corpus (jsonl, frame level), and trains three
priors on them (prior=tiny, train=prior, --prior-steps steps, the manifest's speakers as start
tokens): ``top`` (level=0, one unit per top code), ``bottom`` (level=1) and ``bottom|top``
(level=1 condition_level=0, the bottom given the top held over its frames). Each is scored by
evaluate-prior on its test split; the split is drawn from the utterance ids and the seed alone,
so the three priors hold out the same utterances. Prints per prior: bits per unit and per
second of the prior and of the best Witten-Bell n-gram, and the share of test utterances scored
above their reversal; then the two ways of coding both levels: top + bottom|top against the
bottom alone. Ends by sampling 2 s of speech from top then bottom|top (``audio-vq sample`` with
``bottom_prior``) to show the two priors render.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from quality import CONFIGS, prepare, sh, train  # benchmarks/quality.py: the demo recipe's training setup

PRIORS = {"top": ["level=0"], "bottom": ["level=1"], "bottom|top": ["level=1", "condition_level=0"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exp", type=Path, default=Path("/tmp/audio_vq_quality"))
    ap.add_argument("--steps", type=int, default=400, help="training steps of the hierarchical VQ-VAE")
    ap.add_argument("--prior-steps", type=int, default=300, help="training steps of each prior")
    ap.add_argument("--threads", default="2", help="train.threads of the priors")
    args = ap.parse_args()
    exp = args.exp.expanduser().resolve()
    exp.mkdir(parents=True, exist_ok=True)
    data = prepare(exp)
    model = train("hier", CONFIGS["hier"][0], data, exp, args.steps, "1") / "model"
    out = exp / "hierarchy_priors"
    out.mkdir(exist_ok=True)
    units = out / "units.jsonl"
    if not units.is_file():
        sh(
            [
                "audio-vq",
                "extract",
                f"model={model}",
                f"input={data / 'manifest.jsonl'}",
                f"output={units}",
                "format=jsonl",
            ],
            out / "extract.log",
            args.threads,
        )
    reports = {}
    for name, keys in PRIORS.items():
        folder = out / name.replace("|", "_given_")
        if not (folder / "prior" / "checksum.sha256").is_file():
            sh(
                [
                    "audio-vq",
                    "train-prior",
                    f"units={units}",
                    f"manifest={data / 'manifest.jsonl'}",
                    *keys,
                    "prior=tiny",
                    f"train.max_steps={args.prior_steps}",
                    f"train.threads={args.threads}",
                    f"hydra.run.dir={folder}",
                ],
                out / f"{folder.name}.log",
                args.threads,
            )
        report = folder / "eval" / "report.json"
        if not report.is_file():
            sh(
                ["audio-vq", "evaluate-prior", f"prior={folder / 'prior'}", f"out={folder / 'eval'}"],
                out / f"{folder.name}.log",
                args.threads,
            )
        reports[name] = json.loads(report.read_text())
    print(
        f"priors (prior=tiny, {args.prior_steps} steps) on the units of quality.py's `hier` model "
        f"({args.steps} steps), scored on their test split"
    )
    print(
        "| prior | units/s | held-out utterances | bits/unit (prior / best n-gram) | bits/s (prior / best n-gram) "
        "| real > reversed |"
    )
    print("|---|---|---|---|---|---|")
    per_second = {}
    for name, r in reports.items():
        bits = r["bits"]
        best = min((k for k in bits if k != "prior"), key=lambda k: bits[k]["bits_per_unit"])
        per_second[name] = bits["prior"]["bits_per_second"]
        print(
            f"| {name} | {r['frame_rate']:g} | {r['held_out']} | {bits['prior']['bits_per_unit']:.3f} / "
            f"{bits[best]['bits_per_unit']:.3f} | {bits['prior']['bits_per_second']:.1f} / "
            f"{bits[best]['bits_per_second']:.1f} | {r['preferences']['real_over_reversed']:.0%} |"
        )
    print(
        f"both levels under the priors: top + bottom|top = {per_second['top'] + per_second['bottom|top']:.1f} bit/s; "
        f"the bottom alone = {per_second['bottom']:.1f} bit/s; the top's condition saves the bottom "
        f"{per_second['bottom'] - per_second['bottom|top']:.1f} bit/s"
    )
    speaker = next(iter(json.loads((model / "speakers.json").read_text())))
    samples = out / "samples"
    sh(
        [
            "audio-vq",
            "sample",
            f"prior={out / 'top' / 'prior'}",
            f"bottom_prior={out / 'bottom_given_top' / 'prior'}",
            f"model={model}",
            f"speaker={speaker}",
            f"out={samples}",
            "num_samples=2",
            "seconds=2",
        ],
        out / "sample.log",
        args.threads,
    )
    print(f"2 samples of 2 s from top then bottom|top, speaker {speaker}: {samples}")


if __name__ == "__main__":
    main()
