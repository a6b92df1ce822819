"""The pitch stream: F0 and voicing per frame, per-speaker log-F0 statistics, speaker
normalisation, quantisation, and the ``.f0`` contour files.

Frames follow the encoder's convention (DESIGN.md, alignment conventions): with hop h, an input
of T samples has ceil(T / h) frames and frame i describes samples [i * h, (i + 1) * h), so at
the model's hop the stream has one value per code. A contour is a float array (frames,) of F0
in Hz with 0 on unvoiced frames (WORLD's convention): voicing is ``f0 > 0``, and no value is NaN.

Trackers (:data:`TRACKERS`, chosen by ``tracker=``): WORLD's Harvest (Morise 2017) and DIO +
StoneMask (Morise et al. 2009/2016), via pyworld (the ``pitch`` extra), and librosa's pYIN
(Mauch & Dixon 2014). :data:`DEFAULT_TRACKER` was chosen by benchmarks/pitch_trackers.py on the
synthetic corpus's true F0 (gross pitch error, voicing error, cents RMSE, then speed). Every
tracker's voicing is then checked by :func:`periodicity`: a frame stays voiced only if its
normalised autocorrelation at the tracked period is at least MIN_PERIODICITY. All three call
some noise frames voiced near the bottom of the search range; the check unvoices them. Harvest
calls a pure sine unvoiced (it needs harmonics, as voices have): track test tones with DIO.

Speaker normalisation works in natural log F0 over voiced frames: z = (log F0 - mean) / std with
a speaker's :class:`PitchStats`, so the stream carries intonation rather than the speaker's
register; :func:`denormalise` with another speaker's statistics puts a contour in that
speaker's register (exactly their mean and std). :func:`quantise` maps z to ``bins`` equal bins
over [-NORMALISED_LIMIT, NORMALISED_LIMIT] (values beyond are clipped into the end bins), code
UNVOICED_CODE for unvoiced frames and 1..bins for voiced ones.

The ``.f0`` file (:func:`format_f0`, :func:`read_f0`) is plain text, one line per frame,
``time_s f0_hz``: the frame's centre in seconds and its F0, 0 when unvoiced (``numpy.loadtxt``
reads it; no header, so any two-column reader does).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

F0_MIN_HZ, F0_MAX_HZ = 50.0, 500.0  # the search range: adult and child voices (as evaluate's pYIN)
PYIN_FRAME_SECONDS = 0.064  # pYIN's window, as evaluate's: over three periods at F0_MIN_HZ
# r = P / (P + N) for a periodic part of power P in noise of power N (Boersma 1993), so r >= 0.5
# is a harmonics-to-noise ratio of at least 0 dB: the periodic part is at least half the sound.
MIN_PERIODICITY = 0.5
PERIODICITY_PERIODS = 2  # the correlation window, in periods of the frame's F0
MIN_LOG_F0_STD = math.log(2.0) / 1200.0  # one cent: a monotone speaker still normalises finitely
NORMALISED_LIMIT = 3.0  # quantisation covers z in [-3, 3] (99.7% of a normal's mass)
UNVOICED_CODE = 0  # quantised unvoiced frames; voiced frames are 1..bins
# The decoder's excitation (NSF, Wang et al. 2019): harmonics on voiced samples, noise of this std
# (a third of the harmonics' unit amplitude, NSF's ratio) on unvoiced ones
UNVOICED_NOISE_STD = 1.0 / 3.0
# In training the excitation's phase follows the audio's fundamental: the angle of the audio
# demodulated by the tracked phase, low-passed at this rate (smooth enough to carry no content,
# fast enough to follow the tracker's frequency errors, ~25 cents at 100-300 Hz)
PHASE_LOCK_HZ = 25.0
# the excitation's noise comes from an RNG keyed (..., EXCITATION_STREAM): a stream of its own
# beside the keys of crop offsets and sampling uniforms, which stay as they were
EXCITATION_STREAM = 1
F0_FILE_SUFFIX = ".f0"
F0_FILE_DECIMALS = (6, 2)  # seconds, Hz: 0.01 Hz is under a tenth of a cent at 50 Hz

# A tracker takes (audio (T,) float64, sample rate, hop) and returns F0 (n,) Hz of frames
# centred on samples k * hop, k = 0, 1, ...; unvoiced frames 0 or NaN; n may be any length.
Tracker = Callable[[np.ndarray, int, int], np.ndarray]


def _pyworld():
    try:
        with warnings.catch_warnings():  # pyworld imports the deprecated pkg_resources for its version
            warnings.simplefilter("ignore", UserWarning)
            import pyworld
    except ImportError as e:
        raise ImportError(
            f"the WORLD pitch trackers need pyworld ({e}): pip install 'audio_vq[pitch]', or tracker=pyin"
        ) from None
    return pyworld


def _frame_period_ms(sr: int, hop: int) -> float:
    return 1000.0 * hop / sr


def _harvest(x: np.ndarray, sr: int, hop: int) -> np.ndarray:
    f0, _ = _pyworld().harvest(x, sr, f0_floor=F0_MIN_HZ, f0_ceil=F0_MAX_HZ, frame_period=_frame_period_ms(sr, hop))
    return f0


def _dio(x: np.ndarray, sr: int, hop: int) -> np.ndarray:
    pyworld = _pyworld()
    f0, t = pyworld.dio(x, sr, f0_floor=F0_MIN_HZ, f0_ceil=F0_MAX_HZ, frame_period=_frame_period_ms(sr, hop))
    return pyworld.stonemask(x, f0, t, sr)  # refines DIO's coarse estimates


def _pyin(x: np.ndarray, sr: int, hop: int) -> np.ndarray:
    import librosa

    f0, voiced, _ = librosa.pyin(
        x,
        fmin=F0_MIN_HZ,
        fmax=F0_MAX_HZ,
        sr=sr,
        frame_length=round(PYIN_FRAME_SECONDS * sr),
        hop_length=hop,
        center=True,
    )
    return np.where(voiced, f0, 0.0)


TRACKERS: dict[str, Tracker] = {"harvest": _harvest, "dio": _dio, "pyin": _pyin}
WORLD_TRACKERS = ("harvest", "dio")  # need pyworld
# benchmarks/pitch_trackers.py (64 held-out synthetic utterances, each tracker with the
# periodicity check): Harvest no gross errors, 2.6% voicing errors (0.5% off voicing boundaries),
# 25 cents RMSE; DIO 0.02% / 3.1% (1.2%: it drops voiced stretches of up to 130 ms) / 28 cents;
# pYIN 0.2% / 2.5% (0.9%) / 65 cents. Accuracy first: Harvest, though ~30x slower than DIO
# (~3x real time on one busy core). Its known failure: it can unvoice a nearly sinusoidal voice.
DEFAULT_TRACKER = "harvest"


def unavailable(tracker: str = DEFAULT_TRACKER) -> str | None:
    """Why ``tracker`` cannot run here (None when it can)."""
    if tracker in WORLD_TRACKERS:
        try:
            _pyworld()
        except ImportError as e:
            return str(e)
    return None


def num_frames(num_samples: int, hop: int) -> int:
    """Frames of an input of ``num_samples`` at ``hop``: ceil(num_samples / hop)."""
    return -(-num_samples // hop)


def track(
    x: np.ndarray,
    sr: int,
    hop: int,
    tracker: str | Tracker = DEFAULT_TRACKER,
    min_periodicity: float | None = MIN_PERIODICITY,
) -> np.ndarray:
    """F0 (ceil(T / hop),) float64 Hz of mono audio ``x`` (T,), 0 on unvoiced frames, never NaN.

    ``tracker``: a name in TRACKERS or a :data:`Tracker`. Frame i is centred on the middle of
    samples [i * hop, (i + 1) * hop): the input is advanced by hop // 2 and zero-padded to
    whole frames, so a tracker's frame k (centred on sample k * hop) is frame i = k. Frames
    whose :func:`periodicity` is below ``min_periodicity`` are unvoiced (None: the tracker's
    own voicing only)."""
    fn = TRACKERS.get(tracker) if isinstance(tracker, str) else tracker
    if fn is None:
        raise ValueError(f"tracker={tracker!r}: unknown, choose one of {', '.join(TRACKERS)}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or not np.isfinite(x).all():
        raise ValueError(f"pitch tracking needs finite mono audio (T,), got shape {x.shape}")
    if hop < 1:
        raise ValueError(f"hop must be a positive number of samples, got {hop}")
    n = num_frames(len(x), hop)
    shifted = np.zeros(n * hop + hop)  # one more frame: the trackers' last may be short
    shifted[: max(len(x) - hop // 2, 0)] = x[hop // 2 :]
    f0 = np.asarray(fn(shifted, sr, hop), dtype=np.float64)[:n]
    out = np.zeros(n)
    out[: len(f0)] = np.where(np.isfinite(f0) & (f0 > 0), f0, 0.0)
    return out if min_periodicity is None else periodic_only(x, out, hop, sr, min_periodicity)


def periodic_only(
    x: np.ndarray, f0: np.ndarray, hop: int, sr: int, min_periodicity: float = MIN_PERIODICITY
) -> np.ndarray:
    """``f0`` (frames,) of ``x`` (T,) with the frames whose :func:`periodicity` is below
    ``min_periodicity`` unvoiced (a copy)."""
    return np.where(periodicity(x, f0, hop, sr) < min_periodicity, 0.0, f0)


def periodicity(x: np.ndarray, f0: np.ndarray, hop: int, sr: int) -> np.ndarray:
    """Normalised autocorrelation (frames,) of ``x`` (T,) at each voiced frame's period, 0 on
    unvoiced frames: the correlation of PERIODICITY_PERIODS periods around the frame's centre
    with the same span one period later, in [-1, 1] (1: exactly periodic, about 0: noise)."""
    lags = np.rint(sr / np.where(f0 > 0, f0, np.inf)).astype(np.int64)  # unvoiced: 0, never read
    window = PERIODICITY_PERIODS * lags
    margin = int(window.max(initial=0) + lags.max(initial=0))
    padded = np.pad(np.asarray(x, dtype=np.float64), margin)
    out = np.zeros(len(f0))
    for i in np.flatnonzero(f0 > 0):
        start = margin + (2 * i + 1) * hop // 2 - (window[i] + lags[i]) // 2
        a = padded[start : start + window[i]]
        b = padded[start + lags[i] : start + lags[i] + window[i]]
        energy = np.sqrt(np.dot(a, a) * np.dot(b, b))
        out[i] = np.dot(a, b) / energy if energy > 0 else 0.0
    return out


# --- speaker statistics and normalisation ------------------------------------------------------
@dataclass(frozen=True)
class PitchStats:
    """A speaker's register: mean and std of natural log F0 (Hz) over voiced frames."""

    mean: float
    std: float
    voiced_frames: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "voiced_frames": self.voiced_frames}

    @classmethod
    def from_dict(cls, d: dict) -> "PitchStats":
        return cls(mean=float(d["mean"]), std=float(d["std"]), voiced_frames=int(d["voiced_frames"]))


