"""Signal-level metrics between a reference and a degraded (reconstructed or converted) signal.

Every function takes float mono audio (T,) at ``sr`` (default :data:`audio_vq.audio.SAMPLE_RATE`)
and documents its units and which direction is better. Frame sizes are given at 16 kHz and
scaled with the sample rate, so a frame covers the same time at any rate.

Our definitions (the README's "Reconstruction metrics" section repeats them):

- Mel cepstrum: natural-log *amplitude* mel spectrum (80 Slaney mels, 0 Hz..Nyquist, Hann
  window, n_fft 1024 / hop 256 at 16 kHz, floor 1e-5), then a DCT-II along the mel axis scaled
  as a cosine series, c_k = (1/N) sum_n x_n cos(pi k (n + 1/2) / N), so that
  ln|X| ~ c0 + 2 sum_k c_k cos(...): the cepstrum convention that the MCD constant assumes
  (SPTK's). The orthonormal DCT (librosa's MFCC) would inflate every coefficient, and so MCD,
  by sqrt(2N) = 12.6. c0..c24 kept; MCD compares c1..c24 (c0 is the frame's level: a gain change
  would dominate it). These are still filterbank cepstra, not SPTK/WORLD mel-generalised
  cepstra (all-pass warping alpha = 0.42 fitted to the spectrum), so absolute MCD values are
  NOT comparable with papers that use SPTK/WORLD; compare systems under this code only.
- MR-STFT distance: spectral convergence + mean |ln magnitude difference|, averaged over three
  resolutions (Parallel WaveGAN's auxiliary loss, used here as a distance).
- Log-mel L1: HiFi-GAN's mel loss, mean |ln mel(ref) - ln mel(deg)| on magnitude mels.
- SI-SNR: scale-invariant SNR (Le Roux et al. 2019), bounded to +-100 dB.
- STOI via pystoi, PESQ (wideband) via the optional ``pesq`` package.
- F0: librosa's pYIN (Mauch & Dixon 2014) between 50 and 500 Hz, 64 ms frames every 10 ms at
  16 kHz; a signal's F0 is the median over the frames pYIN calls voiced. Noise has few voiced
  frames and no stable median; generated audio without harmonics fails the check below.
"""

from __future__ import annotations

import logging
import warnings

import librosa
import numpy as np
import scipy.fft
from scipy.spatial.distance import cdist

from ...audio import SAMPLE_RATE, resample
from .dtw import dtw_path

log = logging.getLogger(__name__)

REFERENCE_RATE = 16_000  # frame sizes below are stated at this rate and scaled with sr

# Mel cepstrum (also the log-mel features of log_mel_l1)
MEL_N_FFT = 1024
MEL_HOP = 256
N_MELS = 80
AMPLITUDE_FLOOR = 1e-5  # ln floor on mel amplitudes: about -100 dB, below any recording's noise
N_CEPSTRUM = 25  # c0..c24
MCD_FIRST, MCD_LAST = 1, 24  # MCD uses c1..c24: c0 is energy
MCD_SCALE = 10.0 / np.log(10.0)  # neper -> dB; with sqrt(2 * sum d^2) the usual MCD constant
ALIGNMENTS = ("none", "dtw")

# Multi-resolution STFT (Parallel WaveGAN, Yamamoto et al. 2020), (n_fft, hop, win) at 16 kHz
STFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
MAGNITUDE_FLOOR = 1e-7  # ln floor on STFT magnitudes; keeps silence finite
NORM_FLOOR = 1e-12  # spectral convergence of a silent reference: divide by this, not by zero

# SI-SNR: both energies carry a floor of this fraction of the output's energy (which target and
# noise split between them), bounding the result to +-SI_SNR_LIMIT_DB without breaking scale
# invariance: identical signals give +100 dB, a silent output -100 dB.
SI_SNR_LIMIT_DB = 100.0
_SI_SNR_FLOOR = 10.0 ** (-SI_SNR_LIMIT_DB / 10.0)
SILENCE_ENERGY = 1e-20  # sum of squares at or below which a zero-mean signal counts as silent

# PESQ is defined at 8 kHz (narrowband) and 16 kHz (wideband) only
PESQ_MODES = {16_000: "wb", 8_000: "nb"}

