"""Signal metrics against known answers, on one toy-speech utterance of the synthetic corpus."""

import sys
import types

import numpy as np
import pytest

from audio_vq.audio import load
from audio_vq.corpora.synthetic import generate
from audio_vq.stages.evaluate import audio_metrics as signal
from audio_vq.stages.evaluate.audio_metrics import (
    SI_SNR_LIMIT_DB,
    log_mel_l1,
    mcd,
    mel_cepstrum,
    mr_stft_distance,
    pesq,
    reconstruction_metrics,
    si_snr,
    stoi,
)

SR = 16_000


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    """About 2 s of toy speech (one utterance, one speaker)."""
    root = generate(
        tmp_path_factory.mktemp("synthetic"), num_speakers=1, minutes=0.03, seed=3, min_seconds=2.0, max_seconds=2.2
    )
    return load(next(root.glob("*/*.wav")))


def with_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """``x`` plus white noise scaled to ``snr_db`` against x's zero-mean energy."""
    noise = np.random.default_rng(seed).standard_normal(len(x))
    xc = x - x.mean()
    noise *= np.sqrt(np.dot(xc, xc) / np.dot(noise, noise) / 10 ** (snr_db / 10))
    return (x + noise).astype(np.float32)


def test_identical_signals_score_perfectly(speech):
    m = reconstruction_metrics(speech, speech)
    assert m["mcd_filterbank_db"] == 0.0 and m["mr_stft"] == 0.0 and m["log_mel_l1"] == 0.0
    assert m["si_snr_db"] == SI_SNR_LIMIT_DB
    assert m["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert set(m) == {"mcd_filterbank_db", "mr_stft", "log_mel_l1", "si_snr_db", "stoi", "pesq"}


def test_si_snr_is_scale_invariant_and_matches_the_added_noise(speech):
    assert si_snr(speech, 0.5 * speech) == pytest.approx(SI_SNR_LIMIT_DB)
    for snr_db in (0.0, 10.0, 20.0):
        noisy = with_noise(speech, snr_db)
        assert si_snr(speech, noisy) == pytest.approx(snr_db, abs=0.5)
        assert si_snr(speech, 0.5 * noisy) == pytest.approx(si_snr(speech, noisy), abs=1e-6)


def test_si_snr_guards_silence(speech):
    assert np.isnan(si_snr(np.zeros(1000), speech[:1000]))  # no reference to compare to
    assert si_snr(speech, np.zeros_like(speech)) == -SI_SNR_LIMIT_DB
    assert si_snr(speech, np.full_like(speech, 0.3)) == -SI_SNR_LIMIT_DB  # DC only: silent once zero-mean
    assert reconstruction_metrics(np.zeros(SR), speech[:SR])["si_snr_db"] is None


def test_distances_grow_with_the_noise(speech):
    levels = [40.0, 30.0, 20.0, 10.0, 0.0]  # SNR, dB: each noisier than the last
    for metric in (mcd, mr_stft_distance, log_mel_l1):
        values = [metric(speech, with_noise(speech, snr)) for snr in levels]
        assert all(a < b for a, b in zip(values, values[1:])), (metric.__name__, values)
    scores = [stoi(speech, with_noise(speech, snr)) for snr in levels]
    assert all(a > b for a, b in zip(scores, scores[1:])), scores


def test_dtw_absorbs_a_time_stretch_that_frame_by_frame_mcd_cannot(speech):
    hop = 256  # the cepstrum's hop at 16 kHz: repeat every other hop-sized block
    blocks = speech[: len(speech) // hop * hop].reshape(-1, hop)
    held = np.sort(np.concatenate([np.arange(len(blocks)), np.arange(0, len(blocks), 2)]))
    stretched = blocks[held].ravel()  # 1.5 x longer, same content
    plain, aligned = mcd(speech, stretched), mcd(speech, stretched, align="dtw")
    assert aligned < 0.3 * plain
    assert mcd(speech, speech, align="dtw") == 0.0


def test_stoi_separates_speech_from_noise(speech):
    noise = 0.1 * np.random.default_rng(1).standard_normal(len(speech))
    assert stoi(speech, speech) > 0.99
    assert stoi(speech, noise) < 0.5
    assert stoi(speech[: SR // 5], speech[: SR // 5]) is None  # 0.2 s: too few frames for STOI


def test_mel_cepstrum_frames_follow_the_sample_rate(speech):
    c = mel_cepstrum(speech, SR)
    assert c.shape == (1 + len(speech) // 256, 25)
    half = speech[::2]  # the same duration at 8 kHz (aliasing is irrelevant to the shape)
    assert mel_cepstrum(half, SR // 2).shape == c.shape


def test_mcd_is_level_independent_but_log_mel_is_not(speech):
    # c0 (energy) is left out of MCD; a 6 dB gain shifts every log-mel bin by ln 2
    assert mcd(speech, 0.5 * speech) == pytest.approx(0.0, abs=1e-6)
    assert log_mel_l1(speech, 0.5 * speech) == pytest.approx(np.log(2.0), rel=0.05)


def test_bad_input_is_refused_with_a_named_reason(speech):
    with pytest.raises(ValueError, match="align"):
        mcd(speech, speech, align="soft")
    with pytest.raises(ValueError, match="deg.*non-finite"):
        mr_stft_distance(speech, np.full(100, np.nan))
    with pytest.raises(ValueError, match="ref.*shape"):
        si_snr(np.zeros((2, 100)), speech)


def test_reconstruction_metrics_trim_to_the_shorter_signal(speech):
    longer = np.concatenate([speech, np.ones(500, np.float32)])  # junk past the end is ignored
    assert reconstruction_metrics(speech, longer)["mr_stft"] == 0.0


def test_pesq_is_optional(speech, monkeypatch):
    monkeypatch.setitem(sys.modules, "pesq", None)  # import fails: no package
    assert pesq(speech, speech) is None

    calls = []
    fake = types.ModuleType("pesq")
    fake.pesq = lambda fs, ref, deg, mode: calls.append((fs, len(ref), mode)) or 4.5
    monkeypatch.setitem(sys.modules, "pesq", fake)
    assert pesq(speech, speech) == 4.5
    assert pesq(speech[::2], speech[::2], SR // 2) == 4.5
    resampled = signal.resample(speech, SR, 22_050)
    assert pesq(resampled, resampled, 22_050) == 4.5  # resampled to 16 kHz wideband
    assert [(fs, mode) for fs, _, mode in calls] == [(16_000, "wb"), (8_000, "nb"), (16_000, "wb")]
    assert calls[2][1] == pytest.approx(len(speech), abs=2)

    def refuses(fs, ref, deg, mode):
        raise RuntimeError("No utterances detected")

    fake.pesq = refuses
    assert pesq(speech, speech) is None


def _harmonic(f0: float, seconds: float = 1.0, sr: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 8)).astype(np.float32)


def test_median_f0_finds_the_pitch_of_a_harmonic_signal():
    for f0 in (110.0, 220.0):
        median, voiced = signal.median_f0(_harmonic(f0))
        assert median == pytest.approx(f0, rel=0.02) and voiced > 0.8


def test_noise_and_silence_have_no_f0():
    noise = np.random.default_rng(0).normal(0, 0.1, 16_000).astype(np.float32)
    median, voiced = signal.median_f0(noise)
    assert voiced < 0.3
    assert signal.median_f0(np.zeros(16_000, np.float32)) == (None, 0.0)


def test_f0_within_is_relative_and_fails_without_pitch():
    assert signal.f0_within(105.0, 100.0) and not signal.f0_within(111.0, 100.0)
    assert signal.f0_within(None, 100.0) is False  # generated audio with no F0 is a miss
    assert signal.f0_within(100.0, None) is None  # no reference: the check does not apply


def test_f0_check_section_scores_reconstructions_and_conversions():
    from audio_vq.stages.evaluate.sections import f0_check

    noise = np.random.default_rng(1).normal(0, 0.1, 16_000).astype(np.float32)
    r = f0_check(
        [(_harmonic(120.0), _harmonic(125.0)), (_harmonic(120.0), noise)],
        [(_harmonic(200.0), "b"), (_harmonic(120.0), "b")],
        {"b": [_harmonic(205.0), _harmonic(195.0)]},
        16_000,
    )
    assert r["reconstruction_within"] == 0.5 and r["conversion_within"] == 0.5
    assert r["speaker_f0"]["b"] == pytest.approx(200.0, rel=0.02)
