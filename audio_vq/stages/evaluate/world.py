"""WORLD/SPTK analysis: the mel-cepstral distortion and F0 statistics voice-conversion papers report.

One analysis per signal (:func:`analyse`), then the measures compare analyses:

- F0: WORLD's Harvest (Morise 2017, via pyworld) between F0_MIN_HZ and F0_MAX_HZ, one frame every
  FRAME_PERIOD_MS; 0 marks an unvoiced frame. Harvest rather than DIO: it misses fewer voiced
  frames, which matters for short excerpts.
- Spectral envelope: WORLD's CheapTrick on that F0, then SPTK's mel-cepstrum of it (``sp2mc``,
  via pysptk) of order MCEP_ORDER (c0..c24) with the all-pass constant alpha of the sample rate
  (:func:`all_pass_constant`: 0.42 at 16 kHz).
- MCD (Kubichek 1993, as VC papers compute it): per frame
  (10 / ln 10) * sqrt(2 * sum_{d=1..24} (mc_ref[d] - mc_deg[d])^2), c0 (the level) excluded,
  mean over frames; frame by frame for reconstructions (same timing), after DTW on the
  mel-cepstra for a conversion against the target speaker's own reading.
- F0 agreement (reconstruction vs source, frame by frame): log-F0 RMSE in semitones and the
  Pearson correlation of log F0 over the frames both call voiced, and the voiced/unvoiced error
  (share of frames whose voicing decisions differ).
- F0 offset: a signal's mean log2 F0 over its voiced frames against a reference mean (a target
  speaker's real utterances, pooled), in semitones; a conversion that kept the source's pitch
  shows the source's offset.

pyworld and pysptk are the ``voice`` extra (source builds with the system compiler; pyworld
imports pkg_resources, hence setuptools < 81): :func:`unavailable` says why they cannot be used.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...audio import SAMPLE_RATE
from .audio_metrics import F0_MAX_HZ, F0_MIN_HZ, cepstral_distortion

FRAME_PERIOD_MS = 5.0  # WORLD's default frame shift
MCEP_ORDER = 24  # c0..c24; MCD uses c1..c24
SEMITONES_PER_OCTAVE = 12.0
# SPTK's table of the all-pass constant that best approximates the mel scale at each rate; other
# rates get pysptk's fitted value (pysptk.util.mcepalpha).
ALL_PASS_BY_RATE = {
    8_000: 0.31,
    10_000: 0.35,
    12_000: 0.37,
    16_000: 0.42,
    22_050: 0.45,
    32_000: 0.50,
    44_100: 0.53,
    48_000: 0.55,
}
MIN_VOICED_FRAMES = 2  # a correlation needs two points; fewer voiced frames in common: None


def unavailable() -> str | None:
    """Why the WORLD/SPTK measures cannot run here (None when pyworld and pysptk import)."""
    try:
        _modules()
    except ImportError as e:
        return f"pyworld/pysptk not importable ({e}); install the voice extra: pip install 'audio_vq[voice]'"
    return None


def _modules():
    with warnings.catch_warnings():  # pyworld imports the deprecated pkg_resources for its version
        warnings.simplefilter("ignore", UserWarning)
        import pysptk
        import pyworld
    return pyworld, pysptk


def all_pass_constant(sr: int) -> float:
    """SPTK's frequency-warping constant alpha for the sample rate (0.42 at 16 kHz)."""
    if sr in ALL_PASS_BY_RATE:
        return ALL_PASS_BY_RATE[sr]
    _, pysptk = _modules()
    return float(pysptk.util.mcepalpha(sr))


@dataclass(frozen=True)
class WorldAnalysis:
    """One signal's WORLD analysis, one row per FRAME_PERIOD_MS frame.

    f0: (frames,) Hz, 0 where Harvest calls the frame unvoiced.
    mcep: (frames, MCEP_ORDER + 1) SPTK mel-cepstrum c0..c24 of the CheapTrick envelope.
    """

    f0: np.ndarray
    mcep: np.ndarray
    sample_rate: int

    @property
    def voiced(self) -> np.ndarray:
        return self.f0 > 0


