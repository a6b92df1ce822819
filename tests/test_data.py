"""Tests for audio_vq.data: crops, masks, determinism across workers, resampling, errors."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from audio_vq import audio
from audio_vq.audio import AudioError
from audio_vq.data import CropDataset, UtteranceDataset, collate, collate_padded, target_length
from audio_vq.manifest import Utterance, read_manifest, write_manifest, write_speakers

SR = 16_000
CROP = 8_000  # 0.5 s
HOP = 160
SHORT = 4_800  # shorter than the crop
N48 = 2 * 48_000 + 5  # 48 kHz file whose 16 kHz length is fractional: 32001.67 (floor 32001, soxr 32002)


def _noise(n, seed, channels=1):
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, (n, channels)).astype(np.float32)
    return x[:, 0] if channels == 1 else x


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A manifest folder: long mono 16 kHz, stereo flac, 48 kHz, short clip, held-out speaker, valid."""
    root = tmp_path_factory.mktemp("corpus")
    files = [  # id, file name, speaker, samples, rate, channels, split
        ("long", "long.wav", "s1", 3 * SR, SR, 1, "train"),
        ("stereo", "stereo.flac", "s2", 2 * SR + 123, SR, 2, "train"),
        ("hi", "hi.wav", "s1", N48, 48_000, 1, "train"),
        ("short", "short.wav", "s2", SHORT, SR, 1, "train"),
        ("held", "held.wav", "s9", SR + SR // 2, SR, 1, "train"),
        ("val", "val.wav", "s1", SR, SR, 1, "valid"),
    ]
    utts = []
    for seed, (uid, name, spk, n, rate, ch, split) in enumerate(files):
        path = root / "wav" / name
        path.parent.mkdir(exist_ok=True)
        sf.write(path, _noise(n, seed, ch), rate)
        utts.append(Utterance(uid, str(path), spk, n, rate, split))
    write_manifest(root, utts)
    write_speakers(root, ["s1", "s2"])  # s9 is held out
    return root


def _speakers():
    return {"s1": 0, "s2": 1}


def _by_id(ds):
    return {u.id: i for i, u in enumerate(ds.utterances)}


def test_crops_have_length_mask_and_content_of_the_file(corpus):
    ds = CropDataset(corpus / "manifest.jsonl", _speakers(), crop_samples=CROP, hop=HOP)
    assert [u.id for u in ds.utterances] == ["long", "stereo", "hi", "short", "held"]  # valid left out
    for i in range(len(ds)):
        item = ds[i]
        utt = ds.utterances[i]
        assert item["audio"].shape == (CROP,) and item["audio"].dtype == torch.float32
        assert item["mask"].shape == (CROP,) and item["mask"].dtype == torch.bool
        assert item["index"] == i and item["id"] == utt.id
        assert item["offset"] % HOP == 0
        full = audio.load(utt.path, SR)  # stereo averaged, 48 kHz resampled
        expected = full[item["offset"] : item["offset"] + CROP]
        real = int(item["mask"].sum())
        assert real == len(expected)
        np.testing.assert_array_equal(item["audio"][:real].numpy(), expected)
        assert item["offset"] + CROP <= len(full) or item["offset"] == 0


def test_short_clip_is_right_padded_and_masked_exactly(corpus):
    ds = CropDataset(corpus, _speakers(), crop_samples=CROP, hop=HOP)
    item = ds[_by_id(ds)["short"]]
    assert item["offset"] == 0
    assert item["mask"][:SHORT].all() and not item["mask"][SHORT:].any()
    assert (item["audio"][SHORT:] == 0).all()
    np.testing.assert_array_equal(item["audio"][:SHORT].numpy(), audio.load(corpus / "wav/short.wav"))
    for name in ("long", "stereo", "hi"):
        assert ds[_by_id(ds)[name]]["mask"].all()


def test_offsets_are_multiples_of_hop_and_span_the_file(corpus):
    ds = CropDataset(corpus, _speakers(), crop_samples=CROP, hop=HOP)
    i = _by_id(ds)["long"]
    offsets = set()
    for epoch in range(40):
        offsets.add(ds[(epoch, i)]["offset"])
    assert all(o % HOP == 0 and 0 <= o <= 3 * SR - CROP for o in offsets)
    assert len(offsets) > 20  # not stuck on one value


def test_same_seed_and_epoch_give_identical_items_in_any_order(corpus):
    a = CropDataset(corpus, _speakers(), crop_samples=CROP, seed=3)
    b = CropDataset(corpus, _speakers(), crop_samples=CROP, seed=3)
    b_items = {i: b[(2, i)] for i in reversed(range(len(b)))}  # other order: no shared RNG state
    for i in range(len(a)):
        x, y = a[(2, i)], b_items[i]
        assert x["offset"] == y["offset"] and x["id"] == y["id"]
        assert torch.equal(x["audio"], y["audio"]) and torch.equal(x["mask"], y["mask"])


def test_epoch_and_seed_change_the_crop(corpus):
    ds = CropDataset(corpus, _speakers(), crop_samples=CROP, seed=0)
    i = _by_id(ds)["long"]
    first = ds[i]["offset"]
    assert ds[(1, i)]["offset"] != first
    other = CropDataset(corpus, _speakers(), crop_samples=CROP, seed=1)
    assert other[i]["offset"] != first
    assert ds[(0, i)]["offset"] == first  # a plain index is epoch 0


def _batches(ds, workers, epoch, seed=None):
    """Batches of 2 of the keys (epoch, index), as the trainer's sampler gives them: in order, or
    shuffled with ``seed``."""
    order = range(len(ds)) if seed is None else torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
    loader = DataLoader(
        ds, batch_size=2, sampler=[(epoch, int(i)) for i in order], num_workers=workers, collate_fn=collate
    )
    return list(loader)


def _assert_same_batches(xs, ys):
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys):
        assert x["id"] == y["id"]
        for key in ("audio", "mask", "speaker", "index", "offset"):
            assert torch.equal(x[key], y[key]), key


