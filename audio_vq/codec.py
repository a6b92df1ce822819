"""A trained model as a codec in memory: audio -> units -> audio, in any of its voices.

    codec = Codec.from_pretrained("runs/demo/model")
    units = codec.encode(x, sample_rate=22050)            # Units: codes (Q, frames)
    y = codec.reconstruct(x, speaker="spk01")              # (T,) float32 at codec.sample_rate
    y = codec.convert(x, target="spk05")                   # x's codes (and intonation) in spk05's voice
    y = codec.synthesize(units.codes, speaker="spk03")     # units to speech

This is how every decoding command decodes: reconstruct, convert and synthesize, the
listening-test export and sample render their files through it (rendering.Renderer adds the
files, the fingerprint and resuming). Encoding is extraction's (masked padding, long inputs in
receptive-field-overlapped windows), so decoded codes are extracted codes. A pitch model's
contour is tracked from the source as training tracked it and, for another voice, moved into
that speaker's register. Each output's sampling noise is seeded by (seed, its name), so an
utterance decodes to the same audio alone, in a batch, in memory or from the command: give it
the command's output name (``<id>`` for reconstruct, ``<id>__<target>`` for convert).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch

from . import audio, contours, pitch
from .checkpoint import load_model, model_checksum
from .config import ConfigError
from .generate import Generator
from .models.vqvae import VQVAE
from .units.extraction import UnitExtractor, Units

DEFAULT_NAME = "utterance"  # the noise seed's name of an in-memory output that was given none


@dataclass(frozen=True)
class Sampling:
    """How the decoder draws samples (configs/inference/decode.yaml documents each)."""

    seed: int = 0
    temperature: float = 1.0
    voiced_temperature: float | None = 0.5  # a pitch model's temperature on voiced samples (None: temperature)
    argmax: bool = False


class Job(NamedTuple):
    """One output to decode: its name (which seeds its noise), content codes (Q, frames), the
    speaker's table index, and a pitch model's contour (frames,) Hz in that speaker's register."""

    name: str
    codes: np.ndarray
    speaker: int
    f0: np.ndarray | None = None