# F0 (pYIN): search range, frames, and the check's tolerance
F0_MIN_HZ, F0_MAX_HZ = 50.0, 500.0  # covers adult and child voices
F0_FRAME, F0_HOP = 1024, 160  # 64 ms (two periods at 50 Hz), 10 ms, at 16 kHz
F0_MIN_VOICED_FRAMES = 10  # fewer voiced frames: no median (100 ms of voicing in all)
F0_TOLERANCE = 0.10  # the check: median F0 within 10% of the reference's

_STOI_TOO_SHORT = "Not enough STFT frames"  # pystoi's warning when it returns its 1e-5 placeholder


def _scaled(samples: int, sr: int) -> int:
    """``samples`` at 16 kHz expressed at ``sr`` (same duration), at least 1."""
    return max(1, int(round(samples * sr / REFERENCE_RATE)))


def _mono(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` as finite float64 (T,), T >= 1; ValueError naming ``name`` otherwise."""
    x = np.asarray(x)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be non-empty mono audio of shape (T,), got shape {x.shape}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds non-finite samples (NaN or Inf)")
    return x


def _pair(ref: np.ndarray, deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both signals checked and trimmed to the shorter length."""
    ref, deg = _mono(ref, "ref"), _mono(deg, "deg")
    n = min(len(ref), len(deg))
    return ref[:n], deg[:n]


def _mel_amplitude(x: np.ndarray, sr: int) -> np.ndarray:
    """Magnitude (power 1) mel spectrogram (N_MELS, frames): Hann window, centred frames."""
    n_fft = _scaled(MEL_N_FFT, sr)
    return librosa.feature.melspectrogram(
        y=x,
        sr=sr,
        n_fft=n_fft,
        hop_length=_scaled(MEL_HOP, sr),
        win_length=n_fft,
        window="hann",
        center=True,
        power=1.0,
        n_mels=N_MELS,
        fmin=0.0,
        fmax=sr / 2.0,
    )


def log_mel(x: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Natural-log magnitude mel spectrogram (N_MELS, frames), floored at ln(AMPLITUDE_FLOOR);
    n_fft 1024 / hop 256 at 16 kHz (16 ms hops), Slaney mels from 0 Hz to Nyquist."""
    return np.log(np.maximum(_mel_amplitude(_mono(x, "x"), sr), AMPLITUDE_FLOOR))


def mel_cepstrum(x: np.ndarray, sr: int = SAMPLE_RATE, n_coefficients: int = N_CEPSTRUM) -> np.ndarray:
    """Mel cepstrum (frames, n_coefficients), c0 first, in nepers (natural-log amplitude units).

    DCT-II over the mel axis of :func:`log_mel`, scaled as cosine-series coefficients
    c_k = (1/N) sum_n x_n cos(pi k (n + 1/2) / N) with N = N_MELS (scipy's unnormalised DCT-II
    is twice that sum). Not SPTK/WORLD mel-cepstra: see the module docstring before comparing
    absolute values with published MCDs.
    """
    if not 1 <= n_coefficients <= N_MELS:
        raise ValueError(f"n_coefficients must be in [1, {N_MELS}], got {n_coefficients}")
    cepstrum = scipy.fft.dct(log_mel(x, sr), type=2, norm=None, axis=0)[:n_coefficients] / (2 * N_MELS)
    return np.ascontiguousarray(cepstrum.T)


def mcd(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE, align: str = "none") -> float:
    """Mel-cepstral distortion in dB of the filterbank cepstra above; lower is better, 0 for
    identical signals. See :func:`cepstral_distortion` for the formula and ``align``."""
    return cepstral_distortion(
        mel_cepstrum(ref, sr)[:, MCD_FIRST : MCD_LAST + 1], mel_cepstrum(deg, sr)[:, MCD_FIRST : MCD_LAST + 1], align
    )


def cepstral_distortion(a: np.ndarray, b: np.ndarray, align: str = "none") -> float:
    """MCD in dB between cepstrograms a (N, D) and b (M, D), c0 already left out.

    Per frame: (10 / ln 10) * sqrt(2 * sum_d (a[d] - b[d])^2), then the mean over frames.
    ``align="none"`` compares frame t with frame t, the longer cepstrogram trimmed to the
    shorter (for reconstructions, which keep the timing); ``align="dtw"`` pairs the frames along
    the cheapest monotonic path under Euclidean cepstral distance and averages over the path
    (for a conversion against the target speaker's own utterance of the same text).
    """
    if align not in ALIGNMENTS:
        raise ValueError(f"align must be one of {ALIGNMENTS}, got {align!r}")
    if align == "none":
        n = min(len(a), len(b))
        distance = np.linalg.norm(a[:n] - b[:n], axis=1)
    else:
        cost = cdist(a, b)  # Euclidean, the quantity MCD scales
        i, j = dtw_path(cost)
        distance = cost[i, j]
    return float(MCD_SCALE * np.sqrt(2.0) * distance.mean())


def mr_stft_distance(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Multi-resolution STFT distance (dimensionless); lower is better, 0 for identical signals.

    For each (n_fft, hop, win) in STFT_RESOLUTIONS (at 16 kHz, scaled with ``sr``; Hann window,
    centred frames) with magnitudes S = max(|STFT|, 1e-7):
    spectral convergence ||S_ref - S_deg||_F / ||S_ref||_F plus log-magnitude distance
    mean |ln S_ref - ln S_deg|; the result is the mean of that sum over the resolutions.
    Signals are trimmed to the shorter length first.
    """
    ref, deg = _pair(ref, deg)
    total = 0.0
    for n_fft, hop, win in STFT_RESOLUTIONS:
        kwargs = dict(
            n_fft=_scaled(n_fft, sr),
            hop_length=_scaled(hop, sr),
            win_length=_scaled(win, sr),
            window="hann",
            center=True,
        )
        s_ref = np.maximum(np.abs(librosa.stft(ref, **kwargs)), MAGNITUDE_FLOOR)
        s_deg = np.maximum(np.abs(librosa.stft(deg, **kwargs)), MAGNITUDE_FLOOR)
        convergence = np.linalg.norm(s_ref - s_deg) / max(np.linalg.norm(s_ref), NORM_FLOOR)
        total += convergence + np.mean(np.abs(np.log(s_ref) - np.log(s_deg)))
    return float(total / len(STFT_RESOLUTIONS))


def log_mel_l1(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Mean absolute difference of :func:`log_mel` spectrograms, in nepers (natural-log
    amplitude); lower is better, 0 for identical signals. Trimmed to the shorter length first."""
    ref, deg = _pair(ref, deg)
    return float(np.mean(np.abs(log_mel(ref, sr) - log_mel(deg, sr))))


def si_snr(ref: np.ndarray, deg: np.ndarray) -> float:
    """Scale-invariant signal-to-noise ratio in dB; higher is better.

    Both signals made zero-mean; target = projection of deg on ref, noise = deg - target;
    10 log10(|target|^2 / |noise|^2). Scaling deg leaves it unchanged. Both energies carry a
    floor of 1e-10 x deg's energy, bounding the result to [-100, +100] dB (identical signals:
    +100); a silent (or constant) deg gets -100. A silent (or constant) reference has no
    defined SI-SNR: NaN. Trimmed to the shorter length first.
    """
    ref, deg = _pair(ref, deg)
    ref, deg = ref - ref.mean(), deg - deg.mean()
    ref_energy, deg_energy = float(np.dot(ref, ref)), float(np.dot(deg, deg))
    if ref_energy <= SILENCE_ENERGY:
        return float("nan")
    if deg_energy <= SILENCE_ENERGY:
        return -SI_SNR_LIMIT_DB
    target = (np.dot(deg, ref) / ref_energy) * ref
    noise = deg - target
    floor = _SI_SNR_FLOOR * deg_energy
    ratio = (np.dot(target, target) + floor) / (np.dot(noise, noise) + floor)
    return float(np.clip(10.0 * np.log10(ratio), -SI_SNR_LIMIT_DB, SI_SNR_LIMIT_DB))


def stoi(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE, extended: bool = False) -> float | None:
    """Short-Time Objective Intelligibility (Taal et al. 2011) via pystoi, about 0..1 (a
    correlation, can dip below 0); higher is better. ``extended`` gives ESTOI (Jensen & Taal 2016).

    pystoi resamples to 10 kHz and drops frames 40 dB below the loudest; None when fewer than
    30 frames (~0.4 s of active speech) remain, where STOI is undefined (pystoi itself would
    return a 1e-5 placeholder). Trimmed to the shorter length first.
    """
    from pystoi import stoi as _pystoi

    ref, deg = _pair(ref, deg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_pystoi(ref, deg, sr, extended=extended))
    if any(_STOI_TOO_SHORT in str(w.message) for w in caught):
        return None
    return value


def pesq(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE) -> float | None:
    """Wideband PESQ (ITU-T P.862.2) MOS-LQO, about 1.0..4.6; higher is better.

    Only when the optional ``pesq`` package imports; None otherwise, and None when PESQ
    refuses the pair (e.g. it finds no speech). Narrowband P.862 at 8 kHz; other rates are
    resampled to 16 kHz. Trimmed to the shorter length first.
    """
    try:
        from pesq import pesq as _pesq
    except ImportError:
        return None
    ref, deg = _pair(ref, deg)
    if sr not in PESQ_MODES:
        ref, deg = (resample(x, sr, REFERENCE_RATE).astype(np.float64) for x in (ref, deg))
        sr = REFERENCE_RATE
    try:
        return float(_pesq(sr, ref, deg, PESQ_MODES[sr]))
    except Exception as e:  # the package raises its own error types (no utterances, too short)
        log.warning("PESQ undefined for this pair: %s", e)
        return None


def pyin_contour(x: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """pYIN's F0 (frames,) in Hz, 0 on the frames it calls unvoiced (frame k centred on sample
    k * hop); empty for silence or audio shorter than one frame."""
    x = _mono(x, "x")
    if x.size < _scaled(F0_FRAME, sr) or not np.any(x):
        return np.zeros(0)
    f0, voiced, _ = librosa.pyin(
        x,
        fmin=F0_MIN_HZ,
        fmax=F0_MAX_HZ,
        sr=sr,
        frame_length=_scaled(F0_FRAME, sr),
        hop_length=_scaled(F0_HOP, sr),
        center=True,
    )
    return np.where(voiced & np.isfinite(f0), f0, 0.0)


def voiced_f0(x: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """F0 in Hz of the frames pYIN calls voiced, (voiced frames,); empty for silence."""
    f0 = pyin_contour(x, sr)
    return f0[f0 > 0]


def f0_rmse_semitones(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE) -> float | None:
    """RMS difference in semitones between the pYIN contours of ``deg`` and ``ref`` over the
    frames voiced in both (compared frame by frame: a reconstruction keeps the timing); None
    when fewer than F0_MIN_VOICED_FRAMES frames are."""
    a, b = pyin_contour(ref, sr), pyin_contour(deg, sr)
    n = min(len(a), len(b))
    both = (a[:n] > 0) & (b[:n] > 0)
    if both.sum() < F0_MIN_VOICED_FRAMES:
        return None
    return float(np.sqrt(np.mean((SEMITONES_PER_OCTAVE * np.log2(b[:n][both] / a[:n][both])) ** 2)))


def median_f0(x: np.ndarray, sr: int = SAMPLE_RATE) -> tuple[float | None, float]:
    """(median F0 in Hz over voiced frames, or None with fewer than F0_MIN_VOICED_FRAMES of
    them; the fraction of frames that are voiced)."""
    f0 = voiced_f0(x, sr)  # validates x
    frames = max(1, 1 + np.size(x) // _scaled(F0_HOP, sr))
    median = float(np.median(f0)) if f0.size >= F0_MIN_VOICED_FRAMES else None
    return median, f0.size / frames


SEMITONES_PER_OCTAVE = 12


def f0_within(value: float | None, reference: float | None, tolerance: float = F0_TOLERANCE) -> bool | None:
    """Is ``value`` within ``tolerance`` (relative) of ``reference``? False when the generated
    signal has no F0; None when the reference has none (the check does not apply)."""
    if reference is None:
        return None
    return value is not None and abs(value - reference) <= tolerance * reference


def reconstruction_metrics(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float | None]:
    """All the metrics above for one (reference, reconstruction) pair, both trimmed to the
    shorter length first (MCD compares frame by frame: a reconstruction keeps the timing).

    Keys: ``mcd_filterbank_db`` (lower better), ``mr_stft`` (lower), ``log_mel_l1`` (lower), ``si_snr_db``
    (higher), ``stoi`` (higher), ``pesq`` (higher). None marks a metric that is unavailable
    (no ``pesq`` package) or undefined for this pair (silent reference, too little speech).
    """
    ref, deg = _pair(ref, deg)
    snr = si_snr(ref, deg)
    return {
        "mcd_filterbank_db": mcd(ref, deg, sr, align="none"),
        "mr_stft": mr_stft_distance(ref, deg, sr),
        "log_mel_l1": log_mel_l1(ref, deg, sr),
        "si_snr_db": None if np.isnan(snr) else snr,
        "stoi": stoi(ref, deg, sr),
        "pesq": pesq(ref, deg, sr),
    }