def test_workers_give_the_same_batches_as_the_main_process(corpus):
    ds = CropDataset(corpus, _speakers(), crop_samples=CROP, hop=HOP, seed=5)
    _assert_same_batches(_batches(ds, 0, 1), _batches(ds, 2, 1))
    shuffled0, shuffled2 = _batches(ds, 0, 1, seed=7), _batches(ds, 2, 1, seed=7)
    _assert_same_batches(shuffled0, shuffled2)
    assert [i for b in shuffled0 for i in b["index"].tolist()] != list(range(len(ds)))  # really shuffled
    epoch0 = _offsets(_batches(ds, 2, 0))
    assert epoch0 == [ds.crop_offset(i) for i in range(len(ds))]  # the workers saw epoch 0
    assert _offsets(_batches(ds, 2, 1)) != epoch0


def _offsets(batches):
    return [o for b in batches for o in b["offset"].tolist()]


def test_48k_file_is_resampled_and_its_length_follows_the_manifest(corpus):
    utts = read_manifest(corpus)
    hi = next(u for u in utts if u.id == "hi")
    assert target_length(hi, SR) == N48 * SR // 48_000 == 32001
    whole = UtteranceDataset(utts, _speakers(), split="train")
    item = whole[_by_id(whole)["hi"]]
    assert item["audio"].dtype == torch.float32
    assert abs(len(item["audio"]) - target_length(hi, SR)) <= 1  # soxr rounds, we floor
    ds = CropDataset(utts, _speakers(), crop_samples=CROP)
    i = _by_id(ds)["hi"]
    assert ds.lengths[i] == 32001
    # an offset that ends the crop at the manifest's last sample is honoured and complete
    ds.crop_offset = lambda index, epoch=None: 32001 - CROP
    crop = ds[i]
    assert crop["offset"] == 32001 - CROP and crop["mask"].all()
    np.testing.assert_array_equal(crop["audio"].numpy(), item["audio"].numpy()[32001 - CROP : 32001])


def test_manifest_longer_than_the_file_clamps_the_crop_inside_it(corpus):
    real = 3 * SR
    stale = Utterance("long", str(corpus / "wav/long.wav"), "s1", 10 * real, SR, "train")
    ds = CropDataset([stale], _speakers(), crop_samples=CROP, hop=HOP)
    for epoch in range(5):
        item = ds[(epoch, 0)]
        assert item["offset"] % HOP == 0 and item["offset"] + CROP <= real and item["mask"].all()
        full = audio.load(stale.path)
        np.testing.assert_array_equal(item["audio"].numpy(), full[item["offset"] : item["offset"] + CROP])


