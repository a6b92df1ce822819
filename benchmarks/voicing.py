"""Voicing of reconstructions against their sources, from `audio-vq evaluate` output folders.

    python benchmarks/voicing.py <eval dir> [<eval dir> ...]

Reads each folder's ``audio/<id>_original.wav`` and ``audio/<id>_reconstruction.wav`` (the
excerpts evaluate reconstructs) and prints one row per folder:

- VDE: the voicing decision error, the share of frames where pYIN's voiced / unvoiced decision
  on the reconstruction differs from the source's (the evaluate report's F0 columns look only
  at the frames voiced in both), split into false-voiced and missed;
- unvoiced level: the median over the source's unvoiced but not silent frames (fricatives,
  bursts: RMS above UNVOICED_FLOOR) of the reconstruction's level against the source's, in dB.
  A sampling temperature below 1 everywhere makes these quieter; one on the voiced samples only
  should leave them as they are.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from audio_vq import audio
from audio_vq.stages.evaluate.audio_metrics import F0_HOP, pyin_contour

UNVOICED_FLOOR = 0.01  # RMS (full scale 1) below which an unvoiced frame counts as silence


def voicing(folder: Path) -> dict:
    decisions = levels = 0
    false_voiced = missed = 0
    ratios = []
    for original in sorted((folder / "audio").glob("*_original.wav")):
        a = audio.load(original)
        b = audio.load(original.with_name(original.name.replace("_original", "_reconstruction")))
        fa, fb = pyin_contour(a), pyin_contour(b)
        m = min(len(fa), len(fb))
        va, vb = fa[:m] > 0, fb[:m] > 0
        false_voiced += int(np.sum(~va & vb))
        missed += int(np.sum(va & ~vb))
        decisions += m
        hop = F0_HOP  # pYIN's frame k is centred on sample k * hop
        n = min(len(a), len(b))
        for k in np.flatnonzero(~va):
            s0, s1 = max(0, k * hop - hop // 2), min(n, k * hop + hop // 2)
            if s1 - s0 < hop // 2:
                continue
            ra, rb = np.sqrt(np.mean(a[s0:s1] ** 2)), np.sqrt(np.mean(b[s0:s1] ** 2))
            if ra > UNVOICED_FLOOR:
                ratios.append(20 * np.log10(max(rb, 1e-6) / ra))
                levels += 1
    if not decisions:
        raise SystemExit(f"voicing.py: error: {folder}: no audio/<id>_original.wav with its reconstruction")
    return {
        "vde": (false_voiced + missed) / decisions,
        "false_voiced": false_voiced / decisions,
        "missed": missed / decisions,
        "unvoiced_frames": levels,
        "unvoiced_db": float(np.median(ratios)) if ratios else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="audio-vq evaluate output folders")
    args = ap.parse_args()
    print("| eval folder | VDE | false-voiced | missed | unvoiced frames | unvoiced level dB |")
    print("|---|---|---|---|---|---|")
    for folder in args.folders:
        r = voicing(folder)
        print(
            f"| {folder.name} | {r['vde']:.3f} | {r['false_voiced']:.3f} | {r['missed']:.3f} | "
            f"{r['unvoiced_frames']} | {r['unvoiced_db']:+.1f} |"
        )


if __name__ == "__main__":
    main()
