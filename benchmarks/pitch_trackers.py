"""Measure F0 trackers against the synthetic corpus's true F0 and print a markdown table: the
numbers that chose audio_vq.pitch.DEFAULT_TRACKER (accuracy first, then speed).

    python benchmarks/pitch_trackers.py [--root DIR] [--minutes 60] [--crepe tiny,full] [--espeak]

The corpus (generated under --root if absent: 8 speakers, --minutes of audio, seed 0) is split
as ``audio-vq prepare`` splits it (its default split config); the held-out test utterances of
every speaker are tracked at the .f0 files' 10 ms frames (pitch.track's frame convention) and
compared frame by frame with the truth:

- GPE: gross pitch error, % of the frames voiced in both whose F0 is off by more than 20%;
- VDE: voicing decision error, % of all frames whose voiced/unvoiced decision differs; also
  over the frames off the truth's voicing boundaries (more than BOUNDARY_FRAMES from a frame
  whose voicing differs from its neighbour's), where a frame's voicing is not a matter of how
  much of it an onset covers;
- cents RMSE over the frames voiced in both (and over those without gross errors: "fine");
- speed: seconds of audio per second of tracking, one thread (x real time), best of
  --repeat runs per utterance after a warm-up call.

Candidates: pitch.TRACKERS (Harvest, DIO + StoneMask, pYIN) and torchcrepe's CREPE models when
torchcrepe imports. Its wheel declares torchaudio (PyPI's is built against CUDA torch) but uses
it only in its file loader (torchcrepe/load.py), so install it with ``pip install --no-deps
torchcrepe resampy``; a placeholder module stands in for torchaudio while it is imported.

--espeak also tracks a few espeak-ng sentences in several voices (``apt-get install espeak-ng``):
no truth there, so the second table is the trackers' agreement (GPE and VDE between pairs).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread, set before numpy / numba / torch start their pools

import argparse
import contextlib
import datetime
import itertools
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation

from audio_vq.audio import SAMPLE_RATE, load
from audio_vq.config import compose
from audio_vq.corpora.synthetic import F0_HOP_SECONDS, scan
from audio_vq.pitch import DEFAULT_TRACKER, F0_MAX_HZ, F0_MIN_HZ, TRACKERS, Tracker, periodic_only, read_f0, track
from audio_vq.stages.prepare import assign_splits

GROSS_ERROR = 0.2  # GPE's threshold: relative F0 error
BOUNDARY_FRAMES = 1
CENTS_PER_OCTAVE = 1200.0
WARMUP_SECONDS = 1.0  # compiles numba kernels and loads models before timing
# torchcrepe's recommended decoding (its README): periodicity median-filtered over 3 frames,
# frames quieter than -60 dB unvoiced, voiced where periodicity >= 0.21
CREPE_MEDIAN_FRAMES, CREPE_SILENCE_DB, CREPE_PERIODICITY = 3, -60.0, 0.21
CREPE_BATCH = 512
ESPEAK_VOICES = ("en-us", "en-gb+f3", "en+m3", "de+f2", "fr")
ESPEAK_SENTENCES = (
    "The quick brown fox jumps over the lazy dog while the band plays on.",
    "Would you like some more tea, or shall we go for a walk along the river?",
)


def _torchcrepe():
    """torchcrepe imported with a placeholder torchaudio if the real one is missing (see the
    module docstring); None when torchcrepe is not installed."""
    placeholder = "torchaudio" not in sys.modules
    if placeholder:
        try:
            import torchaudio  # noqa: F401  the real one, where it works

            placeholder = False
        except (ImportError, OSError):  # PyPI's CUDA build fails to load its libraries beside CPU torch
            sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    try:
        import torchcrepe
    except ImportError:
        return None
    finally:
        if placeholder:  # later imports of torchaudio fail as they would have
            del sys.modules["torchaudio"]
    return torchcrepe


def crepe_tracker(model: str) -> Tracker:
    """A pitch.Tracker running torchcrepe's ``model`` (tiny | full) on the CPU."""
    import torch

    torchcrepe = _torchcrepe()

    def run(x: np.ndarray, sr: int, hop: int) -> np.ndarray:
        audio = torch.from_numpy(x.astype(np.float32))[None]
        with torch.no_grad():
            f0, periodicity = torchcrepe.predict(
                audio,
                sr,
                hop,
                F0_MIN_HZ,
                F0_MAX_HZ,
                model,
                return_periodicity=True,
                batch_size=CREPE_BATCH,
                device="cpu",
                pad=True,
            )
        periodicity = torchcrepe.filter.median(periodicity, CREPE_MEDIAN_FRAMES)
        periodicity = torchcrepe.threshold.Silence(CREPE_SILENCE_DB)(periodicity, audio, sr, hop)
        return torchcrepe.threshold.At(CREPE_PERIODICITY)(f0, periodicity)[0].numpy()  # NaN: unvoiced

    return run


