"""torch Datasets over a manifest: random fixed-length crops for training, whole utterances
for validation and extraction, and the collate functions that batch them.

Shapes: one item's ``audio`` is (T,); a batch's is (B, T), with a ``mask`` of the same shape
that is True where the samples are real audio and False over zero padding.

Crops are reproducible: the offset of item ``index`` in epoch ``epoch`` comes from an RNG
seeded with ``(seed, epoch, index)`` alone, never from global or per-worker RNG state, so a
DataLoader gives identical batches with 0 or N workers and in any iteration order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from . import audio, pitch
from .audio import SAMPLE_RATE
from .manifest import Utterance, iter_split, read_manifest

DEFAULT_CROP_SECONDS = 1.0  # DESIGN.md: crops of ~1 s for training
UNKNOWN_SPEAKER = -1  # speaker not in speakers.json (see CropDataset)


class CropDataset(Dataset):
    """Fixed-length random crops of the utterances of one split, for training.

    Item ``i`` is a dict: ``audio`` float32 (T,), ``mask`` bool (T,) (False over the zero
    padding that right-pads utterances shorter than the crop), ``speaker`` int64 (the index in
    ``speakers``, or ``UNKNOWN_SPEAKER`` = -1 for a speaker not in it: held-out speakers are
    deliberately absent from speakers.json, because the decoder has no embedding for them, yet
    their utterances can still be encoded), ``index`` (= i), ``id`` str and ``offset`` (the
    crop's first sample, at ``sample_rate``).

    ``hop`` is the encoder's downsampling factor: offsets are multiples of it, and the crop
    length must be one, so that the encoder's frames line up with the crop and with the file.

    Pitch: given ``contours`` (id -> F0 (frames,) Hz at ``hop``, :mod:`audio_vq.contours`),
    items also hold ``f0`` float32 (crop frames,), the crop's frames of the contour (0 past its
    end); given ``harmonics`` too, ``excitation`` float32 (2 * harmonics, T): the source of
    :func:`audio_vq.pitch.excitation` phase-locked to the crop, its noise seeded like the offset.

    The key names the epoch: ``ds[(epoch, i)]`` is item ``i``'s crop in ``epoch`` and ``ds[i]``
    its crop in epoch 0. The trainer's batch sampler (:class:`audio_vq.trainer.EpochBatches`)
    yields ``(epoch, index)`` keys, so the epoch travels with each key and DataLoader workers,
    persistent ones included, need no state of their own to follow it.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance] | str | os.PathLike,
        speakers: dict[str, int],
        crop_seconds: float = DEFAULT_CROP_SECONDS,
        crop_samples: int | None = None,
        sample_rate: int = SAMPLE_RATE,
        split: str | None = "train",
        seed: int = 0,
        hop: int = 1,
        contours: dict[str, np.ndarray] | None = None,
        harmonics: int | None = None,
    ):
        self.utterances = _select(utterances, split)
        self.speakers = dict(speakers)
        self.sample_rate = int(sample_rate)
        self.crop_samples = int(crop_samples) if crop_samples is not None else round(crop_seconds * sample_rate)
        self.hop = int(hop)
        if self.hop < 1 or self.crop_samples < 1:
            raise ValueError(f"hop and crop length must be positive, got hop={hop}, crop_samples={self.crop_samples}")
        if self.crop_samples % self.hop:
            below = self.crop_samples // self.hop * self.hop
            raise ValueError(
                f"crop of {self.crop_samples} samples is not a multiple of hop={self.hop} "
                f"(crop_seconds={crop_seconds}, crop_samples={crop_samples}, sample_rate={sample_rate}); "
                f"use crop_samples={below or self.hop} or {below + self.hop}"
            )
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = int(seed)
        self.contours = contours
        self.harmonics = harmonics
        if harmonics is not None and contours is None:
            raise ValueError("an excitation (harmonics) needs the F0 contours")
        if contours is not None:
            missing = [u.id for u in self.utterances if u.id not in contours]
            if missing:
                raise ValueError(f"no F0 contour for {len(missing)} utterance(s), e.g. {missing[0]}")
        # lengths at the target rate from the manifest, without decoding anything
        self.lengths = [target_length(u, self.sample_rate) for u in self.utterances]

    def __len__(self) -> int:
        return len(self.utterances)

    def crop_offset(self, index: int, epoch: int = 0) -> int:
        """The offset drawn for ``index`` in ``epoch``, a multiple of hop, from the manifest length."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        slack = self.lengths[index] - self.crop_samples
        if slack <= 0:
            return 0
        rng = np.random.default_rng([self.seed, epoch, index])
        return self.hop * int(rng.integers(slack // self.hop + 1))

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """Item ``key``: an ``(epoch, index)`` pair, or an index (its crop in epoch 0)."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} utterances")
        utt = self.utterances[index]
        samples, offset = self._read_crop(Path(utt.path), self.crop_offset(index, epoch))
        n = self.crop_samples
        crop = torch.zeros(n, dtype=torch.float32)
        crop[: len(samples)] = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
        mask = torch.zeros(n, dtype=torch.bool)
        mask[: len(samples)] = True
        item = {
            "audio": crop,
            "mask": mask,
            "speaker": _speaker(self.speakers, utt.speaker),
            "index": index,
            "id": utt.id,
            "offset": offset,
        }
        if self.contours is not None:
            rng = np.random.default_rng([self.seed, epoch, index, pitch.EXCITATION_STREAM])
            f0, excitation = crop_pitch(
                self.contours[utt.id], offset, crop.numpy(), self.hop, self.sample_rate, self.harmonics, rng
            )
            item["f0"] = torch.from_numpy(f0)
            if excitation is not None:
                item["excitation"] = torch.from_numpy(excitation)
        return item

    def _read_crop(self, path: Path, offset: int) -> tuple[np.ndarray, int]:
        """Up to crop_samples samples from ``offset`` at the target rate, and the offset used.

        The offset is clamped so the crop stays inside the file's real length, which may differ
        from the manifest's: soxr rounds a resampled length to nearest where ours floors it.
        A file already at the target rate is decoded from ``offset`` only; any other is loaded
        whole and resampled. Errors are AudioErrors naming the file.
        """
        n, hop = self.crop_samples, self.hop
        header = audio.info(path)
        if header.sample_rate == self.sample_rate and header.num_samples > 0:
            offset = _clamp(offset, header.num_samples, n, hop)
            return audio.load_segment(path, offset, n), offset
        full = audio.load(path, self.sample_rate)
        offset = _clamp(offset, len(full), n, hop)
        return full[offset : offset + n], offset