def log_f0_stats(contours: Iterable[np.ndarray]) -> PitchStats:
    """:class:`PitchStats` over the voiced frames of ``contours`` [(frames,) Hz, ...] pooled;
    the std is at least MIN_LOG_F0_STD. ValueError when no frame is voiced."""
    voiced = [np.log(c[c > 0]) for c in map(np.asarray, contours)]
    log_f0 = np.concatenate(voiced) if voiced else np.zeros(0)
    if not log_f0.size:
        raise ValueError("no voiced frame: log-F0 statistics need voiced speech")
    return PitchStats(
        mean=float(log_f0.mean()), std=max(float(log_f0.std()), MIN_LOG_F0_STD), voiced_frames=int(log_f0.size)
    )


def normalise(f0: np.ndarray, stats: PitchStats) -> np.ndarray:
    """Speaker-normalised log F0 (frames,): (log f0 - mean) / std on voiced frames, 0 on
    unvoiced ones (voicing travels as ``f0 > 0``)."""
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = f0 > 0
    return np.where(voiced, (np.log(np.where(voiced, f0, 1.0)) - stats.mean) / stats.std, 0.0)


def denormalise(z: np.ndarray, voiced: np.ndarray, stats: PitchStats) -> np.ndarray:
    """The inverse of :func:`normalise` in ``stats``' register: F0 (frames,) Hz, exp(mean + std
    * z) on ``voiced`` frames (bool (frames,)), 0 elsewhere."""
    return np.where(voiced, np.exp(stats.mean + stats.std * np.asarray(z, dtype=np.float64)), 0.0)