def candidates(crepe_models: list[str]) -> dict[str, Tracker]:
    trackers: dict[str, Tracker] = dict(TRACKERS)
    if crepe_models and _torchcrepe() is None:
        print("torchcrepe not importable: CREPE left out (pip install --no-deps torchcrepe resampy)\n")
    else:
        trackers.update({f"crepe-{m}": crepe_tracker(m) for m in crepe_models})
    return trackers


def compare(truth: np.ndarray, estimate: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame pieces of the measures, to pool over utterances."""
    both = (truth > 0) & (estimate > 0)
    cents = CENTS_PER_OCTAVE * np.log2(estimate[both] / truth[both])
    gross = np.abs(estimate[both] / truth[both] - 1) > GROSS_ERROR
    vuv_errors = (truth > 0) != (estimate > 0)
    change = np.diff(truth > 0)
    boundary = np.zeros(truth.size, bool)
    boundary[:-1] |= change  # both frames of each change
    boundary[1:] |= change
    boundary = binary_dilation(boundary, iterations=BOUNDARY_FRAMES)
    return {
        "frames": np.array([truth.size]),
        "vuv_errors": np.array([vuv_errors.sum()]),
        "off_boundary": np.array([np.sum(~boundary)]),
        "off_boundary_errors": np.array([vuv_errors[~boundary].sum()]),
        "cents": cents,
        "gross": gross,
    }


def summarise(parts: list[dict[str, np.ndarray]], audio_seconds: float, seconds: float) -> dict[str, float]:
    pooled = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    cents, gross = pooled["cents"], pooled["gross"]
    return {
        "GPE %": 100 * gross.mean(),
        "VDE %": 100 * pooled["vuv_errors"].sum() / pooled["frames"].sum(),
        "VDE % off boundaries": 100 * pooled["off_boundary_errors"].sum() / pooled["off_boundary"].sum(),
        "cents RMSE": float(np.sqrt(np.mean(cents**2))),
        "fine cents RMSE": float(np.sqrt(np.mean(cents[~gross] ** 2))),
        "x real time": audio_seconds / seconds,
    }


def timed_track(x: np.ndarray, hop: int, tracker: Tracker, repeat: int) -> tuple[np.ndarray, float, np.ndarray, float]:
    """(F0 with the tracker's own voicing, its seconds, F0 after pitch's periodicity check, the
    seconds of both), the best of ``repeat`` runs each."""
    best, best_check = float("inf"), float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        raw = track(x, SAMPLE_RATE, hop, tracker, min_periodicity=None)
        middle = time.perf_counter()
        checked = periodic_only(x, raw, hop, SAMPLE_RATE)
        best, best_check = min(best, middle - start), min(best_check, time.perf_counter() - middle)
    return raw, best, checked, best + best_check


def table(rows: dict[str, dict[str, float]], first: str) -> str:
    columns = list(next(iter(rows.values())))
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        lines.append(
            f"| {name} | " + " | ".join(f"{v:.1f}" if abs(v) >= 1 else f"{v:.2f}" for v in row.values()) + " |"
        )
    return "\n".join(lines)


def synthetic_table(root: Path, minutes: float, trackers: dict[str, Tracker], repeat: int) -> str:
    utts = list(scan(root, minutes=minutes, num_workers=os.cpu_count() or 1))
    assign_splits(utts, compose("prepare", ["corpus=synthetic", "root=x", "out=x"]).split)
    test = [u for u in utts if u.split == "test"]
    hop = round(F0_HOP_SECONDS * SAMPLE_RATE)
    audio = [load(u.path) for u in test]
    truth = [read_f0(Path(u.path).with_suffix(".f0"))[1] for u in test]
    seconds_of_audio = sum(map(len, audio)) / SAMPLE_RATE
    voiced = np.concatenate(truth) > 0
    print(
        f"{len(test)} held-out utterances of {len({u.speaker for u in test})} speakers, {seconds_of_audio:.1f} s, "
        f"{voiced.size} frames of {F0_HOP_SECONDS * 1000:g} ms, {100 * voiced.mean():.0f}% voiced "
        f"(true F0 {np.concatenate(truth)[voiced].min():.0f}-{np.concatenate(truth)[voiced].max():.0f} Hz)\n"
    )
    rows = {}
    for name, tracker in trackers.items():
        track(np.random.default_rng(0).standard_normal(round(WARMUP_SECONDS * SAMPLE_RATE)), SAMPLE_RATE, hop, tracker)
        parts, checked_parts, spent, checked_spent = [], [], 0.0, 0.0
        for x, t in zip(audio, truth):
            f0, seconds, checked, checked_seconds = timed_track(x, hop, tracker, repeat)
            assert len(f0) == len(t), (len(f0), len(t))  # the same frames as the .f0 files
            parts.append(compare(t, f0))
            checked_parts.append(compare(t, checked))
            spent, checked_spent = spent + seconds, checked_spent + checked_seconds
        rows[f"{name}, own voicing"] = summarise(parts, seconds_of_audio, spent)
        default = " (default)" if name == DEFAULT_TRACKER else ""
        rows[f"{name} + periodicity check{default}"] = summarise(checked_parts, seconds_of_audio, checked_spent)
        print(f"  {name}: done", file=sys.stderr)
    return table(rows, "tracker")


def espeak_table(trackers: dict[str, Tracker]) -> str:
    """Pairwise agreement of the trackers on espeak-ng speech (no truth): GPE and VDE of one
    against the other, pooled over the utterances."""
    if shutil.which("espeak-ng") is None:
        return "espeak-ng not installed (apt-get install espeak-ng): agreement table skipped"
    hop = round(F0_HOP_SECONDS * SAMPLE_RATE)
    contours: dict[str, list[np.ndarray]] = {name: [] for name in trackers}
    seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (voice, text) in enumerate(itertools.product(ESPEAK_VOICES, ESPEAK_SENTENCES)):
            wav = Path(tmp) / f"{i}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True, capture_output=True)
            x = load(wav)  # resampled to 16 kHz
            seconds += len(x) / SAMPLE_RATE
            for name, tracker in trackers.items():
                contours[name].append(track(x, SAMPLE_RATE, hop, tracker))
    rows = {}
    for a, b in itertools.combinations(trackers, 2):
        parts = [compare(x, y) for x, y in zip(contours[a], contours[b])]
        row = summarise(parts, seconds, 1.0)
        rows[f"{a} vs {b}"] = {k: row[k] for k in ("GPE %", "VDE %", "cents RMSE")}
    voiced = {name: 100 * np.mean(np.concatenate(c) > 0) for name, c in contours.items()}
    return (
        f"espeak-ng: {len(ESPEAK_VOICES) * len(ESPEAK_SENTENCES)} utterances ({', '.join(ESPEAK_VOICES)}), "
        f"{seconds:.1f} s; voiced share: "
        + ", ".join(f"{k} {v:.0f}%" for k, v in voiced.items())
        + "\n\n"
        + table(rows, "pair")
    )


def machine() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    return platform.machine()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--root",
        type=Path,
        default=Path(tempfile.gettempdir()) / "audio_vq_pitch_bench",
        help="the synthetic corpus (generated if absent)",
    )
    ap.add_argument("--minutes", type=float, default=60.0, help="corpus size; prepare's split holds out 5%% of it")
    ap.add_argument("--crepe", default="tiny", help="comma list of CREPE models (tiny, full); empty: none")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per utterance (the best counts)")
    ap.add_argument("--espeak", action="store_true", help="also the agreement table on espeak-ng speech")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    trackers = candidates([m for m in args.crepe.split(",") if m])
    print(
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}, one thread\n"
        f"python benchmarks/pitch_trackers.py {' '.join(sys.argv[1:])}\n"
    )
    print(synthetic_table(args.root, args.minutes, trackers, args.repeat))
    if args.espeak:
        print("\n" + espeak_table(trackers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
