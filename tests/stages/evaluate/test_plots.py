"""Each plot writes a readable PNG; training curves read the real metrics.csv format."""

import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from audio_vq.stages.evaluate.plots import (
    plot_codebook_usage,
    plot_metric_bars,
    plot_spectrograms,
    plot_training_curves,
    usage_summary,
)
from audio_vq.stages.train import METRIC_FIELDS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SR = 16_000


def assert_png(path: Path) -> None:
    """A non-empty PNG that matplotlib reads back as an image with pixels, and no temp files."""
    assert path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 0 and pixels.shape[1] > 0
    assert pixels.std() > 0  # something was drawn
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_codebook_usage(tmp_path):
    counts = np.zeros(64)
    counts[:40] = np.random.default_rng(0).zipf(1.5, 40)  # heavy-tailed usage, 24 dead codes
    out = plot_codebook_usage(counts, tmp_path / "usage.png", title="K = 64")
    assert out == tmp_path / "usage.png"
    assert_png(out)
    assert_png(plot_codebook_usage(np.zeros(8), tmp_path / "none.png", log_scale=True))  # nothing counted

    used, dead, perplexity = usage_summary(np.array([1, 1, 1, 1, 0, 0]))
    assert (used, dead) == (4, 2) and perplexity == pytest.approx(4.0)
    assert math.isnan(usage_summary(np.zeros(3))[2])
    with pytest.raises(ValueError, match="non-negative"):
        plot_codebook_usage(np.array([1.0, -1.0]), tmp_path / "bad.png")


def test_spectrograms(tmp_path):
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(np.float32)
    noisy = tone + 0.01 * np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    out = plot_spectrograms(
        [("tone", tone, noisy), ("short", tone[: SR // 2], tone[: SR // 3])], SR, tmp_path / "spec.png"
    )
    assert_png(out)
    height_two = matplotlib.image.imread(out).shape[0]
    one = plot_spectrograms([("tone", tone, noisy)], SR, tmp_path / "one.png")
    assert matplotlib.image.imread(one).shape[0] < height_two  # a row per pair
    with pytest.raises(ValueError, match="at least one"):
        plot_spectrograms([], SR, tmp_path / "empty.png")


def write_metrics(path: Path, rows: list[dict]) -> Path:
    """metrics.csv as train.py writes it: METRIC_FIELDS header, empty cells for absent values."""
    lines = [",".join(METRIC_FIELDS)]
    lines += [",".join(str(r.get(k, "")) for k in METRIC_FIELDS) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_training_curves_from_a_real_format_metrics_csv(tmp_path):
    rows = []
    for step in range(5, 55, 5):
        rows.append(
            dict(
                step=step,
                split="train",
                time_s=step * 1.5,
                lr=1e-4,
                loss=5 - step / 20,
                reconstruction_loss=5 - step / 20,
                codebook_loss=0.1,
                commitment_loss=0.02,
                perplexity=10 + step,
                usage=step / 60,
                dead_codes=0,
                restarted=0,
                audio_s_per_s=0.6,
                nonfinite_steps=0,
            )
        )
        if step % 10 == 0:  # valid rows leave lr and throughput empty, as train.py does
            rows.append(
                dict(
                    step=step,
                    split="valid",
                    time_s=step * 1.5 + 1,
                    loss=5.1 - step / 20,
                    reconstruction_loss=5.1 - step / 20,
                    codebook_loss=0.1,
                    commitment_loss=0.02,
                    perplexity=8 + step,
                    usage=step / 70,
                    dead_codes=3,
                    restarted=0,
                )
            )
    (tmp_path / "run").mkdir()
    metrics = write_metrics(tmp_path / "run" / "metrics.csv", rows)
    assert_png(plot_training_curves(metrics, tmp_path / "curves.png"))

    # only train rows, and an old file without the usage column: still a plot
    sparse = tmp_path / "sparse.csv"
    sparse.write_text("step,split,reconstruction_loss,perplexity\n5,train,5.5,\n10,train,5.2,12\n")
    assert_png(plot_training_curves(sparse, tmp_path / "sparse.png"))


def test_training_curves_refuse_a_header_only_file_naming_it(tmp_path):
    header_only = write_metrics(tmp_path / "metrics.csv", [])
    with pytest.raises(ValueError, match=r"metrics\.csv.*header only"):
        plot_training_curves(header_only, tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()

    garbled = tmp_path / "garbled.csv"
    garbled.write_text("step,split,perplexity\n5,train,lots\n")
    with pytest.raises(ValueError, match=r"garbled\.csv:2: perplexity='lots'"):
        plot_training_curves(garbled, tmp_path / "curves.png")


def test_metric_bars(tmp_path):
    values = {"vq-vae": 6.1, "mu-law copy": 2.0, "griffin-lim": None, "silence": float("nan")}
    assert_png(plot_metric_bars(values, tmp_path / "bars.png", title="MCD", ylabel="dB"))
    assert_png(plot_metric_bars({f"system {i}": -i for i in range(8)}, tmp_path / "many.png", "x", "y"))
    with pytest.raises(ValueError, match="at least one"):
        plot_metric_bars({}, tmp_path / "empty.png", "t", "y")