# --- quantisation --------------------------------------------------------------------------------
def _bin_width(bins: int) -> float:
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    return 2.0 * NORMALISED_LIMIT / bins


def quantise(z: np.ndarray, voiced: np.ndarray, bins: int) -> np.ndarray:
    """Codes (frames,) int64: UNVOICED_CODE on unvoiced frames, 1..bins on voiced ones for
    ``bins`` equal bins of normalised log F0 ``z`` (frames,) over [-NORMALISED_LIMIT,
    NORMALISED_LIMIT] (beyond it: the end bins). bins + 1 symbols in all."""
    width = _bin_width(bins)
    index = np.clip(np.floor((np.asarray(z, dtype=np.float64) + NORMALISED_LIMIT) / width), 0, bins - 1)
    return np.where(voiced, index.astype(np.int64) + 1, UNVOICED_CODE)


def dequantise(codes: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(z (frames,) the centres of the codes' bins, 0 where unvoiced; voiced (frames,) bool)
    of :func:`quantise`'s ``codes``; ValueError naming a code out of range."""
    width = _bin_width(bins)
    codes = np.asarray(codes, dtype=np.int64)
    bad = codes[(codes < 0) | (codes > bins)]
    if bad.size:
        raise ValueError(f"pitch code {int(bad[0])} is outside 0..{bins} (bins={bins})")
    voiced = codes != UNVOICED_CODE
    return np.where(voiced, -NORMALISED_LIMIT + (codes - 0.5) * width, 0.0), voiced


# --- the excitation ------------------------------------------------------------------------------
def sample_f0(f0: np.ndarray, hop: int, num_samples: int) -> np.ndarray:
    """F0 per sample (num_samples,) of a frame contour (frames,): each frame's value held over
    its hop samples (frame i covers [i * hop, (i + 1) * hop)), 0 past the contour's end."""
    out = np.zeros(num_samples)
    held = np.repeat(np.asarray(f0, dtype=np.float64), hop)[:num_samples]
    out[: len(held)] = held
    return out


@functools.lru_cache(maxsize=None)
def _lock_filter(sr: int) -> np.ndarray:
    """The PHASE_LOCK_HZ low-pass (second-order sections) at ``sr``: designed once per rate, not
    for every training crop."""
    from scipy.signal import butter

    return butter(2, PHASE_LOCK_HZ, fs=sr, output="sos")


def locked_phase(phase: np.ndarray, audio: np.ndarray, sr: int, voiced: np.ndarray) -> np.ndarray:
    """``phase`` (T,) of a tracked fundamental moved onto the fundamental of ``audio`` (T,):
    plus the angle of ``audio * exp(-j phase)`` low-passed at PHASE_LOCK_HZ (zero phase), the
    slowly varying phase offset of the audio's fundamental from the tracked one, on ``voiced``
    samples. A cosine of the result is in phase with the audio's fundamental."""
    from scipy.signal import sosfiltfilt

    demodulated = np.asarray(audio, dtype=np.float64) * np.exp(-1j * phase) * voiced
    sos = _lock_filter(sr)
    pad = min(len(phase) - 1, 3 * sr // int(PHASE_LOCK_HZ))
    if pad < 1:
        return phase
    smooth = sosfiltfilt(sos, demodulated.real, padlen=pad) + 1j * sosfiltfilt(sos, demodulated.imag, padlen=pad)
    return phase + np.where(voiced, np.angle(smooth), 0.0)


def excitation(
    f0: np.ndarray,
    hop: int,
    sr: int,
    harmonics: int,
    rng: np.random.Generator,
    num_samples: int | None = None,
    audio: np.ndarray | None = None,
) -> np.ndarray:
    """The decoder's source signal (2 * harmonics, T) float32 of a contour ``f0`` (frames,) Hz
    (T = ``num_samples``, default frames * hop): on voiced samples rows 2k and 2k + 1 are
    cos and sin of (k + 1) times the fundamental's phase (0 where that harmonic is at or above
    Nyquist); on unvoiced ones every row is Gaussian noise of std UNVOICED_NOISE_STD from
    ``rng``. The phase integrates the contour (starting at 0); given the ``audio`` (T,) the
    contour was tracked on, it is locked to the audio's fundamental (:func:`locked_phase`),
    which is how training sees it; at generation there is no audio to lock to."""
    if harmonics < 1:
        raise ValueError(f"harmonics must be at least 1, got {harmonics}")
    f0 = np.asarray(f0, dtype=np.float64)
    T = len(f0) * hop if num_samples is None else int(num_samples)
    f = sample_f0(f0, hop, T)
    voiced = f > 0
    phase = 2.0 * np.pi * np.cumsum(f / sr)
    if audio is not None:
        if len(audio) != T:
            raise ValueError(f"audio has {len(audio)} samples, the excitation {T}")
        phase = locked_phase(phase, audio, sr, voiced)
    out = np.empty((2 * harmonics, T), np.float32)
    noise = rng.standard_normal((2 * harmonics, T)) * UNVOICED_NOISE_STD
    for k in range(1, harmonics + 1):
        audible = voiced & (k * f < sr / 2)
        out[2 * k - 2] = np.where(voiced, np.where(audible, np.cos(k * phase), 0.0), noise[2 * k - 2])
        out[2 * k - 1] = np.where(voiced, np.where(audible, np.sin(k * phase), 0.0), noise[2 * k - 1])
    return out


# --- .f0 files -----------------------------------------------------------------------------------
def format_f0(f0: np.ndarray, hop: int, sr: int) -> str:
    """The ``.f0`` text of a contour (frames,) Hz at ``hop``: ``time_s f0_hz`` per frame, the
    time the frame's centre ((i + 0.5) * hop / sr)."""
    seconds, hz = F0_FILE_DECIMALS
    return "".join(f"{(i + 0.5) * hop / sr:.{seconds}f} {f:.{hz}f}\n" for i, f in enumerate(np.asarray(f0)))


def read_f0(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(times (frames,) s, f0 (frames,) Hz) of a ``.f0`` file; ValueError naming the file and
    line of a malformed one."""
    times, f0 = [], []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        try:
            t, f = (float(v) for v in fields) if len(fields) == 2 else (math.nan, math.nan)
        except ValueError:
            t = f = math.nan
        if not (math.isfinite(t) and math.isfinite(f) and f >= 0):
            raise ValueError(f"{path}:{number}: expected 'time_s f0_hz' (F0 >= 0, 0 unvoiced), got {line!r}")
        times.append(t)
        f0.append(f)
    return np.array(times), np.array(f0)
