"""audio.py: decoding, errors naming file and reason, resampling, saving, mu-law, loudness."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audio_vq import audio
from audio_vq.audio import AudioError

RATE = 16_000


def tone(seconds=0.5, rate=RATE, freq=440.0, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_load_every_libsndfile_format(tmp_path, ext):
    x = tone()
    path = tmp_path / f"a.{ext}"
    sf.write(path, x, RATE)
    y = audio.load(path)
    assert y.dtype == np.float32 and y.ndim == 1
    if ext in ("wav", "flac"):  # lossless: 16-bit quantisation only
        np.testing.assert_allclose(y, x, atol=2 / 2**15)
    else:  # lossy codecs add delay/padding; the tone must survive
        assert abs(len(y) - len(x)) < 0.1 * RATE
        assert 0.3 < np.abs(y).max() < 0.7


def test_stereo_is_mixed_down_and_resampled(tmp_path):
    left, right = tone(1.0, 44_100, 300), tone(1.0, 44_100, 300, amp=0.1)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 44_100, subtype="FLOAT")
    y, rate = audio.load_with_rate(tmp_path / "s.wav", RATE)
    assert rate == RATE and len(y) == RATE
    # mixdown is the channel mean: amplitude (0.5 + 0.1) / 2
    assert abs(np.abs(y[1000:-1000]).max() - 0.3) < 0.01
    both = audio.load(tmp_path / "s.wav", sample_rate=None, mono=False)
    assert both.shape == (2, 44_100)


def test_resample_preserves_a_tone():
    x = tone(1.0, 8_000, 1000)
    y = audio.resample(x, 8_000, RATE)
    assert len(y) == 2 * len(x)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * RATE / len(y) - 1000) < 2


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: None, "missing"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("this is text, not audio\n" * 20), "unreadable"),
        (lambda p: sf.write(p, np.zeros(0, np.float32), RATE), "no samples"),
        (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2] * 100, np.float32), RATE, subtype="FLOAT"), "non-finite"),
        (lambda p: sf.write(p, np.array([0.1, np.inf] * 100, np.float32), RATE, subtype="FLOAT"), "non-finite"),
    ],
)
def test_unusable_audio_names_file_and_reason(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError) as err:
        audio.load(path)
    assert str(err.value).startswith(str(path)) and reason in err.value.reason
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_truncated_files_are_refused(tmp_path, ext):
    full = tmp_path / f"full.{ext}"
    sf.write(full, tone(2.0), RATE)
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(AudioError, match="truncated|corrupt"):
        audio.load(cut)


def test_save_is_atomic_and_refuses_garbage(tmp_path):
    path = audio.save(tmp_path / "sub" / "x.flac", tone())
    assert sf.info(path).format == "FLAC"
    assert [p.name for p in path.parent.iterdir()] == ["x.flac"]  # no temporary left behind
    with pytest.raises(AudioError, match="non-finite"):
        audio.save(tmp_path / "y.wav", np.array([0.0, np.nan], np.float32))
    with pytest.raises(AudioError, match="cannot write"):
        audio.save(tmp_path / "y.xyz", tone())
    assert not (tmp_path / "y.wav").exists()


def test_mulaw_round_trip_numpy_and_torch():
    x = np.linspace(-1, 1, 10_001)
    q = audio.mulaw_encode(x)
    assert q.min() == 0 and q.max() == 255 and q.dtype == np.int64
    # every class decodes to a value that encodes back to it: no class is lost
    classes = np.arange(256)
    assert np.array_equal(audio.mulaw_encode(audio.mulaw_decode(classes)), classes)
    # mu-law's step is finest near zero: error bounded by half a step at the edge
    assert np.abs(audio.mulaw_decode(q) - x).max() < 0.035
    assert audio.mulaw_encode(np.array([0.0]))[0] in (127, 128)
    qt = audio.mulaw_encode(torch.from_numpy(x))
    assert torch.equal(qt, torch.from_numpy(q))
    np.testing.assert_allclose(audio.mulaw_decode(qt).numpy(), audio.mulaw_decode(q), atol=1e-6)
    # out-of-range input saturates instead of wrapping around
    assert audio.mulaw_encode(np.array([-3.0, 3.0])).tolist() == [0, 255]


def test_loudness_normalisation_hits_target():
    x = tone(3.0, amp=0.05) + 0.01 * np.random.default_rng(0).standard_normal(3 * RATE).astype(np.float32)
    y = audio.normalize_loudness(x, RATE, -23.0)
    assert abs(audio.loudness(y, RATE) + 23.0) < 0.1
    # a quiet and a loud version of one signal normalise to the same samples
    np.testing.assert_allclose(audio.normalize_loudness(4 * x, RATE, -23.0), y, rtol=1e-4, atol=1e-6)


def test_loudness_of_short_and_silent_clips():
    short = tone(0.1)
    assert np.isfinite(audio.loudness(short, RATE))
    # tiling keeps the level: a 0.1 s tone measures like a 1 s tone
    assert abs(audio.loudness(short, RATE) - audio.loudness(tone(1.0), RATE)) < 0.5
    assert audio.loudness(np.zeros(RATE, np.float32), RATE) == -np.inf
    assert audio.peak(np.array([0.1, -0.7])) == pytest.approx(0.7)


def test_info_reads_header_only(tmp_path):
    sf.write(tmp_path / "a.flac", np.zeros((4800, 2), np.float32), 48_000)
    i = audio.info(tmp_path / "a.flac")
    assert (i.num_samples, i.sample_rate, i.channels, i.format) == (4800, 48_000, 2, "FLAC")
    assert i.duration == pytest.approx(0.1)
    with pytest.raises(AudioError, match="missing"):
        audio.info(Path(tmp_path / "nope.wav"))


def test_load_segment_equals_slice_and_reports_absolute_positions(tmp_path):
    x = tone(1.0)
    sf.write(tmp_path / "a.wav", x, RATE, subtype="FLOAT")
    np.testing.assert_array_equal(audio.load_segment(tmp_path / "a.wav", 1000, 500), x[1000:1500])
    assert len(audio.load_segment(tmp_path / "a.wav", RATE - 100, 500)) == 100  # short at the end
    with pytest.raises(AudioError, match="past the end"):
        audio.load_segment(tmp_path / "a.wav", RATE + 5, 10)
    x[1234] = np.inf
    sf.write(tmp_path / "b.wav", x, RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match="first at sample 1234"):
        audio.load_segment(tmp_path / "b.wav", 1200, 100)


def test_atomic_writes_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    import os

    from audio_vq.atomic import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