def analyse(x: np.ndarray, sr: int = SAMPLE_RATE) -> WorldAnalysis:
    """Harvest F0 and the SPTK mel-cepstrum of the CheapTrick envelope of mono audio (T,)."""
    pyworld, pysptk = _modules()
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"WORLD analysis needs finite mono audio (T,), got shape {x.shape}")
    f0, t = pyworld.harvest(x, sr, f0_floor=F0_MIN_HZ, f0_ceil=F0_MAX_HZ, frame_period=FRAME_PERIOD_MS)
    envelope = pyworld.cheaptrick(x, f0, t, sr)  # power spectrum (frames, fft_size / 2 + 1)
    mcep = pysptk.sp2mc(envelope, order=MCEP_ORDER, alpha=all_pass_constant(sr))
    return WorldAnalysis(f0=np.asarray(f0), mcep=np.asarray(mcep), sample_rate=sr)


class Analyses:
    """:func:`analyse` of each signal once (Harvest is the slow part): keyed by the array object,
    which it keeps, so a key cannot be reused by another array while the cache lives."""

    def __init__(self, sr: int = SAMPLE_RATE):
        self.sample_rate = sr
        self._done: dict[int, tuple[np.ndarray, WorldAnalysis]] = {}

    def __call__(self, x: np.ndarray) -> WorldAnalysis:
        if id(x) not in self._done:
            self._done[id(x)] = (x, analyse(x, self.sample_rate))
        return self._done[id(x)][1]


def mcd(ref: WorldAnalysis, deg: WorldAnalysis, align: str = "none") -> float:
    """MCD in dB between two analyses over c1..c24 (see the module docstring and
    :func:`.audio_metrics.cepstral_distortion` for ``align``); 0 for identical ones."""
    return cepstral_distortion(ref.mcep[:, 1:], deg.mcep[:, 1:], align)


def _semitones(f0: np.ndarray) -> np.ndarray:
    return SEMITONES_PER_OCTAVE * np.log2(f0)


def f0_agreement(ref: WorldAnalysis, deg: WorldAnalysis) -> dict[str, float | int | None]:
    """Frame-by-frame F0 of a reconstruction against its source (both trimmed to the shorter):
    ``log_f0_rmse_semitones`` and ``log_f0_correlation`` over frames both call voiced (None with
    fewer than MIN_VOICED_FRAMES of them; the correlation also when either side is constant),
    ``vuv_error`` (share of frames whose voicing differs) and ``voiced_frames`` in common."""
    n = min(len(ref.f0), len(deg.f0))
    r, d = ref.f0[:n], deg.f0[:n]
    both = (r > 0) & (d > 0)
    out: dict[str, float | int | None] = {
        "vuv_error": float(np.mean((r > 0) != (d > 0))) if n else None,
        "voiced_frames": int(both.sum()),
        "log_f0_rmse_semitones": None,
        "log_f0_correlation": None,
    }
    if both.sum() >= MIN_VOICED_FRAMES:
        sr_, sd = _semitones(r[both]), _semitones(d[both])
        out["log_f0_rmse_semitones"] = float(np.sqrt(np.mean((sr_ - sd) ** 2)))
        if sr_.std() > 0 and sd.std() > 0:
            out["log_f0_correlation"] = float(np.corrcoef(sr_, sd)[0, 1])
    return out


def mean_pitch(analyses: Sequence[WorldAnalysis]) -> float | None:
    """Mean F0 in semitones (12 log2 Hz) over the voiced frames of all ``analyses`` pooled; None
    when none is voiced."""
    voiced = [a.f0[a.voiced] for a in analyses]
    f0 = np.concatenate(voiced) if voiced else np.zeros(0)
    return float(np.mean(_semitones(f0))) if f0.size else None


def pitch_offset(analysis: WorldAnalysis, reference_pitch: float | None) -> float | None:
    """The signal's mean pitch minus ``reference_pitch`` (both from :func:`mean_pitch`), in
    semitones; None when either has no voiced frame."""
    own = mean_pitch([analysis])
    return None if own is None or reference_pitch is None else own - reference_pitch


def frame_times(analysis: WorldAnalysis) -> np.ndarray:
    """(frames,) the time in seconds of each analysis frame."""
    return np.arange(len(analysis.f0)) * FRAME_PERIOD_MS / 1000.0
