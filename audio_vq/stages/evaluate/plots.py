"""PNG plots for evaluation reports: codebook usage, spectrograms, training curves, metric bars, F0 contours.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot): no global backend switch,
no display needed, nothing left open between calls. Every file is written atomically and the
function returns its Path.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import librosa
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from ...atomic import atomic_path
from .phonetic import entropy_bits

DPI = 100
COLUMN_WIDTH = 6.0  # inches per panel column
ROW_HEIGHT = 2.6  # inches per panel row

# Spectrograms: log-mel in dB relative to each pair's original peak
SPEC_N_FFT, SPEC_HOP, SPEC_N_MELS = 1024, 256, 80  # at 16 kHz, scaled with sr
REFERENCE_RATE = 16_000
SPEC_RANGE_DB = 80.0  # colour range below the original's peak
COLOR_MAP = "magma"

# Training curves: (panel title, metrics.csv column, y label); train and valid rows as two lines
CURVES = (
    ("Reconstruction loss", "reconstruction_loss", "NLL (nats per sample)"),
    ("Codebook perplexity", "perplexity", "exp(entropy)"),
    ("Codes used", "usage", "fraction of K"),
)
SPLITS = ("train", "valid")
BAR_LABEL_DIGITS = 3  # significant digits of the value written on each bar


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (temporary name, then rename)."""
    FigureCanvasAgg(fig)  # attaches itself to the figure
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def usage_summary(counts: np.ndarray) -> tuple[int, int, float]:
    """(used, dead, perplexity) of code counts (K,): codes counted at least once, codes never
    counted, and exp(entropy) of the usage distribution in codes (1..K; NaN when nothing was
    counted)."""
    counts = np.asarray(counts, dtype=np.float64)
    used = int(np.count_nonzero(counts))
    total = counts.sum()
    if total <= 0:
        return 0, len(counts), float("nan")
    return used, len(counts) - used, 2.0 ** entropy_bits(counts)


def plot_codebook_usage(
    counts: np.ndarray, path: str | os.PathLike, title: str = "Codebook usage", log_scale: bool = True
) -> Path:
    """Bar per code, sorted from most to least used, of ``counts`` (K,) (frames per code);
    annotated with used / dead codes and perplexity. Log y by default: usage is usually
    heavy-tailed. Returns ``path``."""
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"counts must be a non-empty (K,) array, got shape {counts.shape}")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("counts must be finite and non-negative")
    used, dead, perplexity = usage_summary(counts)
    ordered = np.sort(counts.astype(np.float64))[::-1]

    fig = Figure(layout="constrained", figsize=(2 * COLUMN_WIDTH, 1.5 * ROW_HEIGHT))
    ax = fig.add_subplot()
    ax.bar(np.arange(len(ordered)), ordered, width=1.0, color="tab:blue")
    if log_scale and used:
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.8)  # a code counted once still shows
    ax.set_xlim(-0.5, len(ordered) - 0.5)
    ax.set_xlabel("code rank (most used first)")
    ax.set_ylabel("frames")
    ax.set_title(title)
    ppl = "n/a (nothing counted)" if math.isnan(perplexity) else f"{perplexity:.1f}"
    ax.text(
        0.99,
        0.95,
        f"K = {len(counts)}\nused {used} ({100 * used / len(counts):.1f}%)\ndead {dead}\nperplexity {ppl}",
        transform=ax.transAxes,
        ha="right",
        va="top",
        family="monospace",
        bbox=dict(facecolor="white", alpha=0.8, edgecolor="none"),
    )
    if dead:
        ax.axvspan(used - 0.5, len(counts) - 0.5, color="tab:red", alpha=0.12, label="dead codes")
        ax.legend(loc="upper center")
    return _save(fig, path)


def _mel_power(audio: np.ndarray, sr: int) -> np.ndarray:
    """Mel power spectrogram (SPEC_N_MELS, frames), not yet in dB."""
    n_fft = max(1, round(SPEC_N_FFT * sr / REFERENCE_RATE))
    return librosa.feature.melspectrogram(
        y=np.asarray(audio, dtype=np.float32),
        sr=sr,
        n_fft=n_fft,
        hop_length=max(1, round(SPEC_HOP * sr / REFERENCE_RATE)),
        n_mels=SPEC_N_MELS,
        power=2.0,
    )


def plot_spectrograms(pairs: list[tuple[str, np.ndarray, np.ndarray]], sr: int, path: str | os.PathLike) -> Path:
    """One row per (name, original (T,), reconstruction (T',)): their log-mel spectrograms side
    by side, in dB relative to the original's peak (0 to -80 dB), on one colour scale, so a
    row's two panels compare directly. Returns ``path``."""
    if not pairs:
        raise ValueError("plot_spectrograms needs at least one (name, original, reconstruction) pair")
    fig = Figure(layout="constrained", figsize=(2 * COLUMN_WIDTH, ROW_HEIGHT * len(pairs) + 0.4))
    axes = fig.subplots(len(pairs), 2, squeeze=False)
    hop_seconds = max(1, round(SPEC_HOP * sr / REFERENCE_RATE)) / sr
    image = None
    for row, (name, original, reconstruction) in enumerate(pairs):
        mel_original = _mel_power(original, sr)
        peak = max(float(mel_original.max()), np.finfo(np.float32).tiny)
        for col, (label, audio) in enumerate((("original", original), ("reconstruction", reconstruction))):
            mel = mel_original if col == 0 else _mel_power(audio, sr)
            db = librosa.power_to_db(mel, ref=peak, top_db=None)
            ax = axes[row, col]
            image = ax.imshow(
                db,
                origin="lower",
                aspect="auto",
                cmap=COLOR_MAP,
                vmin=-SPEC_RANGE_DB,
                vmax=0.0,
                extent=(0.0, db.shape[1] * hop_seconds, 0, SPEC_N_MELS),
                interpolation="nearest",
            )
            ax.set_title(f"{name}: {label}", fontsize="medium")
            ax.set_ylabel("mel bin")
            if row == len(pairs) - 1:
                ax.set_xlabel("time (s)")
    fig.colorbar(image, ax=axes.ravel().tolist(), label="dB re original peak", shrink=0.9)
    return _save(fig, path)


