"""Reconstruction, voice conversion and units-to-speech: codes decoded by the WaveNet generator.

    reconstruct: audio -> codes -> generate with the source speaker   -> <out>/<id>.wav
    convert:     audio -> codes -> generate with each target speaker  -> <out>/<id>__<target>.wav + index.csv
    synthesize:  unit file -> codes -> generate with one speaker      -> <out>/<id>.wav

Inputs are a manifest (``manifest.jsonl`` or its folder), a folder of audio files, or one file.
Every output is written atomically; an utterance that fails to load is reported and skipped.
"""
from __future__ import annotations

import csv
import io
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import soundfile as sf
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from . import audio
from .atomic import atomic_path, atomic_write_text
from .checkpoint import load_model
from .config import ConfigError, is_int, is_number, require, resolve_device
from .corpora.common import find_files
from .generate import Generator
from .manifest import MANIFEST_NAME, read_manifest, write_skipped

log = logging.getLogger(__name__)

INDEX_NAME = "index.csv"
PCM_SUBTYPE = "PCM_16"


@dataclass
class Source:
    """One input utterance: its id, file and speaker name (None when the input does not say)."""

    id: str
    path: str
    speaker: str | None = None


def read_sources(input_path: str) -> list[Source]:
    """A manifest (file or folder holding manifest.jsonl), a folder of audio, or one audio file."""
    path = Path(input_path).expanduser()
    if path.is_file() and path.suffix == ".jsonl":
        return [Source(u.id, u.path, u.speaker) for u in read_manifest(path)]
    if path.is_dir() and (path / MANIFEST_NAME).exists():
        return [Source(u.id, u.path, u.speaker) for u in read_manifest(path / MANIFEST_NAME)]
    if path.is_dir():
        files = list(find_files(path))
        if not files:
            raise ConfigError(f"input={input_path}: no audio files in this folder")
        return [Source(f.stem, str(f)) for f in files]
    if path.is_file():
        return [Source(path.stem, str(path))]
    raise ConfigError(f"input={input_path}: no such file or folder")


