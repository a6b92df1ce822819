"""The pitch stream: trackers find a known F0 at the model's frames, silence and noise are
unvoiced, speaker normalisation maps registers exactly, quantisation round-trips, .f0 files."""

from __future__ import annotations

import numpy as np
import pytest

from audio_vq import pitch
from audio_vq.pitch import (
    DEFAULT_TRACKER,
    NORMALISED_LIMIT,
    TRACKERS,
    UNVOICED_CODE,
    PitchStats,
    denormalise,
    dequantise,
    format_f0,
    log_f0_stats,
    normalise,
    num_frames,
    quantise,
    read_f0,
    track,
)

SR = 16000
HOPS = (160, 320)  # the .f0 files' 10 ms, the small model's 50 Hz codes


def _case(tracker: str, *rest):
    """A parametrize case whose first value is ``tracker``, skipped where it cannot run."""
    why = pitch.unavailable(tracker)
    return pytest.param(tracker, *rest, marks=pytest.mark.skipif(why is not None, reason=str(why)))


def _pulse_train(f0: float, seconds: float) -> np.ndarray:
    """Unit pulses at every period of ``f0`` (periods need not be whole samples), smoothed a little
    so that the spectrum falls off like a voice's."""
    phase = np.arange(round(seconds * SR)) * f0 / SR
    pulses = np.diff(np.floor(phase), prepend=0.0)
    return 0.5 * np.convolve(pulses, np.hanning(9), mode="same")


def _sine(f0: float, seconds: float) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * f0 * np.arange(round(seconds * SR)) / SR)


# --- the tracker ---------------------------------------------------------------------------------
# Harvest finds no F0 in a pure sine (it calls it unvoiced): it needs harmonics, as voices have.
@pytest.mark.parametrize(
    "tracker, signal", [*(_case(t, _pulse_train) for t in TRACKERS), _case("dio", _sine), _case("pyin", _sine)]
)
@pytest.mark.parametrize("hop", HOPS)
@pytest.mark.parametrize("f0", [110.0, 220.0])
def test_tracker_finds_a_known_f0(tracker, signal, f0, hop):
    # Catches: the F0 of the wrong frames or rate (hop, sample rate or frame period mixed up), an
    # octave error, voiced frames dropped, and a frame count other than ceil(T / hop).
    x = signal(f0, 1.0)[:-7]  # a length that is no multiple of the hop
    got = track(x, SR, hop, tracker)
    assert got.shape == (int(np.ceil(len(x) / hop)),) and got.dtype == np.float64
    inner = got[2:-2]  # the edge frames see the signal's start and end
    assert (inner > 0).all()
    assert np.abs(inner / f0 - 1).max() < 0.01, (tracker, inner.min(), inner.max())


@pytest.mark.parametrize("tracker", [_case(DEFAULT_TRACKER)])
@pytest.mark.parametrize("hop", HOPS)
def test_frame_i_describes_samples_i_hop_to_i_plus_one_hop(tracker, hop):
    # Catches frames centred on their first sample (the trackers' own convention, without the
    # half-hop advance): on a glide of 200 Hz/s that is off by 0.5% (hop 160) or 1% (hop 320).
    glide = np.linspace(100.0, 300.0, SR)  # Hz, one per sample
    pulses = np.diff(np.floor(np.cumsum(glide) / SR), prepend=0.0)
    x = 0.5 * np.convolve(pulses, np.hanning(9), mode="same")
    got = track(x, SR, hop, tracker)[2:-2]
    centres = (np.arange(2, 2 + len(got)) + 0.5) * hop
    assert np.median(np.abs(got / np.interp(centres, np.arange(SR), glide) - 1)) < 0.0025


def test_the_default_is_a_tracker():
    # Catches a default left behind when a tracker is renamed or removed.
    assert DEFAULT_TRACKER in TRACKERS


