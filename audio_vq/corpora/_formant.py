"""The formant synthesiser behind the toy-speech corpus (numpy + scipy.signal).

A Klatt-style source-filter model (Klatt 1980, "Software for a cascade/parallel formant
synthesizer"): a Rosenberg glottal pulse train with jitter and shimmer, plus aspiration noise,
drives a cascade of second-order resonators whose frequencies change every control block (the
formants, and a nasal pole/zero pair); frication and stop bursts are white noise through fixed
band-pass resonators, added in parallel. :func:`render` turns a score, ``[(Phone, samples), ...]``,
spoken by a :class:`Speaker`, into audio, and keeps what it knows of the pitch (:class:`Rendering`);
:func:`true_f0` makes that a frame-level ground truth. Signals are float64 arrays (T,) at rate ``sr``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import butter, iirpeak, lfilter, sosfilt

# Rosenberg-C pulse: the opening phase lasts this many times the closing phase. The abrupt end
# of the closing phase is the main excitation of the vocal tract, as in natural voicing.
SPEED_QUOTIENT = 2.0
# Frequencies are kept below this fraction of the sample rate so every filter stays valid (a
# resonator at or above Nyquist would fold onto low frequencies). Below 16 kHz the highest
# formants and fricative peaks are therefore squeezed under the band edge.
MAX_FREQUENCY_FRACTION = 0.45
HIGHPASS_FRACTION, HIGHPASS_ORDER = 0.6, 2  # frication: cut-off relative to the lowest noise peak
CONTROL_SECONDS = 0.005  # formant update period: the classic synthesiser frame
# Part of each end of a phone spent moving between targets: consonants reach their locus quickly.
VOWEL_TRANSITION_FRACTION, CONSONANT_TRANSITION_FRACTION = 0.3, 0.15
FORMANT_SMOOTHING_SECONDS = 0.02  # rounds the corners of the piecewise-linear formant tracks
TOKEN_VARIATION = 0.03  # relative formant deviation of one phone token from its target
HIGH_FORMANTS = (3500.0, 4500.0)  # F4, F5 (Hz at scale 1): voice colour, not phone identity
HIGH_BANDWIDTHS = (250.0, 300.0)
NASAL_POLE, NASAL_POLE_BANDWIDTH = 270.0, 100.0  # Klatt's FNP; oral sounds put the nasal zero here
AMPLITUDE_RAMP_SECONDS = 0.008  # voicing and aspiration switch on and off over this time
FRICATION_RAMP_SECONDS = 0.02
BURST_SECONDS, BURST_DECAY_SECONDS = 0.015, 0.004
DECLINATION = 0.5  # F0 falls by this fraction of the speaker's pitch range over an utterance
ACCENT_PROBABILITY, ACCENT_HEIGHT, ACCENT_SECONDS = 0.35, (0.3, 1.0), 0.06  # height: x pitch range
UTTERANCE_PITCH_SEMITONES = 0.7  # std of an utterance's overall pitch offset
WOBBLE_SEMITONES, WOBBLE_HZ = 0.4, (0.3, 1.2)  # slow F0 drift
F0_LIMITS = (60.0, 400.0)
CLOSED_PHASE_NOISE = 0.25  # aspiration while the glottis is closed, relative to open
PEAK_LEVEL = 0.8
NOISE_FLOOR = 10.0 ** (-66.0 / 20.0)  # recording noise, so that pauses are never digital silence
# Ground-truth voicing of a frame (true_f0): the glottal source is on for at least
# SOURCE_ON_FRACTION of its samples, its sound (through the vocal tract) is within VOICED_RANGE_DB
# of the utterance's loudest frame of it (audible), and it is at least MIN_HARMONIC_TO_NOISE_DB
# above everything aperiodic in the frame (aspiration, breath, frication, bursts, the noise
# floor), which would otherwise mask it.
SOURCE_ON_FRACTION, VOICED_RANGE_DB, MIN_HARMONIC_TO_NOISE_DB = 0.5, 40.0, 0.0
# "On": an amplitude above this, relative to a vowel's: far under the weakest voicing (a voice
# bar's, VOICE_BAR in synthetic.py), far over the rounding residue that smoothing leaves in the
# zeros beside the ramps.
SOURCE_ON_LEVEL = 1e-3


@dataclass(frozen=True)
class Phone:
    """One phone: its class, what the vocal tract aims for, and how it is excited.

    ``formants`` None means "no target of its own" (silence, /h/): the neighbours' formants carry
    through it. For stops ``voicing`` is the closure's (voice bar); after the release voiceless
    stops (``aspiration`` > 0) are aspirated for ``vot`` seconds, voiced ones fully voiced."""

    cls: str  # vowel | nasal | fricative | stop | silence
    formants: tuple[float, float, float] | None  # F1-F3 (Hz) target or locus, vocal-tract scale 1
    bandwidths: tuple[float, float, float]
    duration: tuple[float, float]  # seconds (min, max) at speaking rate 1
    voicing: float = 0.0  # amplitude of the voice source, relative to a vowel's
    aspiration: float = 0.0  # amplitude of noise at the glottis, relative to the voice source
    noise: tuple[tuple[float, float, float], ...] = ()  # frication/burst: ((Hz, bandwidth Hz, dB), ...)
    noise_db: float = 0.0  # frication or burst level relative to the vowels' RMS
    nasal_zero: float | None = None  # Hz: the antiresonance of the closed oral branch
    vot: float = 0.0  # stops: seconds from release to the next phone


@dataclass(frozen=True)
class Speaker:
    """A voice. Formants are multiplied by ``formant_scale`` (1 / relative vocal-tract length)
    and per formant by ``formant_shifts`` (F1..F5); ``rate`` multiplies durations; ``tilt`` is
    the source low-pass coefficient; ``pitch_range`` is in semitones."""

    name: str
    f0: float
    pitch_range: float
    formant_scale: float
    formant_shifts: tuple[float, float, float, float, float]
    tilt: float
    breathiness: float
    open_quotient: float
    jitter: float
    shimmer: float
    rate: float


@dataclass(frozen=True)
class Rendering:
    """One utterance as :func:`render` made it, sample by sample, all (T,).

    audio: float32, peak about ``PEAK_LEVEL``.
    frequency: Hz, the glottal source's instantaneous frequency: the F0 contour times each
        period's jitter factor, defined everywhere (also where the source is off).
    source_on: bool, where the glottal source's amplitude is above SOURCE_ON_LEVEL.
    periodic: the glottal pulses' share of ``audio`` (through the same vocal tract, at the same
        scale); ``audio - periodic`` is everything aperiodic."""

    audio: np.ndarray
    frequency: np.ndarray
    source_on: np.ndarray
    periodic: np.ndarray


def render(score: list[tuple[Phone, int]], speaker: Speaker, rng: np.random.Generator, sr: int) -> Rendering:
    """The utterance of ``score`` [(phone, samples), ...]; T is the sum of the samples. Each
    phone sounds in its own samples, give or take the few milliseconds of amplitude ramps,
    resonator ringing and formant transitions."""
    lengths = np.array([n for _, n in score])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    total = int(lengths.sum())
    voicing, aspiration, vowel = np.zeros(total), np.zeros(total), np.zeros(total, bool)
    noises = []  # (start, stop, phone, is_burst)
    for (p, n), s in zip(score, starts):
        e = s + n
        if p.cls == "stop":
            release = e - min(round(p.vot * speaker.rate * sr), n // 2)
            voicing[s:release] = p.voicing
            voicing[release:e], aspiration[release:e] = (0.0, p.aspiration) if p.aspiration else (1.0, 0.0)
            noises.append((release, min(release + round(BURST_SECONDS * sr), e), p, True))
        else:
            voicing[s:e], aspiration[s:e], vowel[s:e] = p.voicing, p.aspiration, p.cls == "vowel"
            if p.noise:
                noises.append((s, e, p, False))
    ramp = round(AMPLITUDE_RAMP_SECONDS * sr)
    voicing, aspiration = smooth(voicing, ramp), smooth(aspiration, ramp)

    f0 = _f0_contour(score, starts, speaker, rng, sr)
    pulses, glottis_open, frequency = glottal_source(
        f0, rng, sr, speaker.open_quotient, speaker.jitter, speaker.shimmer
    )
    voice = spectral_tilt(pulses, speaker.tilt)
    voice /= rms(voice)
    noise = rng.standard_normal(total)
    breath = speaker.breathiness * np.where(glottis_open, 1.0, CLOSED_PHASE_NOISE)
    source = voicing * (voice + breath * noise) + aspiration * noise
    block = max(1, round(CONTROL_SECONDS * sr))
    resonators, nasal_zero = _vocal_tract(score, starts, speaker, rng, sr, block)
    audio = time_varying_fir(time_varying_cascade(source, resonators, block), nasal_zero, block)
    # The tract is linear and starts at rest, so the pulses' share of the audio is the pulses
    # alone through it (what the ground-truth voicing asks of each frame).
    periodic = time_varying_fir(time_varying_cascade(voicing * voice, resonators, block), nasal_zero, block)

    reference = rms(audio[vowel])  # frication levels are relative to the vowels
    for s, e, p, burst in noises:
        peaks = [(f * speaker.formant_scale, bw * speaker.formant_scale, g) for f, bw, g in p.noise]
        shaped = shaped_noise(rng.standard_normal(e - s), peaks, sr)
        k = np.arange(e - s)
        if burst:
            envelope = np.exp(-k / (BURST_DECAY_SECONDS * sr))
        else:  # raised-cosine onset and offset
            edge = max(1, min(round(FRICATION_RAMP_SECONDS * sr), (e - s) // 3))
            envelope = np.sin(0.5 * np.pi * np.minimum(np.minimum(k, k[::-1]) / edge, 1.0)) ** 2
        audio[s:e] += reference * 10.0 ** (p.noise_db / 20.0) * envelope * shaped
    scale = PEAK_LEVEL / np.max(np.abs(audio))
    audio *= scale
    audio += NOISE_FLOOR * rng.standard_normal(total)
    return Rendering(
        audio=audio.astype(np.float32),
        frequency=frequency,
        source_on=voicing > SOURCE_ON_LEVEL,
        periodic=periodic * scale,
    )


def true_f0(rendering: Rendering, hop: int) -> np.ndarray:
    """The rendered F0 per frame, (ceil(T / hop),) Hz, 0 on unvoiced frames.

    Frame i is samples [i * hop, (i + 1) * hop) (the last may be shorter). Its F0 is the mean
    instantaneous frequency of the glottal source over those samples (the periods it completes
    per second: jitter included); it is voiced when the source is on for SOURCE_ON_FRACTION of
    them, sounds within VOICED_RANGE_DB of the utterance's loudest frame of voice, and is at
    least MIN_HARMONIC_TO_NOISE_DB above the aperiodic rest of the frame."""
    total = len(rendering.audio)
    starts = np.arange(0, total, hop)
    counts = np.diff(np.append(starts, total))

    def frame_mean(x: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.asarray(x, dtype=np.float64), starts) / counts

    periodic_power = frame_mean(np.square(rendering.periodic))
    aperiodic_power = frame_mean(np.square(rendering.audio - rendering.periodic))
    loudest = periodic_power.max()
    # powers: dB = 10 log10, compared as ratios so that silent frames need no logarithm of 0
    voiced = (
        (frame_mean(rendering.source_on) >= SOURCE_ON_FRACTION)
        & (periodic_power >= loudest * 10.0 ** (-VOICED_RANGE_DB / 10.0))
        & (periodic_power > 0)
        & (periodic_power >= aperiodic_power * 10.0 ** (MIN_HARMONIC_TO_NOISE_DB / 10.0))
    )
    return np.where(voiced, frame_mean(rendering.frequency), 0.0)


def _f0_contour(score, starts: np.ndarray, speaker: Speaker, rng: np.random.Generator, sr: int) -> np.ndarray:
    """F0 (T,) in Hz: declination, pitch accents on some vowels, a slow wobble."""
    t = np.arange(int(starts[-1] + score[-1][1])) / sr
    semitones = speaker.pitch_range * DECLINATION * (0.5 - t / t[-1])
    semitones += UTTERANCE_PITCH_SEMITONES * rng.standard_normal()
    wobble_hz, wobble_phase = rng.uniform(*WOBBLE_HZ), rng.uniform(0, 2 * np.pi)
    semitones += WOBBLE_SEMITONES * np.sin(2 * np.pi * wobble_hz * t + wobble_phase)
    for (p, n), s in zip(score, starts):
        if p.cls == "vowel" and rng.random() < ACCENT_PROBABILITY:
            height = speaker.pitch_range * rng.uniform(*ACCENT_HEIGHT)
            semitones += height * np.exp(-0.5 * ((t - (s + n / 2) / sr) / ACCENT_SECONDS) ** 2)
    return np.clip(speaker.f0 * 2.0 ** (semitones / 12.0), *F0_LIMITS)


def _vocal_tract(
    score, starts, speaker: Speaker, rng: np.random.Generator, sr: int, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per control block: resonators (blocks, 6, 6) (F1..F5, nasal pole) and the nasal zero
    (blocks, 6), which cancels the pole except in nasals (Klatt's nasal pole-zero pair).

    Coarticulation: each phone holds its (token-perturbed) target in its middle, and the
    tracks are interpolated linearly between neighbouring targets, across the boundary."""
    times, rows = [], []
    for (p, n), s in zip(score, starts):
        if p.formants is None:
            continue
        f = np.array(p.formants) * speaker.formant_scale * np.array(speaker.formant_shifts[:3])
        f *= 1 + TOKEN_VARIATION * rng.standard_normal(3)
        zero = NASAL_POLE if p.nasal_zero is None else p.nasal_zero * speaker.formant_scale
        frac = VOWEL_TRANSITION_FRACTION if p.cls == "vowel" else CONSONANT_TRANSITION_FRACTION
        times += [s + frac * n, s + (1 - frac) * n]
        rows += [[*f, *p.bandwidths, zero]] * 2
    centres = (np.arange(-(-int(starts[-1] + score[-1][1]) // block)) + 0.5) * block
    width = round(FORMANT_SMOOTHING_SECONDS * sr / block)
    track = np.stack([smooth(np.interp(centres, times, col), width) for col in np.array(rows).T], axis=-1)
    high = np.array(HIGH_FORMANTS) * speaker.formant_scale * np.array(speaker.formant_shifts[3:])
    freqs = np.concatenate([track[:, :3], np.broadcast_to(high, (len(track), 2))], axis=1)
    bws = np.concatenate([track[:, 3:6], np.broadcast_to(HIGH_BANDWIDTHS, (len(track), 2))], axis=1)
    pole_bw = np.full(len(track), NASAL_POLE_BANDWIDTH)
    pole = resonator_sos(np.full(len(track), NASAL_POLE), pole_bw, sr)
    return (
        np.concatenate([resonator_sos(freqs, bws, sr), pole[:, None]], axis=1),
        antiresonator_sos(track[:, 6], pole_bw, sr),
    )


# --- signal processing ------------------------------------------------------------------------
def clamp_frequency(freq, sr: int):
    """Frequencies or bandwidths (any shape, Hz) limited to ``MAX_FREQUENCY_FRACTION * sr``."""
    return np.minimum(freq, MAX_FREQUENCY_FRACTION * sr)


def resonator_sos(freq: np.ndarray, bandwidth: np.ndarray, sr: int) -> np.ndarray:
    """Second-order all-pole resonators with unity gain at 0 Hz (Klatt's normalisation, so a
    cascade's formant amplitudes follow from the formant frequencies alone).

    freq, bandwidth: (...,) in Hz. Returns (..., 6) sections ``[b0, b1, b2, 1, a1, a2]``."""
    r = np.exp(-np.pi * np.asarray(bandwidth, dtype=np.float64) / sr)
    a1 = -2.0 * r * np.cos(2.0 * np.pi * clamp_frequency(np.asarray(freq, dtype=np.float64), sr) / sr)
    a2 = r * r
    zero = np.zeros_like(a1)
    return np.stack([1.0 + a1 + a2, zero, zero, np.ones_like(a1), a1, a2], axis=-1)


def antiresonator_sos(freq: np.ndarray, bandwidth: np.ndarray, sr: int) -> np.ndarray:
    """The inverse of :func:`resonator_sos` (a pair of zeros, unity gain at 0 Hz): a resonator
    and an antiresonator with equal parameters cancel exactly. Returns (..., 6)."""
    res = resonator_sos(freq, bandwidth, sr)
    out = np.zeros_like(res)
    out[..., 0], out[..., 1:3] = 1.0, res[..., 4:6]
    out[..., :3] /= res[..., :1]  # 1 + a1 + a2
    out[..., 3] = 1.0
    return out


def time_varying_cascade(x: np.ndarray, sos: np.ndarray, block: int) -> np.ndarray:
    """Filter ``x`` (T,) through a cascade of sections that change every ``block`` samples.

    sos: (ceil(T / block), S, 6), one set of S sections per block. The filter state carries
    across blocks, so a coefficient change bends a ringing resonance rather than restarting it
    (an approximation of per-sample updates, which numpy cannot loop over fast). This is
    click-free for :func:`resonator_sos` sections, whose state does not involve the numerator;
    antiresonators go through :func:`time_varying_fir`."""
    out = np.empty_like(x)
    zi = np.zeros((sos.shape[1], 2))
    for b in range(sos.shape[0]):
        part = slice(b * block, (b + 1) * block)
        out[part], zi = sosfilt(sos[b], x[part], zi=zi)
    return out


def time_varying_fir(x: np.ndarray, sos: np.ndarray, block: int) -> np.ndarray:
    """Filter ``x`` (T,) through an FIR section (a = [1, 0, 0]) that changes every ``block``
    samples; sos: (ceil(T / block), 6).

    Direct form holds no state, so coefficient changes cause no transients. That matters for a
    low-frequency antiresonator: its numerator is large (unity gain at 0 Hz), and a state left
    by other coefficients would come out as a click."""
    b = np.repeat(sos[:, :3], block, axis=0)[: len(x)]  # (T, 3)
    out = b[:, 0] * x
    out[1:] += b[1:, 1] * x[:-1]
    out[2:] += b[2:, 2] * x[:-2]
    return out


def glottal_source(
    f0: np.ndarray, rng: np.random.Generator, sr: int, open_quotient: float, jitter: float, shimmer: float
) -> tuple[np.ndarray, np.ndarray]:
    """Derivative of a Rosenberg-C glottal flow (the lip radiation's +6 dB/octave folded in).

    f0: (T,) fundamental frequency in Hz, defined everywhere (voicing is switched by the caller).
    Jitter multiplies each period's frequency by ``1 + jitter * N(0, 1)``, shimmer its amplitude
    by ``1 + shimmer * N(0, 1)``. Returns (pulses (T,), open (T,) bool: glottis open,
    frequency (T,) Hz: the instantaneous frequency, jitter included)."""
    # Periods are counted on the unperturbed phase, so each gets one jitter factor without a loop.
    nominal_period = (np.cumsum(f0) / sr).astype(np.int64)
    period_factor = 1.0 + jitter * rng.standard_normal(nominal_period[-1] + 2)
    frequency = f0 * period_factor[nominal_period]
    phase = np.cumsum(frequency) / sr
    period = phase.astype(np.int64)
    x = phase - period  # position within the period, [0, 1)
    t_open = open_quotient * SPEED_QUOTIENT / (1.0 + SPEED_QUOTIENT)
    t_close = open_quotient / (1.0 + SPEED_QUOTIENT)
    opening = x < t_open
    closing = ~opening & (x < t_open + t_close)
    pulses = np.zeros_like(x)
    pulses[opening] = np.pi / (2.0 * t_open) * np.sin(np.pi * x[opening] / t_open)
    pulses[closing] = -np.pi / (2.0 * t_close) * np.sin(np.pi * (x[closing] - t_open) / (2.0 * t_close))
    amplitude = 1.0 + shimmer * rng.standard_normal(period[-1] + 2)
    return pulses * amplitude[period], opening | closing, frequency


def spectral_tilt(x: np.ndarray, coefficient: float) -> np.ndarray:
    """One-pole low-pass ``y[n] = (1 - c) x[n] + c y[n-1]``, unity gain at 0 Hz: a larger ``c``
    is a steeper tilt, a softer voice."""
    return lfilter([1.0 - coefficient], [1.0, -coefficient], x)


def shaped_noise(noise: np.ndarray, peaks, sr: int) -> np.ndarray:
    """White ``noise`` (T,) through parallel band-pass resonators, then a high-pass below the
    lowest, scaled to unit RMS.

    peaks: ((centre Hz, bandwidth Hz, gain dB), ...). Band-pass and high-pass rather than
    Klatt's low-pass resonators because frication has little energy below its lowest peak."""
    out = np.zeros_like(noise)
    for centre, bandwidth, gain_db in peaks:
        # iirpeak's design is unstable for bandwidths of half the sample rate or more
        centre, bandwidth = float(clamp_frequency(centre, sr)), float(clamp_frequency(bandwidth, sr))
        b, a = iirpeak(centre, centre / bandwidth, fs=sr)
        out += 10.0 ** (gain_db / 20.0) * lfilter(b, a, noise)
    out = sosfilt(_highpass(float(clamp_frequency(min(c for c, _, _ in peaks), sr)), sr), out)
    return out / max(rms(out), np.finfo(np.float64).tiny)


@lru_cache(maxsize=None)  # a handful of distinct filters, designed once per process
def _highpass(lowest_peak: float, sr: int) -> np.ndarray:
    return butter(HIGHPASS_ORDER, HIGHPASS_FRACTION * lowest_peak, "highpass", fs=sr, output="sos")


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of (T,) over ``width`` samples: turns steps into ramps."""
    return uniform_filter1d(x, max(int(width), 1), mode="nearest")


def rms(x: np.ndarray) -> float:
    """Root mean square of ``x`` (0 for an empty array)."""
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0