class Codec:
    """A loaded model with its unit extractor and generator, and the sampling settings."""

    def __init__(
        self,
        model: VQVAE,
        checksum: str | None = None,
        *,
        backend: str = "auto",
        threads: int | None = None,
        chunk_seconds: float = 30.0,
        levels: int | None = None,
        sampling: Sampling = Sampling(),
    ):
        self.model = model.eval()
        self.checksum = checksum
        self.sampling = sampling
        self.generator = Generator(model, backend=backend, threads=threads)
        self.extractor = UnitExtractor(model, checksum, chunk_seconds=chunk_seconds, levels=levels)
        self.sample_rate = model.sample_rate
        self.frame_rate = self.sample_rate / model.hop
        #: longer outputs are generated as a stream of chunks of this many frames (bounded memory)
        self.chunk_frames = max(1, int(chunk_seconds * self.sample_rate) // model.hop)

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, device: str | torch.device = "cpu", **options) -> "Codec":
        """Load a model directory (``<run>/model``; its checksum is verified). ``options``: the
        constructor's keywords (backend, threads, chunk_seconds, levels, sampling)."""
        return cls(load_model(model_dir, device), model_checksum(model_dir), **options)

    @property
    def speakers(self) -> list[str]:
        """The model's speakers, in the order of its speaker table."""
        return sorted(self.model.speaker_index, key=self.model.speaker_index.get)

    def speaker(self, name: str, key: str = "speaker") -> int:
        """The table index of speaker ``name``; ConfigError (naming ``key``) listing the valid names otherwise."""
        index = self.model.speaker_index
        if name not in index:
            raise ConfigError(
                f"{key}={name}: unknown speaker; this model knows: {', '.join(self.speakers) or '(none)'}"
            )
        return index[name]

    # -- audio to codes (and contours)

    def load(self, path: str | os.PathLike) -> np.ndarray:
        """A file as mono float32 (T,) at the model's rate (audio.AudioError names a bad file)."""
        return audio.load(path, self.sample_rate)

    def encode(self, x: np.ndarray | str | os.PathLike, sample_rate: int | None = None) -> Units:
        """Units of one utterance (a path, or a mono waveform (T,) at ``sample_rate``, default the
        model's), exactly as `audio-vq extract` gives them."""
        return self.extractor.extract(x, sample_rate)

    def contour(self, x: np.ndarray, frames: int) -> np.ndarray | None:
        """A pitch model's F0 contour (frames,) Hz of ``x`` (T,) at the model's rate, tracked as
        training tracked; None for a model without pitch."""
        if not self.model.uses_pitch:
            return None
        return contours.track_for(self.model, x, frames)

    def in_register(self, f0: np.ndarray | None, target: int, source: int | None) -> np.ndarray | None:
        """``f0`` moved into the register of the speaker ``target`` (contours.in_register: the
        source speaker's row of the table, or for a speaker the model never saw (None) the
        contour's own statistics); None for None."""
        return None if f0 is None else contours.in_register(self.model, f0, target, source)

    def synthesis_job(self, name: str, codes: np.ndarray, speaker: int, pitch_bins: int | None = None) -> Job:
        """The job of a unit file's utterance (codes (levels, frames)): with ``pitch_bins`` its
        last level is the pitch stream, which becomes a contour in the speaker's register for a
        pitch model and is left out for any other (ValueError for a pitch code out of range)."""
        codes = np.atleast_2d(codes)
        if pitch_bins is None:
            return Job(name, codes, speaker)
        try:
            f0 = (
                contours.contour_of_codes(self.model, codes[-1], pitch_bins, speaker) if self.model.uses_pitch else None
            )
        except ValueError as e:
            raise ValueError(f"utterance {name}: {e}") from None
        return Job(name, codes[:-1], speaker, f0)

    # -- codes to audio

    def decode(self, jobs: Sequence[Job | tuple]) -> list[np.ndarray]:
        """The audio (T_i,) float32 of each job, generated as one batch (a job's audio does not
        depend on its batch)."""
        jobs = [Job(*j) for j in jobs]
        s = self.sampling
        return self.generator.generate(
            [j.codes for j in jobs],
            [j.speaker for j in jobs],
            uniforms=[self._uniforms(j.name, j.codes.shape[-1]) for j in jobs],
            temperature=s.temperature,
            argmax=s.argmax,
            voiced_temperature=s.voiced_temperature,
            f0=[j.f0 for j in jobs] if self.model.uses_pitch else None,
            excitation=self._excitations(jobs),
        )

    def stream(self, job: Job | tuple) -> Iterator[np.ndarray]:
        """One job's audio in chunks of ``chunk_frames`` (the same samples :meth:`decode` gives)."""
        job = Job(*job)
        s = self.sampling
        excitation = self._excitations([job])
        return self.generator.stream(
            job.codes,
            job.speaker,
            chunk_frames=self.chunk_frames,
            uniforms=self._uniforms(job.name, job.codes.shape[-1]),
            f0=job.f0,
            excitation=None if excitation is None else excitation[0],
            temperature=s.temperature,
            argmax=s.argmax,
            voiced_temperature=s.voiced_temperature,
        )

    def _uniforms(self, name: str, frames: int) -> np.ndarray:
        """The sampling noise of output ``name``: seeded by (seed, name), so an output's audio does
        not depend on the batch it was generated in, nor on a rerun skipping finished files."""
        return self.model.decoder.distribution.draw_uniforms(self._rng(name), frames * self.model.hop)

    def _rng(self, name: str, *stream: int) -> np.random.Generator:
        """The random stream of output ``name`` (and sub-stream ``stream``): seeded by (seed, name)."""
        return np.random.default_rng([self.sampling.seed, zlib.crc32(name.encode("utf-8")), *stream])

    def _excitations(self, jobs: Sequence[Job]) -> list[np.ndarray] | None:
        """The excitation of each job's contour (pitch="excitation"), its noise seeded by (seed,
        name) like the uniforms; None for other models."""
        if not self.model.uses_excitation:
            return None
        return [self.generator.excitation(j.f0, self._rng(j.name, pitch.EXCITATION_STREAM)) for j in jobs]

    # -- the decoding commands, in memory

    def reconstruct(
        self, x: np.ndarray | str | os.PathLike, speaker: str, sample_rate: int | None = None, name: str = DEFAULT_NAME
    ) -> np.ndarray:
        """``x`` (a path, or (T,) at ``sample_rate``) encoded and decoded with its own speaker's
        voice (``speaker``: who it is), as `audio-vq reconstruct` writes ``<name>.wav``."""
        x = self._audio(x, sample_rate)
        codes = self.encode(x).codes
        return self.decode([Job(name, codes, self.speaker(speaker), self.contour(x, codes.shape[-1]))])[0]

    def convert(
        self,
        x: np.ndarray | str | os.PathLike,
        target: str,
        sample_rate: int | None = None,
        source_speaker: str | None = None,
        name: str = DEFAULT_NAME,
    ) -> np.ndarray:
        """``x``'s codes decoded in the voice of ``target``, its intonation moved into the
        target's register (``source_speaker``: the source's name when the model knows it; else
        the contour's own statistics), as `audio-vq convert` writes ``<id>__<target>.wav``."""
        x = self._audio(x, sample_rate)
        codes = self.encode(x).codes
        index = self.speaker(target, "target")
        source = self.model.speaker_index.get(source_speaker) if source_speaker is not None else None
        f0 = self.in_register(self.contour(x, codes.shape[-1]), index, source)
        return self.decode([Job(name, codes, index, f0)])[0]

    def synthesize(
        self, codes: np.ndarray, speaker: str, pitch_bins: int | None = None, name: str = DEFAULT_NAME
    ) -> np.ndarray:
        """Units (frames,) or (levels, frames) to speech in ``speaker``'s voice; with
        ``pitch_bins`` their last level is the pitch stream (what `extract pitch_bins=N` writes,
        which a pitch model needs), as `audio-vq synthesize` writes ``<name>.wav``."""
        job = self.synthesis_job(name, np.asarray(codes, dtype=np.int64), self.speaker(speaker), pitch_bins)
        if self.model.uses_pitch and job.f0 is None:
            raise ValueError(
                f"this is a pitch model (model.decoder.pitch={self.model.decoder.pitch}): give units "
                "with their pitch stream and pitch_bins=N"
            )
        return self.decode([job])[0]

    def _audio(self, x: np.ndarray | str | os.PathLike, sample_rate: int | None) -> np.ndarray:
        """A path or a waveform as (T,) float32 at the model's rate."""
        if isinstance(x, (str, os.PathLike)):
            return self.load(x)
        x = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected a mono waveform (T,), got shape {x.shape}")
        return x if sample_rate in (None, self.sample_rate) else audio.resample(x, sample_rate, self.sample_rate)