def read_unit_lines(path: str) -> list[tuple[str, np.ndarray]]:
    """``id|u1 u2 ...`` lines (fairseq GSLM style) or bare ``u1 u2 ...`` lines (ids 0, 1, ...)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"units={path}: no such file")
    out = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        uid, sep, units = line.partition("|")
        if not sep:
            uid, units = str(len(out)), line
        try:
            codes = np.array([int(u) for u in units.split()], dtype=np.int64)
        except ValueError:
            raise ConfigError(f"{p}:{lineno}: expected 'id|u1 u2 ...' with integer units") from None
        if codes.size == 0:
            raise ConfigError(f"{p}:{lineno}: no units")
        out.append((uid.strip(), codes))
    return out


class Decoder:
    """A loaded model and its generator, with the options every command shares."""

    def __init__(self, cfg: DictConfig):
        _check_common(cfg)
        self.model = load_model(cfg.model, resolve_device(cfg.device))
        self.generator = Generator(self.model, backend=cfg.backend, threads=cfg.threads)
        self.cfg = cfg
        self.out = Path(cfg.out).expanduser()
        self.sample_rate = self.model.config["data"]["sample_rate"] if self.model.config else audio.SAMPLE_RATE

    def speaker_index(self, name: str, key: str) -> int:
        """The table index of speaker ``name``; ConfigError listing the valid names otherwise."""
        index = self.model.speaker_index
        if name not in index:
            names = ", ".join(sorted(index)) or "(none)"
            raise ConfigError(f"{key}={name}: unknown speaker; this model knows: {names}")
        return index[name]

    def encode(self, source: Source) -> np.ndarray:
        """Codes (frames,) of one utterance; the encoder sees it in chunks of chunk_seconds so
        memory stays bounded on long files."""
        x = audio.load(source.path, self.sample_rate)
        hop = self.model.hop
        chunk = max(hop, int(self.cfg.chunk_seconds * self.sample_rate) // hop * hop)
        device = next(self.model.parameters()).device
        codes = [self.model.encode(torch.from_numpy(x[i:i + chunk]).unsqueeze(0).to(device))[0].cpu().numpy()
                 for i in range(0, len(x), chunk)]
        return np.concatenate(codes)

    def write(self, jobs: Sequence[tuple[str, np.ndarray, int]], desc: str) -> None:
        """Generate ``(name, codes, speaker index)`` jobs in batches and write ``<out>/<name>.wav``.
        Outputs that already exist are kept (a rerun resumes); long ones stream in chunks."""
        self.out.mkdir(parents=True, exist_ok=True)
        todo = [j for j in jobs if not (self.out / f"{j[0]}.wav").exists()]
        chunk_frames = max(1, int(self.cfg.chunk_seconds * self.sample_rate) // self.model.hop)
        with tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=desc, unit="utt", dynamic_ncols=True) as bar:
            short = [j for j in todo if len(j[1]) <= chunk_frames]
            for start in range(0, len(short), self.cfg.batch_size):
                batch = short[start:start + self.cfg.batch_size]
                waves = self.generator.generate([j[1] for j in batch], [j[2] for j in batch],
                                                uniforms=[self._uniforms(j[0], len(j[1])) for j in batch],
                                                temperature=self.cfg.temperature, argmax=self.cfg.argmax)
                for (name, _, _), wave in zip(batch, waves):
                    audio.save(self.out / f"{name}.wav", np.clip(wave, -1, 1), self.sample_rate, subtype=PCM_SUBTYPE)
                bar.update(len(batch))
            for name, codes, speaker in (j for j in todo if len(j[1]) > chunk_frames):
                self._stream(name, codes, speaker, chunk_frames)
                bar.update()

    def _uniforms(self, name: str, frames: int) -> np.ndarray:
        """The sampling noise of output ``name``: seeded by (seed, name), so a file's audio does
        not depend on the batch it was generated in, nor on a rerun skipping finished files."""
        rng = np.random.default_rng([self.cfg.seed, zlib.crc32(name.encode("utf-8"))])
        kind = self.model.decoder.distribution.kind
        return rng.random((frames * self.model.hop,) if kind == "categorical" else (frames * self.model.hop, 2))

    def _stream(self, name: str, codes: np.ndarray, speaker: int, chunk_frames: int) -> None:
        with atomic_path(self.out / f"{name}.wav") as tmp:
            with sf.SoundFile(tmp, "w", self.sample_rate, 1, subtype=PCM_SUBTYPE, format="WAV") as f:
                for piece in self.generator.stream(codes, speaker, chunk_frames=chunk_frames,
                                                   uniforms=self._uniforms(name, len(codes)),
                                                   temperature=self.cfg.temperature, argmax=self.cfg.argmax):
                    f.write(np.clip(piece, -1, 1))


def reconstruct(cfg: DictConfig) -> int:
    """`audio-vq reconstruct`: encode each input and decode it with its own speaker."""
    dec = Decoder(cfg)
    sources = read_sources(cfg.input)
    if cfg.speaker is not None:
        dec.speaker_index(cfg.speaker, "speaker")
    elif any(src.speaker is None for src in sources):
        raise ConfigError(f"input={cfg.input}: the input names no speakers; give speaker=<name> "
                          f"(one of: {', '.join(sorted(dec.model.speaker_index))})")
    jobs, skipped = [], []
    for src, codes in _encode_all(dec, sources, skipped):
        name = cfg.speaker or src.speaker
        if name not in dec.model.speaker_index:  # a held-out speaker: report, go on with the rest
            skipped.append((src.path, f"speaker {name} is not in the model (held out?); give speaker=<name>"))
            continue
        jobs.append((src.id, codes, dec.model.speaker_index[name]))
    dec.write(jobs, "reconstruct")
    if skipped:
        write_skipped(dec.out, skipped)
    print(f"wrote {len(jobs)} reconstruction(s) to {dec.out}" + (f"; skipped {len(skipped)}" if skipped else ""))
    return 0


def convert(cfg: DictConfig) -> int:
    """`audio-vq convert`: decode each input's codes with each target speaker's identity."""
    dec = Decoder(cfg)
    targets = _targets(dec, cfg.target_speaker)
    sources = read_sources(cfg.input)
    jobs, rows, skipped = [], [], []
    for src, codes in _encode_all(dec, sources, skipped):
        for target in targets:
            name = f"{src.id}__{target}"
            jobs.append((name, codes, dec.speaker_index(target, "target_speaker")))
            rows.append({"source_id": src.id, "source_speaker": src.speaker or "", "target_speaker": target,
                         "path": f"{name}.wav", "source_path": src.path})
    dec.write(jobs, "convert")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["source_id"])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(dec.out / INDEX_NAME, buf.getvalue())
    if skipped:
        write_skipped(dec.out, skipped)
    print(f"wrote {len(jobs)} conversion(s) ({len(jobs) // max(1, len(targets))} source(s) x {len(targets)} "
          f"target(s)) to {dec.out}, index in {dec.out / INDEX_NAME}")
    return 0


def synthesize(cfg: DictConfig) -> int:
    """`audio-vq synthesize`: units to audio with one speaker."""
    dec = Decoder(cfg)
    require(cfg, "speaker", lambda v: isinstance(v, str) and v != "", "a speaker name")
    speaker = dec.speaker_index(cfg.speaker, "speaker")
    k = dec.model.quantizer.codebook_size
    jobs = []
    for uid, codes in read_unit_lines(cfg.units):
        if codes.min() < 0 or codes.max() >= k:
            raise ConfigError(f"units={cfg.units}: utterance {uid} has unit {int(codes.max())} outside 0..{k - 1}")
        jobs.append((uid, codes, speaker))
    dec.write(jobs, "synthesize")
    print(f"wrote {len(jobs)} utterance(s) to {dec.out}")
    return 0


def _encode_all(dec: Decoder, sources: list[Source], skipped: list) -> Iterator[tuple[Source, np.ndarray]]:
    for src in tqdm(sources, desc="encode", unit="utt", dynamic_ncols=True):
        try:
            yield src, dec.encode(src)
        except audio.AudioError as e:
            log.warning("skipping %s", e)
            skipped.append((src.path, e.reason))


def _targets(dec: Decoder, spec) -> list[str]:
    if spec == "all":
        return sorted(dec.model.speaker_index, key=dec.model.speaker_index.get)
    items = list(spec) if OmegaConf.is_list(spec) else str(spec).split(",")  # a,b arrives as a list
    names = [str(s).strip() for s in items if str(s).strip()]
    if not names:
        raise ConfigError("target_speaker: give a name, a,b,c or all")
    for n in names:
        dec.speaker_index(n, "target_speaker")
    return names


def _check_common(cfg: DictConfig) -> None:
    require(cfg, "batch_size", lambda v: is_int(v) and v >= 1, "an integer >= 1")
    require(cfg, "seed", lambda v: is_int(v) and v >= 0, "an integer >= 0")
    require(cfg, "temperature", lambda v: is_number(v) and v > 0, "a number > 0")
    require(cfg, "argmax", lambda v: isinstance(v, bool), "true or false")
    require(cfg, "chunk_seconds", lambda v: is_number(v) and v > 0, "seconds > 0")
    require(cfg, "backend", lambda v: v in ("auto", "numba", "torch"), "auto | numba | torch")
    require(cfg, "threads", lambda v: v is None or (is_int(v) and v >= 1), "null or an integer >= 1")
    if not Path(cfg.model).expanduser().is_dir():
        raise ConfigError(f"model={cfg.model}: no such model directory")
