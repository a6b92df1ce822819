"""Stimulus processing: the BS.1534-3 anchors' cutoffs, fitting to a length, loudness, headroom."""

import numpy as np
import pytest

from audio_vq import audio
from audio_vq.stages.listening import signals

RATE = 16000


def tone(hz, seconds=1.0, amplitude=0.1):
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def rms_db(x):
    x = x[len(x) // 4 : -len(x) // 4]  # away from the ends
    return 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


@pytest.mark.parametrize(
    "cutoff, passed, stopped", [(signals.ANCHOR35_HZ, 1000, 5000), (signals.ANCHOR70_HZ, 3000, 7800)]
)
def test_anchors_pass_below_and_stop_above_their_cutoff(cutoff, passed, stopped):
    for hz, lo, hi in ((passed, -0.1, 0.1), (stopped, -200, -40)):
        x = tone(hz)
        change = rms_db(signals.lowpass(x, RATE, cutoff)) - rms_db(x)
        assert lo < change < hi, (hz, change)
    y = signals.lowpass(tone(passed), RATE, cutoff)  # zero phase: no delay against the reference
    assert np.corrcoef(y[2000:-2000], tone(passed)[2000:-2000])[0, 1] > 0.999


def test_anchor_at_or_above_nyquist_is_left_out_and_short_clips_are_filtered():
    assert signals.lowpass(tone(1000), 8000, signals.ANCHOR70_HZ) is None
    assert signals.lowpass(np.ones(5, np.float32), RATE, signals.ANCHOR35_HZ).shape == (5,)


def test_fit_length_trims_or_pads_and_says_which():
    x = np.arange(10, dtype=np.float32)
    f = signals.fit_length(x, 4)
    assert f.audio.tolist() == [0, 1, 2, 3] and f.trimmed == 6 and f.padded == 0
    f = signals.fit_length(x, 13)
    assert f.audio[-3:].tolist() == [0, 0, 0] and f.padded == 3 and len(f.audio) == 13


def test_normalize_reaches_the_target_even_below_one_gating_block_and_leaves_silence():
    for seconds in (1.0, 0.2):
        y, ok = signals.normalize(tone(440, seconds), RATE, -23.0)
        assert ok and audio.loudness(y, RATE) == pytest.approx(-23.0, abs=0.1)
    y, ok = signals.normalize(np.zeros(RATE, np.float32), RATE, -23.0)
    assert not ok and not y.any()


def test_headroom_gain_brings_the_largest_peak_to_the_ceiling():
    assert signals.headroom_gain([np.full(4, 0.5, np.float32)], -1.0) == 1.0
    g = signals.headroom_gain([np.full(4, 0.5, np.float32), np.array([0, 2.0, -3.0], np.float32)], -1.0)
    assert 3.0 * g == pytest.approx(10 ** (-1 / 20)) and signals.gain_db(g) < 0