@pytest.mark.parametrize("tracker", [_case(t) for t in TRACKERS])
@pytest.mark.parametrize("hop", HOPS)
def test_silence_and_noise_are_unvoiced(tracker, hop):
    # Catches: NaN passed on for unvoiced frames (pYIN's convention), and noise called voiced
    # (every tracker calls some noise frames voiced near F0_MIN_HZ; the periodicity check must
    # unvoice them). Several levels, from the synthetic corpus's noise floor (-66 dB) to loud.
    signals = [np.zeros(SR // 2)] + [
        level * np.random.default_rng(seed).standard_normal(SR // 2)
        for seed in range(2)
        for level in (10 ** (-66 / 20), 0.01, 0.1, 0.5)
    ]
    for x in signals:
        f0 = track(x, SR, hop, tracker)
        assert f0.shape == (num_frames(len(x), hop),)
        assert np.isfinite(f0).all() and (f0 == 0).all(), (tracker, np.flatnonzero(f0))


def test_periodicity_separates_voice_from_noise():
    # Catches a periodicity measured at the wrong lag or place (a sine would not correlate ~1
    # with itself one period later) or not normalised (noise would not stay near 0).
    hop, f0 = 160, 123.4
    frames = np.full(num_frames(SR, hop), f0)
    voice = pitch.periodicity(_sine(f0, 1.0), frames, hop, SR)
    noise = pitch.periodicity(np.random.default_rng(0).standard_normal(SR), frames, hop, SR)
    assert voice[2:-2].min() > 0.95 and np.abs(noise).max() < pitch.MIN_PERIODICITY
    assert (pitch.periodicity(_sine(f0, 1.0), np.zeros_like(frames), hop, SR) == 0).all()  # unvoiced: 0


def test_track_refuses_bad_input():
    with pytest.raises(ValueError, match="tracker='crepe'.*dio"):
        track(np.zeros(SR), SR, 160, "crepe")
    with pytest.raises(ValueError, match="finite mono"):
        track(np.full(SR, np.nan), SR, 160, "pyin")


# --- speaker statistics and normalisation ----------------------------------------------------------
def _contour(rng, median: float, semitones: float, frames: int = 400) -> np.ndarray:
    """A random contour around ``median`` Hz with about a third of its frames unvoiced."""
    f0 = median * 2.0 ** (semitones * rng.standard_normal(frames) / 12)
    return np.where(rng.random(frames) < 0.3, 0.0, f0)


def test_normalising_with_a_and_denormalising_with_b_gives_b_register():
    # Catches: statistics over unvoiced frames too (log 0), the std not inverted (z * std on the
    # way in), the wrong speaker's mean on the way out, and voicing lost or invented.
    rng = np.random.default_rng(0)
    a_contours = [_contour(rng, 110.0, 2.0) for _ in range(3)]
    b_stats = log_f0_stats([_contour(rng, 230.0, 4.0) for _ in range(3)])
    a_stats = log_f0_stats(a_contours)
    assert a_stats.voiced_frames == sum(int((c > 0).sum()) for c in a_contours)
    assert abs(np.exp(a_stats.mean) / 110.0 - 1) < 0.05 and abs(b_stats.std - 4 * np.log(2) / 12) < 0.02
    converted = [denormalise(normalise(c, a_stats), c > 0, b_stats) for c in a_contours]
    for c, d in zip(a_contours, converted):
        assert np.array_equal(c > 0, d > 0) and np.isfinite(d).all()
    got = log_f0_stats(converted)
    assert got.mean == pytest.approx(b_stats.mean, abs=1e-12) and got.std == pytest.approx(b_stats.std, abs=1e-12)
    # the same speaker's statistics give the contour back
    assert np.allclose(denormalise(normalise(a_contours[0], a_stats), a_contours[0] > 0, a_stats), a_contours[0])


def test_statistics_edge_cases():
    # Catches a division by a zero std (a monotone speaker) and statistics of nothing (NaN).
    flat = log_f0_stats([np.array([0.0, 100.0, 100.0, 0.0])])
    assert flat.std == pitch.MIN_LOG_F0_STD and np.isfinite(normalise(np.array([100.0, 0.0]), flat)).all()
    with pytest.raises(ValueError, match="no voiced frame"):
        log_f0_stats([np.zeros(5), np.zeros(0)])
    stats = PitchStats(mean=4.7, std=0.2, voiced_frames=10)
    assert PitchStats.from_dict(stats.to_dict()) == stats


# --- quantisation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bins", [1, 7, 32])
def test_quantisation_round_trips_within_half_a_bin(bins):
    # Catches bin centres off by half a bin, codes shifted onto the unvoiced code, edges that do
    # not span [-NORMALISED_LIMIT, NORMALISED_LIMIT], and values beyond it not clipped.
    z = np.linspace(-NORMALISED_LIMIT, NORMALISED_LIMIT, 1001)
    voiced = np.arange(z.size) % 5 != 0
    codes = quantise(z, voiced, bins)
    assert codes.dtype == np.int64 and set(np.unique(codes[voiced])) == set(range(1, bins + 1))
    assert (codes[~voiced] == UNVOICED_CODE).all()
    back, back_voiced = dequantise(codes, bins)
    half = NORMALISED_LIMIT / bins  # half of a bin 2 * limit / bins wide
    assert np.array_equal(back_voiced, voiced) and (back[~voiced] == 0).all()
    assert np.abs(back - z)[voiced].max() <= half + 1e-12
    beyond = quantise(np.array([-50.0, 50.0]), np.array([True, True]), bins)
    assert beyond.tolist() == [1, bins]
    with pytest.raises(ValueError, match=f"pitch code {bins + 1} is outside 0..{bins}"):
        dequantise(np.array([0, bins + 1]), bins)


# --- .f0 files -------------------------------------------------------------------------------------
def test_f0_files_round_trip_and_malformed_ones_are_named(tmp_path):
    # Catches frame times at frame starts instead of centres, and a reader that takes a
    # malformed line for data (or fails without naming the file and line).
    f0 = np.array([0.0, 101.234, 99.0, 0.0])
    path = tmp_path / "u.f0"
    path.write_text(format_f0(f0, hop=320, sr=SR))
    times, back = read_f0(path)
    assert np.allclose(times, [0.01, 0.03, 0.05, 0.07]) and np.allclose(back, f0, atol=0.005)
    for bad in ("0.01 100 7\n", "0.01 -5\n", "0.01 nan\n", "x 100\n"):
        path.write_text("0.0 0\n" + bad)
        with pytest.raises(ValueError, match=r"u\.f0:2: expected 'time_s f0_hz'"):
            read_f0(path)


# --- the excitation ------------------------------------------------------------------------------
def _peak_hz(x: np.ndarray) -> float:
    """The frequency of the strongest bin of a zero-padded spectrum (0.25 Hz bins)."""
    n = 4 * SR
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    return float(np.argmax(spectrum) * SR / n)


@pytest.mark.parametrize("f0", [97.0, 181.5])
@pytest.mark.parametrize("harmonics", [1, 3])
def test_the_excitation_of_a_known_f0_has_that_frequency(f0, harmonics):
    """Each cos / sin pair of the voiced part peaks at k x F0 (within 1%); the unvoiced frames
    hold noise with no periodic component (its autocorrelation at the period is about 0) of
    the documented std, and harmonics at or above Nyquist are silent."""
    hop = 320
    contour = np.r_[np.zeros(10), np.full(40, f0), np.zeros(10)]
    e = pitch.excitation(contour, hop, SR, harmonics, np.random.default_rng(0))
    assert e.shape == (2 * harmonics, len(contour) * hop) and e.dtype == np.float32
    voiced = slice(10 * hop, 50 * hop)
    for k in range(1, harmonics + 1):
        for row in (2 * k - 2, 2 * k - 1):
            assert abs(_peak_hz(e[row, voiced]) - k * f0) <= 0.01 * k * f0
            np.testing.assert_allclose(np.mean(e[row, voiced] ** 2), 0.5, atol=0.02)  # a unit sinusoid
    unvoiced = e[:, : 10 * hop]
    assert abs(unvoiced.std() - pitch.UNVOICED_NOISE_STD) < 0.02
    period = round(SR / f0)
    for row in unvoiced:
        r = np.corrcoef(row[:-period], row[period:])[0, 1]
        assert abs(r) < 0.1  # a sinusoid leaking into the unvoiced part would correlate near +-1
    high = pitch.excitation(np.full(5, 3000.0), hop, SR, 3, np.random.default_rng(0))
    assert np.all(high[4:] == 0) and np.abs(high[:4]).max() > 0.9  # 9 kHz is above Nyquist, 3 and 6 kHz are not


def test_locking_puts_the_excitation_in_phase_with_the_audio():
    """In training the phase follows the audio's fundamental: a voice 2 Hz off the tracked F0
    and at an arbitrary phase correlates ~1 with the locked excitation, and about 0 with the
    free-running one (which is what generation gets, and why training must lock)."""
    hop, f0 = 320, 150.0
    contour = np.full(40, f0)
    t = np.arange(len(contour) * hop) / SR
    voice = 0.3 * np.cos(2 * np.pi * (f0 + 2.0) * t + 2.0)
    free = pitch.excitation(contour, hop, SR, 1, np.random.default_rng(0))
    locked = pitch.excitation(contour, hop, SR, 1, np.random.default_rng(0), audio=voice)
    middle = slice(5 * hop, 35 * hop)  # away from the filter's edges
    assert np.corrcoef(locked[0, middle], voice[middle])[0, 1] > 0.99
    assert abs(np.corrcoef(free[0, middle], voice[middle])[0, 1]) < 0.3
    with pytest.raises(ValueError, match="audio has 5 samples"):
        pitch.excitation(contour, hop, SR, 1, np.random.default_rng(0), audio=np.zeros(5))
    with pytest.raises(ValueError, match="harmonics must be at least 1"):
        pitch.excitation(contour, hop, SR, 0, np.random.default_rng(0))