def test_speakers_map_to_indices_and_unknown_gets_minus_one(corpus):
    ds = CropDataset(corpus, _speakers(), crop_samples=CROP)
    got = {ds[i]["id"]: ds[i]["speaker"] for i in range(len(ds))}
    assert all(v.dtype == torch.int64 for v in got.values())
    assert {k: int(v) for k, v in got.items()} == {"long": 0, "stereo": 1, "hi": 0, "short": 1, "held": -1}
    whole = UtteranceDataset(corpus, _speakers())
    assert int(whole[_by_id(whole)["held"]]["speaker"]) == -1


@pytest.mark.parametrize(
    "kwargs", [dict(crop_samples=1000, hop=64), dict(crop_seconds=1.0, hop=48), dict(crop_samples=CROP, hop=0)]
)
def test_crop_not_a_multiple_of_hop_is_refused(corpus, kwargs):
    with pytest.raises(ValueError) as err:
        CropDataset(corpus, _speakers(), **kwargs)
    assert f"hop={kwargs['hop']}" in str(err.value)
    if kwargs["hop"]:
        assert str(kwargs.get("crop_samples", 16000)) in str(err.value)


def test_crop_seconds_and_empty_split(corpus):
    assert CropDataset(corpus, _speakers(), crop_seconds=0.25, hop=HOP).crop_samples == 4000
    assert len(CropDataset(corpus, _speakers(), crop_samples=CROP, split=None)) == 6
    assert [u.id for u in CropDataset(corpus, _speakers(), crop_samples=CROP, split="valid").utterances] == ["val"]
    with pytest.raises(ValueError, match="'test'"):
        CropDataset(corpus, _speakers(), split="test")


@pytest.mark.parametrize("kind", ["missing", "corrupt", "corrupt48k"])
def test_missing_or_corrupt_file_raises_audio_error_naming_it(tmp_path, kind):
    path = tmp_path / f"{kind}.wav"
    if kind != "missing":
        path.write_bytes(os.urandom(4000))
    rate = 48_000 if kind == "corrupt48k" else SR
    utt = Utterance(kind, str(path), "s1", 3 * rate, rate, "train")
    for ds in (CropDataset([utt], _speakers(), crop_samples=CROP), UtteranceDataset([utt], _speakers())):
        with pytest.raises(AudioError) as err:
            ds[0]
        assert str(path) in str(err.value) and err.value.path == str(path)


def test_non_finite_samples_raise_audio_error(tmp_path):
    x = _noise(2 * SR, 0)
    x[SR + 10] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    ds = CropDataset([Utterance("nan", str(path), "s1", 2 * SR, SR, "train")], _speakers(), crop_samples=2 * SR)
    with pytest.raises(AudioError, match=f"first at sample {SR + 10}"):
        ds[0]


def test_collate_shapes_and_types(corpus):
    ds = CropDataset(corpus, _speakers(), crop_samples=CROP, hop=HOP)
    batch = collate([ds[i] for i in range(3)])
    assert batch["audio"].shape == (3, CROP) and batch["mask"].shape == (3, CROP)
    for key in ("speaker", "index", "offset"):
        assert batch[key].shape == (3,) and batch[key].dtype == torch.int64
    assert batch["id"] == [ds.utterances[i].id for i in range(3)]
    assert batch["index"].tolist() == [0, 1, 2]