class UtteranceDataset(Dataset):
    """Whole utterances at ``sample_rate``, no cropping (validation, unit extraction).

    Item: ``audio`` float32 (T,), ``speaker`` int64 (-1 if not in ``speakers``), ``index``,
    ``id``. Batch with :func:`collate_padded`. ``split=None`` takes every utterance.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance] | str | os.PathLike,
        speakers: dict[str, int],
        sample_rate: int = SAMPLE_RATE,
        split: str | None = None,
    ):
        self.utterances = _select(utterances, split)
        self.speakers = dict(speakers)
        self.sample_rate = int(sample_rate)
        self.lengths = [target_length(u, self.sample_rate) for u in self.utterances]

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> dict:
        utt = self.utterances[index]
        samples = audio.load(utt.path, self.sample_rate)
        return {
            "audio": torch.from_numpy(samples),
            "speaker": _speaker(self.speakers, utt.speaker),
            "index": index,
            "id": utt.id,
        }


def crop_pitch(
    contour: np.ndarray,
    offset: int,
    crop: np.ndarray,
    hop: int,
    sample_rate: int,
    harmonics: int | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray | None]:
    """What a pitch model trains on beside a crop (T,) of audio that starts at sample ``offset``
    (a multiple of ``hop``) of its utterance: the crop's frames of the utterance's ``contour``,
    float32 (T // hop,) Hz (0 past its end), and given ``harmonics`` the excitation float32
    (2 * harmonics, T) phase-locked to the crop, its noise from ``rng`` (else None)."""
    frames = len(crop) // hop
    f0 = np.zeros(frames, np.float32)
    piece = contour[offset // hop : offset // hop + frames]
    f0[: len(piece)] = piece
    if harmonics is None:
        return f0, None
    return f0, pitch.excitation(f0, hop, sample_rate, harmonics, rng, audio=crop)


def collate(items: list[dict]) -> dict:
    """CropDataset items -> audio float32 (B, T), mask bool (B, T), speaker / index / offset
    int64 (B,), id: list of B str; f0 (B, frames) and excitation (B, 2 * harmonics, T) when
    the items have them."""
    extra = {k: torch.stack([it[k] for it in items]) for k in ("f0", "excitation") if items and k in items[0]}
    return {
        **extra,
        "audio": torch.stack([it["audio"] for it in items]),
        "mask": torch.stack([it["mask"] for it in items]),
        "speaker": torch.stack([it["speaker"] for it in items]),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.int64),
        "offset": torch.tensor([it["offset"] for it in items], dtype=torch.int64),
        "id": [it["id"] for it in items],
    }


def collate_padded(items: list[dict], multiple: int = 1) -> dict:
    """Items of any length -> audio float32 (B, T) right-padded with zeros to the longest
    (rounded up to a multiple of ``multiple``, e.g. the encoder's hop: use functools.partial),
    mask bool (B, T), lengths int64 (B,), speaker / index int64 (B,), id: list of B str."""
    lengths = torch.tensor([len(it["audio"]) for it in items], dtype=torch.int64)
    longest = int(lengths.max()) if len(items) else 0
    longest = -(-longest // multiple) * multiple
    batch = torch.zeros(len(items), longest, dtype=torch.float32)
    for row, it in zip(batch, items):
        row[: len(it["audio"])] = it["audio"]
    mask = torch.arange(longest)[None, :] < lengths[:, None]
    return {
        "audio": batch,
        "mask": mask,
        "lengths": lengths,
        "speaker": torch.stack([it["speaker"] for it in items]) if items else torch.zeros(0, dtype=torch.int64),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.int64),
        "id": [it["id"] for it in items],
    }


def target_length(utt: Utterance, sample_rate: int) -> int:
    """The utterance's length at ``sample_rate`` from its manifest entry (floored; soxr's
    actual output may be one sample longer)."""
    if not utt.num_samples or not utt.sample_rate:
        raise ValueError(f"{utt.id}: manifest entry has no num_samples / sample_rate (run prepare)")
    return utt.num_samples * sample_rate // utt.sample_rate


def _select(utterances: Sequence[Utterance] | str | os.PathLike, split: str | None) -> list[Utterance]:
    if isinstance(utterances, (str, os.PathLike)):
        utterances = read_manifest(utterances)
    utterances = list(utterances)
    selected = list(iter_split(utterances, split))
    if not selected:
        raise ValueError(f"no utterances in split {split!r} (of {len(utterances)} given)")
    return selected


def _speaker(speakers: dict[str, int], name: str) -> torch.Tensor:
    return torch.tensor(speakers.get(name, UNKNOWN_SPEAKER), dtype=torch.int64)


def _clamp(offset: int, total: int, n: int, hop: int) -> int:
    """Move ``offset`` back (keeping it a multiple of hop) so [offset, offset + n) fits in total."""
    return min(offset, max(0, total - n) // hop * hop)
