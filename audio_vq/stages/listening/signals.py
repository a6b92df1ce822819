"""Signal processing of listening-test stimuli: common length, the BS.1534-3 anchors, loudness
normalisation and the clip check.

Every file of a trial must have the reference's rate, channel count and length (webMUSHRA
refuses a trial otherwise), be as loud as the others (so that level is not what listeners
judge) and must not clip when written as 16-bit PCM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import audio

# ITU-R BS.1534-3 (MUSHRA), anchors: the low anchor is the reference low-passed at 3.5 kHz, the
# mid-range anchor at 7 kHz.
ANCHOR35_HZ = 3500.0
ANCHOR70_HZ = 7000.0
# Butterworth order of the anchor filters. They run forward and backward (scipy's sosfiltfilt):
# zero phase, so the anchor stays time-aligned with the reference, and the magnitude response
# is squared: an effective 16th-order slope (-96 dB/octave) past the cutoff.
ANCHOR_FILTER_ORDER = 8

DEFAULT_PEAK_CEILING_DB = -1.0  # highest sample peak a written stimulus may reach (dBFS)


@dataclass
class Fitted:
    """Audio fitted to a trial's length, and what fitting did to it (samples)."""

    audio: np.ndarray
    padded: int = 0
    trimmed: int = 0


def fit_length(x: np.ndarray, length: int) -> Fitted:
    """``x`` trimmed to ``length`` samples, or padded with zeros at the end up to it."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) >= length:
        return Fitted(x[:length].copy(), trimmed=len(x) - length)
    return Fitted(np.concatenate([x, np.zeros(length - len(x), dtype=np.float32)]), padded=length - len(x))


def lowpass(x: np.ndarray, rate: int, cutoff_hz: float) -> np.ndarray | None:
    """``x`` low-passed at ``cutoff_hz`` (zero-phase Butterworth, see ANCHOR_FILTER_ORDER), or
    None when the cutoff is not below the Nyquist frequency (the anchor would equal the
    reference, so it is left out and reported)."""
    from scipy.signal import butter, sosfiltfilt

    if cutoff_hz >= rate / 2:
        return None
    sos = butter(ANCHOR_FILTER_ORDER, cutoff_hz, btype="lowpass", fs=rate, output="sos")
    # sosfiltfilt pads the ends by reflection; very short clips get a shorter pad than its default
    default_pad = 3 * (2 * len(sos) + 1)
    pad = min(default_pad, max(0, len(x) - 1))
    y = sosfiltfilt(sos, np.asarray(x, dtype=np.float64), padlen=pad)
    return y.astype(np.float32)


def normalize(x: np.ndarray, rate: int, target_lufs: float) -> tuple[np.ndarray, bool]:
    """``x`` scaled to ``target_lufs`` (BS.1770 integrated loudness, pyloudnorm), and whether it
    could be: silence, or audio whose every block is below BS.1770's absolute gate (-70 LUFS),
    has no measurable loudness and comes back unchanged. Clips shorter than one 400 ms
    gating block are measured tiled up to a block (audio.loudness), which keeps their
    mean-square level, so short stimuli are normalised like long ones instead of failing."""
    level = audio.loudness(x, rate)
    if not np.isfinite(level):
        return np.asarray(x, dtype=np.float32), False
    return audio.normalize_loudness(x, rate, target_lufs, current=level), True


def headroom_gain(signals: list[np.ndarray], ceiling_db: float) -> float:
    """The gain (<= 1) that brings the largest sample peak of ``signals`` to ``ceiling_db`` dBFS;
    1.0 when nothing exceeds it. Applied to every file of a test, it keeps them all equally
    loud (and below the target by the same amount) instead of clipping some."""
    ceiling = 10.0 ** (ceiling_db / 20.0)
    top = max((audio.peak(s) for s in signals), default=0.0)
    return 1.0 if top <= ceiling else ceiling / top


def gain_db(gain: float) -> float:
    return float(20.0 * np.log10(gain))
