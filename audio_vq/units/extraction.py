"""Discrete units of speech: a trained model's encoder and quantizer applied to audio.

    extractor = UnitExtractor.from_pretrained("runs/demo/model")
    u = extractor.extract("speech.wav")      # Units: codes (Q, frames), frame_rate, num_samples
    units, durations = u.deduplicate()       # run-length: [[7, 7, 3]] -> ([[7, 3]], [2, 1])

Frames follow the encoder's alignment convention (DESIGN.md): frames = ceil(samples / hop),
frame i centred on samples [i * hop, (i + 1) * hop). ``extract_batch`` pads a batch and passes
each row's length to the encoder, which masks past it after every layer, so an utterance gets
the same codes alone or in a batch. Utterances longer than ``chunk_seconds`` are encoded in
windows that overlap by the encoder's receptive field, so memory stays bounded and every kept
frame saw exactly the context it would have seen in one pass.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from .. import audio
from ..checkpoint import load_model, model_checksum
from ..config import ConfigError
from ..models.vqvae import VQVAE

DEFAULT_CHUNK_SECONDS = 60.0


@dataclass(frozen=True)
class Units:
    """One utterance's frame-level codes: a row per codebook (level), Q = 1 for one codebook."""

    codes: np.ndarray  # (Q, frames) int64
    frame_rate: float  # frames per second
    num_samples: int  # samples of the audio at the model's sample rate

    @property
    def num_frames(self) -> int:
        return self.codes.shape[-1]

    def deduplicate(self) -> tuple[np.ndarray, np.ndarray]:
        """(units (Q, runs), durations (runs,)): runs of repeated frames collapsed, with their
        lengths in frames."""
        return deduplicate(self.codes)


