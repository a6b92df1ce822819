"""Time `prepare` (decode + validate every file, split, write the manifest) and print a table.

    python benchmarks/prepare.py [--minutes 10] [--workers 0 1 2]

Two corpora, made once in a temporary folder (not timed): the synthetic one as generated (16 kHz
16-bit wav) and the same audio as 48 kHz 24-bit flac read through corpus=folder (VCTK 0.92's
format, where decoding and resampling cost more). Each row writes a fresh output folder, so
nothing is reused from an earlier run's decode log; the `rerun` row repeats the last one on its
existing output to show what resuming costs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from audio_vq import audio
from audio_vq.config import compose
from audio_vq.corpora.synthetic import generate
from audio_vq.stages import prepare

VCTK_RATE = 48_000


def timed_prepare(corpus: str, root: Path, out: Path, *overrides: str) -> tuple[float, float]:
    """(wall seconds, seconds of audio in the manifest)."""
    cfg = compose("prepare", [f"corpus={corpus}", f"root={root}", f"out={out}", *overrides])
    start = time.perf_counter()
    result = prepare.run(cfg)
    return time.perf_counter() - start, sum(u.duration for u in result.utterances)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prepare-bench-") as tmp:
        synthetic = generate(Path(tmp) / "corpus", minutes=args.minutes, num_workers=os.cpu_count() or 1)
        flac = Path(tmp) / "flac48k"
        for wav in sorted(synthetic.glob("*/*.wav")):
            x = audio.resample(audio.load(wav), audio.SAMPLE_RATE, VCTK_RATE)
            audio.save(flac / wav.parent.name / f"{wav.stem}.flac", x, VCTK_RATE, subtype="PCM_24")
        corpora = [("synthetic", synthetic, [f"corpus.minutes={args.minutes}"]), ("folder", flac, [])]
        print(f"prepare on {args.minutes:g} min of audio, {os.cpu_count()} CPUs")
        print(f"{'files':>17}  {'workers':>7}  {'cache_audio':>11}  {'wall s':>7}  {'x real time':>11}")
        for name, (corpus, root, extra) in zip(("16 kHz wav", "48 kHz 24-bit flac"), corpora):
            rows = [(w, False) for w in args.workers] + [(w, True) for w in args.workers]
            for i, (workers, cache) in enumerate(rows):
                out = Path(tmp) / f"out-{corpus}-{i}"
                overrides = [*extra, f"num_workers={workers}", f"cache_audio={str(cache).lower()}"]
                wall, audio_s = timed_prepare(corpus, root, out, *overrides)
                print(f"{name:>17}  {workers:>7}  {str(cache):>11}  {wall:>7.2f}  {audio_s / wall:>11.0f}")
            wall, audio_s = timed_prepare(corpus, root, out, *overrides)
            print(f"{name:>17}  {'rerun':>7}  {'True':>11}  {wall:>7.2f}  {audio_s / wall:>11.0f}")


if __name__ == "__main__":
    main()
