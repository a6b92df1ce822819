"""Listening tests: export ready-to-run tests (MUSHRA, AB, ABX, MOS) and analyse their results.

    export-listening-test  exporter.py   stimuli, key.csv, webmushra.yaml, beaqlejs_config.js, index.html
    listening-results      analysis.py   webMUSHRA result CSV + key -> screened means / proportions with CIs, plot

Modules: kinds (the table of test kinds the others read), plan (which utterances and conversion
targets), signals (length, anchors, loudness, clipping), key (key.csv), webmushra / beaqle / html
(the three ways to listen), stats (screening, confidence intervals). The commands import their
modules when they run, so the results command never loads torch.
"""

from __future__ import annotations

from omegaconf import DictConfig


def export(cfg: DictConfig) -> int:
    """`audio-vq export-listening-test` (see :mod:`audio_vq.stages.listening.exporter`)."""
    from .exporter import export as run

    return run(cfg)


def results(cfg: DictConfig) -> int:
    """`audio-vq listening-results` (see :mod:`audio_vq.stages.listening.analysis`)."""
    from .analysis import results as run

    return run(cfg)


__all__ = ["export", "results"]