def deduplicate(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length encoding along the last axis of codes (frames,) or (Q, frames), where a run is
    a stretch of identical frames (every level equal): (units (runs,) or (Q, runs), durations
    (runs,)), both int64."""
    codes = np.asarray(codes, dtype=np.int64)
    frames = codes.shape[-1]
    if frames == 0:
        return codes, np.zeros(0, dtype=np.int64)
    changed = codes[..., 1:] != codes[..., :-1]
    starts = np.flatnonzero(np.r_[True, changed if codes.ndim == 1 else changed.any(axis=0)])
    return codes[..., starts], np.diff(np.r_[starts, frames]).astype(np.int64)


def expand(units: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """The inverse of :func:`deduplicate`: frame-level codes (sum(durations),) or (Q, sum(durations))."""
    units, durations = np.asarray(units, dtype=np.int64), np.asarray(durations, dtype=np.int64)
    if durations.ndim != 1 or units.shape[-1:] != durations.shape:
        raise ValueError(f"{units.shape[-1] if units.ndim else units.size} units but {durations.size} durations")
    if (durations < 1).any():
        raise ValueError("durations must be >= 1 frame")
    return np.repeat(units, durations, axis=-1)


class UnitExtractor:
    """Audio -> units with a trained model (evaluation mode, no gradients, codebook untouched)."""

    def __init__(
        self,
        model: VQVAE,
        checksum: str | None = None,
        chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
        levels: int | None = None,
    ):
        low, high = model.min_levels, model.num_quantizers
        if levels is not None and not (int(levels) == levels and low <= levels <= high):
            why = " (a hierarchy's bottom level needs its top to decode)" if low > 1 else ""
            raise ConfigError(
                f"levels={levels}: this model has {high} codebook(s){why}; give {low} .. {high} or null (all)"
            )
        self.model = model.eval()
        self.checksum = checksum
        self.device = next(model.parameters()).device
        self.sample_rate = model.sample_rate
        self.hop = model.hop
        self.frame_rate = self.sample_rate / self.hop
        self.codebook_size = model.quantizer.codebook_size
        #: the codebooks (levels) extracted: the model's first ``levels``, all by default
        self.num_quantizers = model.num_quantizers if levels is None else int(levels)
        #: each extracted level's own frame rate (a coarser level's code is held over its frames)
        self.frame_rates = [self.sample_rate / h for h in model.level_hops[: self.num_quantizers]]
        # windows start on a multiple of the coarsest level's span, so every window groups the
        # frames under its top codes as one pass over the whole utterance would
        group = max(model.quantizer.level_ratios)
        self.chunk_frames = _round_up(max(1, int(chunk_seconds * self.frame_rate)), group)
        self.context_frames = _round_up(
            math.ceil(model.encoder.receptive_field / 2 / self.hop) + 1 + model.quantizer.context_frames, group
        )

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | os.PathLike,
        device: str | torch.device = "cpu",
        chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
        levels: int | None = None,
    ) -> "UnitExtractor":
        """Load a model directory (``<run>/model``); its checksum is verified on load."""
        return cls(load_model(model_dir, device), model_checksum(model_dir), chunk_seconds, levels)

    @property
    def codebook(self) -> np.ndarray:
        """The codebook vectors the decoder sees, (Q, K, D) float32 (Q: the levels extracted):
        [l, k] is level l's vector for code k (what zerospeech rows hold, side by side)."""
        return self.model.codebook_vectors()[: self.num_quantizers].cpu().numpy()

    @torch.no_grad()
    def latents(self, codes: np.ndarray) -> np.ndarray:
        """z_q (frames, C) float32 of one utterance's codes (Q, frames): what the decoder is
        conditioned on (residual levels' vectors summed, a hierarchy's levels side by side)."""
        codes = torch.from_numpy(np.asarray(codes, dtype=np.int64))[None].to(self.device)
        return self.model.latents(codes)[0].T.float().cpu().numpy()

    def num_frames(self, num_samples: int) -> int:
        return -(-int(num_samples) // self.hop)

    def extract(self, wav: str | os.PathLike | np.ndarray | torch.Tensor, sample_rate: int | None = None) -> Units:
        """Units of one utterance: a path (any format soundfile reads, resampled to the model's
        rate and mixed to mono) or a mono waveform (T,) at ``sample_rate`` (default the model's)."""
        if isinstance(wav, (str, os.PathLike)):
            x = audio.load(Path(wav), self.sample_rate)
        else:
            x = wav.detach().cpu().numpy() if torch.is_tensor(wav) else np.asarray(wav)
            x = x.astype(np.float32, copy=False)
            if x.ndim != 1:
                raise ValueError(f"extract expects a mono waveform (T,), got shape {x.shape}")
            if sample_rate is not None and sample_rate != self.sample_rate:
                x = audio.resample(x, sample_rate, self.sample_rate)
        return self.extract_batch([x])[0]

    @torch.no_grad()
    def extract_batch(self, waves: Sequence[np.ndarray]) -> list[Units]:
        """Units of mono waveforms (T_i,) at the model's rate, encoded together, padded; codes
        (Q, frames_i) each."""
        out: list[Units | None] = [None] * len(waves)
        short = [i for i, w in enumerate(waves) if self.num_frames(len(w)) <= self.chunk_frames]
        for i in (i for i in range(len(waves)) if i not in set(short)):
            out[i] = Units(self._encode_long(waves[i]), self.frame_rate, len(waves[i]))
        if short:
            for i, codes in zip(short, self._encode_padded([waves[i] for i in short])):
                out[i] = Units(codes, self.frame_rate, len(waves[i]))
        return out  # type: ignore[return-value]

    def _encode_padded(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        if any(len(w) == 0 for w in waves):
            raise ValueError("cannot extract units of an empty waveform")
        longest = max(len(w) for w in waves)
        batch = torch.zeros(len(waves), longest)
        mask = torch.zeros(len(waves), longest, dtype=torch.bool)
        for row, w in enumerate(waves):
            batch[row, : len(w)] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
            mask[row, : len(w)] = True
        codes = self.model.encode(batch.to(self.device), mask.to(self.device))[:, : self.num_quantizers].cpu().numpy()
        return [codes[row, :, : self.num_frames(len(w))].astype(np.int64) for row, w in enumerate(waves)]

    def _encode_long(self, wave: np.ndarray) -> np.ndarray:
        """Windows of chunk_frames, each with context_frames of real audio on both sides (none
        past the utterance's ends), keeping only the window's own frames."""
        frames = self.num_frames(len(wave))
        return np.concatenate(
            [
                self._window(wave, 0, first, min(first + self.chunk_frames, frames), frames)
                for first in range(0, frames, self.chunk_frames)
            ],
            axis=1,
        )

    def _window(self, audio_: np.ndarray, start: int, first: int, last: int, frames: int | None) -> np.ndarray:
        """Codes (Q, last - first) of frames [first, last), encoded with context_frames of the
        audio on both sides (none before sample 0, nor past frame ``frames``, the end of the audio;
        None: the audio goes on); ``audio_`` holds the audio from sample ``start`` on."""
        lo, hi = max(0, first - self.context_frames), last + self.context_frames
        hi = hi if frames is None else min(frames, hi)
        window = audio_[lo * self.hop - start : hi * self.hop - start]
        return self._encode_padded([window])[0][:, first - lo : last - lo]

    @property
    def lookahead_samples(self) -> int:
        """How much audio past a frame a streaming encoder needs before that frame's code is
        final: the encoder's right context (the algorithmic latency of :meth:`stream`, with its
        window)."""
        return self.context_frames * self.hop

    @torch.no_grad()
    def stream(self, chunks: Iterable[np.ndarray], window_frames: int | None = None) -> Iterator[np.ndarray]:
        """Codes (Q, n) of a stream of mono float32 chunks (T_i,) at the model's rate, each as soon
        as its look-ahead (:attr:`lookahead_samples`) has arrived; concatenated, they are the
        codes :meth:`extract` gives the whole audio. ``window_frames``: frames encoded at a time
        (rounded up to the coarsest level's span; default one span): fewer, less latency; more,
        less compute. Memory stays bounded: audio before the window's left context is dropped."""
        group = max(self.model.quantizer.level_ratios)
        window = _round_up(max(1, int(window_frames or group)), group)
        held, start, total, done = np.zeros(0, np.float32), 0, 0, 0
        for chunk in chunks:
            chunk = np.asarray(chunk, dtype=np.float32)
            if chunk.ndim != 1:
                raise ValueError(f"stream expects mono chunks (T,), got shape {chunk.shape}")
            held, total = np.concatenate([held, chunk]), total + len(chunk)
            while (done + window + self.context_frames) * self.hop <= total:  # its right context is here
                yield self._window(held, start, done, done + window, None)
                done += window
                keep = max(0, (done - self.context_frames) * self.hop)  # the next window's left context on
                held, start = held[keep - start :], keep
        frames = self.num_frames(total)
        for first in range(done, frames, window):  # the end: no more look-ahead to wait for
            yield self._window(held, start, first, min(first + window, frames), frames)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple
