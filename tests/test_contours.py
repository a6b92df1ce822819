"""contours.py: F0 contours of a manifest, cached per settings; speakers' registers from the
training split only; a contour moved into another speaker's register."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audio_vq import contours, pitch
from audio_vq.manifest import Utterance
from audio_vq.models.vqvae import VQVAE

SR, HOP = 16000, 320


def _voice(f0: float, seconds: float = 1.0) -> np.ndarray:
    """A pulse train at ``f0`` (with harmonics, as Harvest needs), smoothed a little."""
    phase = np.arange(round(seconds * SR)) * f0 / SR
    return 0.5 * np.convolve(np.diff(np.floor(phase), prepend=0.0), np.hanning(9), mode="same")


def _utterances(folder, spec) -> list[Utterance]:
    """spec: (id, speaker, split, F0 Hz); one file per utterance."""
    out = []
    for uid, speaker, split, f0 in spec:
        path = folder / f"{uid}.wav"
        sf.write(path, _voice(f0), SR)
        out.append(Utterance(id=uid, path=str(path), speaker=speaker, split=split, num_samples=SR, sample_rate=SR))
    return out


SPEC = [
    ("a1", "a", "train", 110.0),
    ("a2", "a", "train", 125.0),
    ("a3", "a", "valid", 260.0),
    ("b1", "b", "train", 200.0),
    ("b2", "b", "test", 90.0),
]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    root = tmp_path_factory.mktemp("contours")
    utts = _utterances(root, SPEC)
    return root, utts, contours.contours(utts, SR, HOP, "dio", root / "cache", progress=False)


def test_contours_are_tracked_once_and_cached_under_their_settings(tracked):
    root, utts, f0 = tracked
    assert set(f0) == {u.id for u in utts}
    for uid, _, _, hz in SPEC:
        assert len(f0[uid]) == pitch.num_frames(SR, HOP)
        assert abs(np.median(f0[uid][f0[uid] > 0]) - hz) < 0.02 * hz
    folder = contours.cache_folder(root / "cache", "dio", SR, HOP)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{u.id}.f0" for u in utts)
    # a cached contour is read, not tracked again (here: a planted one comes back as it is)
    (folder / "a1.f0").write_text(pitch.format_f0(np.full(len(f0["a1"]), 77.0), HOP, SR))
    again = contours.contours(utts, SR, HOP, "dio", root / "cache", progress=False)
    assert np.all(again["a1"] == 77.0) and np.array_equal(again["b1"], f0["b1"])
    # other settings never reuse it
    other = contours.contours(utts[:1], SR, 160, "dio", root / "cache", progress=False)
    assert np.all(np.abs(other["a1"][other["a1"] > 0] - 110.0) < 3)
    (folder / "a1.f0").write_text(pitch.format_f0(f0["a1"], HOP, SR))


def test_two_worker_processes_give_the_same_contours(tracked, tmp_path):
    _, utts, f0 = tracked
    par = contours.contours(utts, SR, HOP, "dio", tmp_path, workers=2, progress=False)
    for u in utts:
        np.testing.assert_array_equal(par[u.id], f0[u.id])


def test_registers_come_from_the_training_split_only(tracked):
    """Speaker a's valid utterance (260 Hz) and b's test one (90 Hz) must not move the stats."""
    _, utts, f0 = tracked
    stats = contours.speaker_stats(utts, f0, {"a": 0, "b": 1})
    train_a = np.log(np.concatenate([f0["a1"][f0["a1"] > 0], f0["a2"][f0["a2"] > 0]]))
    assert stats[0].mean == pytest.approx(train_a.mean()) and stats[0].std == pytest.approx(train_a.std())
    assert np.exp(stats[1].mean) == pytest.approx(200.0, rel=0.02)
    with pytest.raises(ValueError, match="speaker c: no voiced frame in its training utterances"):
        contours.speaker_stats(utts, f0, {"a": 0, "b": 1, "c": 2})


def _pitch_model() -> VQVAE:
    cfg = {
        "encoder": {"channels": 8, "strides": [2, 2, 2, 2]},
        "quantizer": {"kind": "vector", "dim": 4, "codebook_size": 8},
        "decoder": {
            "stacks": 1,
            "layers_per_stack": 2,
            "residual_channels": 4,
            "gate_channels": 8,
            "skip_channels": 8,
            "speaker_dim": 2,
            "pitch": "frame",
        },
    }
    model = VQVAE.from_config(cfg, num_speakers=2)
    model.set_pitch_stats({0: pitch.PitchStats(np.log(110.0), 0.05, 1), 1: pitch.PitchStats(np.log(220.0), 0.2, 1)})
    return model


def test_a_converted_contour_has_exactly_the_target_register():
    """An unseen source (normalised by its own contour) lands on the target's exact mean and
    std of log F0; a seen one keeps its z-scores under its table row; unvoiced stays unvoiced."""
    model = _pitch_model()
    rng = np.random.default_rng(0)
    f0 = np.where(rng.random(200) < 0.7, np.exp(rng.normal(np.log(150.0), 0.1, 200)), 0.0)
    out = contours.in_register(model, f0, target=1, source=None)
    assert np.array_equal(out > 0, f0 > 0)
    logs = np.log(out[out > 0])
    assert logs.mean() == pytest.approx(np.log(220.0), abs=1e-5)
    assert logs.std() == pytest.approx(0.2, abs=1e-5)
    seen = contours.in_register(model, f0, target=1, source=0)
    np.testing.assert_allclose(
        pitch.normalise(seen, model.speaker_pitch_stats(1)),
        pitch.normalise(f0, model.speaker_pitch_stats(0)),
        atol=1e-5,
    )
    np.testing.assert_allclose(contours.in_register(model, f0, target=0, source=0), f0, rtol=1e-5)
    assert not contours.in_register(model, np.zeros(10), target=1, source=None).any()