def test_collate_padded_pads_to_the_longest_with_mask_and_lengths(corpus):
    ds = UtteranceDataset(corpus, _speakers())
    items = [ds[_by_id(ds)[k]] for k in ("short", "val", "long")]
    batch = collate_padded(items)
    assert batch["lengths"].tolist() == [SHORT, SR, 3 * SR]
    assert batch["audio"].shape == (3, 3 * SR) and batch["mask"].shape == (3, 3 * SR)
    assert batch["mask"].sum(dim=1).tolist() == [SHORT, SR, 3 * SR]
    assert not batch["mask"][0, SHORT:].any() and (batch["audio"][0, SHORT:] == 0).all()
    np.testing.assert_array_equal(batch["audio"][1, :SR].numpy(), items[1]["audio"].numpy())
    assert batch["speaker"].tolist() == [1, 0, 0] and batch["id"] == ["short", "val", "long"]
    rounded = DataLoader(ds, batch_size=6, collate_fn=functools.partial(collate_padded, multiple=1024))
    (b,) = list(rounded)
    assert b["audio"].shape == (6, 47 * 1024)  # longest 48000 rounded up to 48128
    assert b["mask"].sum(dim=1).tolist() == b["lengths"].tolist()


def test_epoch_index_keys_select_that_epochs_crop(corpus):
    """The trainer's sampler passes (epoch, index): the crop is crop_offset(index, epoch), and a
    plain index is epoch 0."""
    ds = CropDataset(corpus, _speakers(), crop_samples=800, split=None, seed=3)
    for i in range(len(ds)):
        assert ds[(5, i)]["offset"] == ds.crop_offset(i, 5)
        assert torch.equal(ds[(0, i)]["audio"], ds[i]["audio"])
    assert any(ds[(5, i)]["offset"] != ds[i]["offset"] for i in range(len(ds)))


def _fake_contours(ds):
    """A distinct contour per utterance: frame i of utterance u holds 100 + i + 1000 * index(u),
    so a crop's f0 names the frames it was cut from."""
    return {u.id: 100.0 + np.arange(-(-ds.lengths[i] // HOP)) + 1000.0 * i for i, u in enumerate(ds.utterances)}


def test_pitch_items_carry_the_crops_own_frames_and_a_locked_excitation(corpus):
    """f0 is the contour's frames [offset / hop, + crop / hop) (0 past the end); the excitation
    is phase-locked to the crop (so it correlates with a crop that is a sinusoid at the
    contour's F0); it varies with the epoch (noise, via the offset), and the batch stacks both."""
    plain = CropDataset(corpus / "manifest.jsonl", _speakers(), crop_samples=CROP, hop=HOP)
    f0 = _fake_contours(plain)
    ds = CropDataset(corpus / "manifest.jsonl", _speakers(), crop_samples=CROP, hop=HOP, contours=f0, harmonics=2)
    for i in range(len(ds)):
        item = ds[(3, i)]
        frames = CROP // HOP
        first = item["offset"] // HOP
        want = np.zeros(frames, np.float32)
        got = f0[ds.utterances[i].id][first : first + frames]
        want[: len(got)] = got
        np.testing.assert_array_equal(item["f0"].numpy(), want)
        assert item["excitation"].shape == (4, CROP)
        assert torch.equal(item["audio"], plain[(3, i)]["audio"])  # the audio is untouched
    batch = collate([ds[0], ds[1]])
    assert batch["f0"].shape == (2, CROP // HOP) and batch["excitation"].shape == (2, 4, CROP)
    with pytest.raises(ValueError, match="no F0 contour for 1 utterance"):
        CropDataset(
            corpus / "manifest.jsonl",
            _speakers(),
            crop_samples=CROP,
            hop=HOP,
            contours={k: v for k, v in f0.items() if k != "long"},
        )


def test_the_training_excitation_follows_the_audio(tmp_path):
    """A crop of a 150 Hz voice at some phase: the excitation built from a contour 1% off
    correlates with it (> 0.95); unlocked (generation's) it would not."""
    t = np.arange(2 * SR) / SR
    path = tmp_path / "v.wav"
    sf.write(path, (0.4 * np.cos(2 * np.pi * 150.0 * t + 1.0)).astype(np.float32), SR, subtype="FLOAT")
    utt = Utterance("v", str(path), "s1", 2 * SR, SR, "train")
    contour = {"v": np.full(2 * SR // HOP, 151.5)}
    ds = CropDataset([utt], _speakers(), crop_samples=CROP, hop=HOP, contours=contour, harmonics=1)
    item = ds[(1, 0)]
    middle = slice(CROP // 4, 3 * CROP // 4)
    assert np.corrcoef(item["excitation"][0, middle], item["audio"][middle])[0, 1] > 0.95