def _read_metrics(metrics_csv: Path) -> list[dict[str, str]]:
    """Rows of a run's metrics.csv; ValueError naming the file when it has no rows or no step."""
    with open(metrics_csv, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        fields = reader.fieldnames or []
    if "step" not in fields:
        raise ValueError(f"{metrics_csv}: not a metrics.csv (no 'step' column in the header)")
    if not rows:
        raise ValueError(f"{metrics_csv}: no metric rows yet (header only); nothing to plot")
    return rows


def _series(rows: list[dict[str, str]], column: str, split: str, metrics_csv: Path) -> tuple[list[float], list[float]]:
    """(steps, values) of ``column`` in ``split``'s rows, skipping empty cells."""
    steps, values = [], []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        if row.get("split", "train") != split or not (row.get(column) or "").strip():
            continue
        try:
            steps.append(float(row["step"]))
            values.append(float(row[column]))
        except (TypeError, ValueError):
            raise ValueError(
                f"{metrics_csv}:{line}: {column}={row.get(column)!r} at step={row.get('step')!r} is not a number"
            ) from None
    return steps, values


def plot_training_curves(metrics_csv: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Reconstruction loss, codebook perplexity and fraction of codes used against the step,
    train and valid rows as separate lines, from a run's ``metrics.csv`` (see
    :data:`audio_vq.stages.train.METRIC_FIELDS`). Missing columns and empty cells are skipped (a panel
    with no data says so). Raises ValueError naming the file when it holds only a header.
    Returns ``path``."""
    metrics_csv = Path(metrics_csv)
    rows = _read_metrics(metrics_csv)
    fig = Figure(layout="constrained", figsize=(COLUMN_WIDTH * len(CURVES) * 0.75, ROW_HEIGHT * 1.3))
    axes = fig.subplots(1, len(CURVES), squeeze=False)[0]
    for ax, (title, column, ylabel) in zip(axes, CURVES):
        drawn = False
        for split, style in zip(SPLITS, ("-", "o-")):
            steps, values = _series(rows, column, split, metrics_csv)
            if steps:
                ax.plot(steps, values, style, label=split, markersize=3)
                drawn = True
        if drawn:
            ax.legend()
        else:
            ax.text(0.5, 0.5, f"no '{column}' data", transform=ax.transAxes, ha="center", va="center")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle(metrics_csv.parent.name or str(metrics_csv), fontsize="medium")
    return _save(fig, path)


def plot_metric_bars(values: dict[str, float | None], path: str | os.PathLike, title: str, ylabel: str) -> Path:
    """One bar per system (in the dict's order) with its value written on top; a None or NaN
    value gets no bar and an "n/a" label. Returns ``path``."""
    if not values:
        raise ValueError("plot_metric_bars needs at least one system")
    names = list(values)
    numbers = [float("nan") if v is None else float(v) for v in values.values()]
    width = max(COLUMN_WIDTH * 0.75, 0.9 * len(names) + 1.5)  # inches: ~0.9 per bar
    fig = Figure(layout="constrained", figsize=(width, 1.5 * ROW_HEIGHT))
    ax = fig.add_subplot()
    x = np.arange(len(names))
    heights = [0.0 if math.isnan(v) else v for v in numbers]
    bars = ax.bar(x, heights, color="tab:blue")
    labels = ["n/a" if math.isnan(v) else f"{v:.{BAR_LABEL_DIGITS}g}" for v in numbers]
    ax.bar_label(bars, labels=labels, padding=2)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(x, names, rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.15)  # room for the value labels
    return _save(fig, path)


def plot_f0_contours(
    contours: list[tuple[str, np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    title: str,
    reference: tuple[str, float] | None = None,
) -> Path:
    """F0 contours on one axis: each (label, times (frames,) in s, F0 (frames,) in Hz, 0 where
    unvoiced; unvoiced frames are gaps). ``reference``: (label, Hz) drawn as a dashed line (e.g.
    the target speaker's mean pitch). Log-frequency axis, so equal distances are equal intervals."""
    if not contours:
        raise ValueError("plot_f0_contours needs at least one (label, times, f0) contour")
    fig = Figure(layout="constrained", figsize=(2 * COLUMN_WIDTH, ROW_HEIGHT + 0.6))
    ax = fig.subplots()
    for label, times, f0 in contours:
        f0 = np.asarray(f0, dtype=np.float64)
        ax.plot(times, np.where(f0 > 0, f0, np.nan), label=label, linewidth=1.2)
    if reference is not None:
        ax.axhline(reference[1], linestyle="--", color="black", linewidth=0.8, label=reference[0])
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())  # plain Hz, not powers of ten
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xlabel("time (s)")
    ax.set_ylabel("F0 (Hz)")
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small", loc="upper right")
    return _save(fig, path)
