"""Decoding into files: the inputs every decoding command accepts, and the Renderer (a model's
Codec configured by the shared decoding keys, writing <out>/<name>.wav with a fingerprint) that
reconstruct, convert, synthesize, sample, evaluate and the listening-test export use.

Inputs are a manifest (``manifest.jsonl`` or its folder), a fairseq .tsv, a folder of audio
files, one audio file, or a file list.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from . import audio
from .atomic import atomic_path, atomic_write_text
from .audio import AUDIO_EXTENSIONS
from .checkpoint import load_model, model_checksum
from .codec import Codec, Sampling
from .config import ConfigError, resolve_device
from .corpora.common import find_files
from .manifest import MANIFEST_NAME, read_fairseq_tsv, read_manifest, resolve
from .options import DecodeOptions, validate
from .outputs import check_not_inputs, exclusive, inside, name_problem, remove_temporaries

PCM_SUBTYPE = "PCM_16"
FINGERPRINT_NAME = "fingerprint.json"  # in <out>: settings and each output's codes and speaker


@dataclass
class Source:
    """One input utterance: its id, file, speaker name and split (None when the input does not
    say: only manifests know speakers and splits)."""

    id: str
    path: str
    speaker: str | None = None
    split: str | None = None


def read_sources(input_path: str) -> list[Source]:
    """A manifest (``.jsonl``, or a folder holding manifest.jsonl), a fairseq ``.tsv``, a folder
    of audio, one audio file, or a file list (one path per line, relative to the list's folder).
    Ids are manifest ids, else file stems (``Path.stem``); they must be unique."""
    path = Path(input_path).expanduser()
    manifest = path if path.is_file() and path.suffix == ".jsonl" else path / MANIFEST_NAME
    if manifest.is_file():
        sources = [Source(u.id, u.path, u.speaker, u.split) for u in read_manifest(manifest)]
    elif path.is_dir():
        sources = [Source(f.stem, str(f)) for f in find_files(path)]
        if not sources:
            raise ConfigError(f"input={input_path}: no audio files in this folder")
    elif path.is_file() and path.suffix == ".tsv":
        sources = [Source(f.stem, str(f)) for f, _ in read_fairseq_tsv(path)]
    elif path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
        sources = [Source(path.stem, str(path))]
    elif path.is_file():
        sources = _file_list(path)
    else:
        raise ConfigError(f"input={input_path}: no such file or folder")
    seen: dict[str, str] = {}
    for src in sources:
        problem = name_problem(src.id)
        if problem:  # manifests check their ids; file stems are checked here
            raise ConfigError(f"input={input_path}: {src.path}: id {src.id!r} {problem}; rename the file")
        if src.id in seen:
            raise ConfigError(
                f"input={input_path}: two inputs share the id {src.id} ({seen[src.id]} and "
                f"{src.path}); ids are file stems and must be unique"
            )
        seen[src.id] = src.path
    return sources


def _file_list(path: Path) -> list[Source]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"input={path}: not a readable file list ({e})") from None
    names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not names:
        raise ConfigError(f"input={path}: the file list is empty")
    files = [resolve(n, path.parent) for n in names]
    return [Source(f.stem, str(f)) for f in files]


class Renderer:
    """A model's Codec, configured by the decoding keys every command shares, writing its
    outputs as files into ``out``."""

    def __init__(self, cfg: DictConfig):
        check_decode_options(cfg)
        sampling = Sampling(cfg.seed, cfg.temperature, cfg.voiced_temperature, cfg.argmax)
        self.codec = Codec(
            load_model(cfg.model, resolve_device(cfg.device)),
            model_checksum(cfg.model),
            backend=cfg.backend,
            threads=cfg.threads,
            chunk_seconds=cfg.chunk_seconds,
            levels=cfg.levels,
            sampling=sampling,
        )
        self.model, self.generator, self.extractor = self.codec.model, self.codec.generator, self.codec.extractor
        self.cfg = cfg
        self.out = Path(cfg.out).expanduser()
        self.sample_rate = self.model.sample_rate
        self.frame_rate = self.codec.frame_rate

    def speaker_index(self, name: str, key: str) -> int:
        """The table index of speaker ``name``; ConfigError listing the valid names otherwise."""
        return self.codec.speaker(name, key)

    @property
    def codebook(self) -> np.ndarray:
        """(Q, K, D) float32: [l, k] is level l's vector for code k (what zerospeech rows hold)."""
        return self.model.codebook_vectors().cpu().numpy()

    def in_register(self, f0: np.ndarray | None, target: int, source: Source) -> np.ndarray | None:
        """``f0`` of ``source`` moved into the register of the speaker ``target``
        (contours.in_register: the source's own row of the table, or for a speaker the model
        never saw its contour's statistics); None for None."""
        return self.codec.in_register(f0, target, self.source_speaker(source))

    def source_speaker(self, source: Source) -> int | None:
        """The table row of the source's speaker, None when the model never saw it."""
        return self.model.speaker_index.get(source.speaker) if source.speaker is not None else None

    def settings(self) -> dict:
        """What every output's audio depends on besides its codes and speaker."""
        return {"model_checksum": self.codec.checksum, **self.sampling()}

    def sampling(self) -> dict:
        """The sampling settings the audio depends on (the fingerprint's and the listening
        cache's): seed, temperature, argmax, and a pitch model's voiced_temperature (only a
        pitch model reads it, so older outputs of other models keep their fingerprint)."""
        out = {"seed": self.cfg.seed, "temperature": self.cfg.temperature, "argmax": self.cfg.argmax}
        if self.model.uses_pitch:
            out["voiced_temperature"] = self.cfg.voiced_temperature
        return out

    def write(
        self, jobs: Sequence[tuple], desc: str, inputs: Iterable[str | os.PathLike] = (), others: Sequence[str] = ()
    ) -> None:
        """Generate ``(name, codes, speaker index[, f0])`` jobs in batches and write
        ``<out>/<name>.wav``; long ones stream in chunks. ``f0``: a pitch model's contour in the
        speaker's register (see :meth:`contour`).

        ``<out>/fingerprint.json`` records the settings (model checksum, seed, temperature,
        argmax) and each output's codes, speaker and contour. A rerun keeps the outputs it records with
        the same settings, codes and speaker (so an interrupted run resumes); an existing output
        made otherwise, or not recorded, stops the command with one line naming what changed,
        unless ``overwrite=true``, which regenerates it. No output (nor the ``others`` the command
        writes into ``<out>``) may be one of ``inputs``; ``<out>`` is locked while writing."""
        with exclusive(self.out, f"out={self.out}"):
            remove_temporaries(self.out, of=[f"{j[0]}.wav" for j in jobs] + [FINGERPRINT_NAME])
            speaker_names = {i: n for n, i in self.model.speaker_index.items()}
            jobs = [(*j, None) if len(j) == 3 else tuple(j) for j in jobs]
            wanted = {
                name: {
                    "speaker": speaker_names.get(speaker, str(speaker)),
                    "codes": _codes_digest(codes),
                    **({} if f0 is None else {"f0": _f0_digest(f0)}),
                }
                for name, codes, speaker, f0 in jobs
            }
            paths = {name: inside(self.out, f"{name}.wav") for name in wanted}
            check_not_inputs([*paths.values(), *(self.out / n for n in (FINGERPRINT_NAME, *others))], inputs, "out")
            record = self._record()
            settings = self.settings()
            if record["settings"] != settings:
                record = {"settings": settings, "outputs": {}, "was": record}
            stale = [n for n, path in paths.items() if path.exists() and record["outputs"].get(n) != wanted[n]]
            if stale and not self.cfg.overwrite:
                raise ConfigError(
                    f"out={self.out}: {_why_stale(stale, record, wanted)}; rerun with overwrite=true to "
                    "regenerate, or choose another out="
                )
            for n in stale:
                paths[n].unlink()
            todo = [j for j in jobs if not paths[j[0]].exists()]
            record.pop("was", None)
            record["outputs"].update({j[0]: wanted[j[0]] for j in todo})  # before the audio: a kill leaves
            atomic_write_text(
                self.out / FINGERPRINT_NAME, json.dumps(record, indent=1) + "\n"
            )  # missing files, never stale ones
            self._generate(jobs, todo, paths, desc)

    def _generate(self, jobs, todo, paths: dict[str, Path], desc: str) -> None:
        chunk_frames = self.codec.chunk_frames
        with tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=desc, unit="utt", dynamic_ncols=True) as bar:
            # batches of similar lengths: a batch runs as long as its longest utterance, and
            # streams that finish early leave the rest to share each weight load among fewer
            short = sorted((j for j in todo if j[1].shape[-1] <= chunk_frames), key=lambda j: -j[1].shape[-1])
            for start in range(0, len(short), self.cfg.batch_size):
                batch = short[start : start + self.cfg.batch_size]
                for (name, *_), wave in zip(batch, self.codec.decode(batch)):
                    audio.save(paths[name], np.clip(wave, -1, 1), self.sample_rate, subtype=PCM_SUBTYPE)
                bar.update(len(batch))
            for job in (j for j in todo if j[1].shape[-1] > chunk_frames):
                with atomic_path(paths[job[0]]) as tmp:
                    with sf.SoundFile(tmp, "w", self.sample_rate, 1, subtype=PCM_SUBTYPE, format="WAV") as f:
                        for piece in self.codec.stream(job):
                            f.write(np.clip(piece, -1, 1))
                bar.update()

    def _record(self) -> dict:
        """The fingerprint of what ``<out>`` holds (empty for a new folder)."""
        path = self.out / FINGERPRINT_NAME
        empty = {"settings": None, "outputs": {}}
        if not path.is_file():
            return empty
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return empty  # unreadable: every existing output counts as unrecorded
        if not isinstance(record, dict) or not isinstance(record.get("outputs"), dict):
            return empty
        return record


def _codes_digest(codes: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(codes, dtype=np.int64).tobytes()).hexdigest()[:16]


def _f0_digest(f0: np.ndarray) -> str:
    return hashlib.sha256(np.round(np.asarray(f0, dtype=np.float64), 2).tobytes()).hexdigest()[:16]


def _why_stale(stale: list[str], record: dict, wanted: dict) -> str:
    """One line saying which setting, speaker or codes changed for the existing outputs ``stale``."""
    old = record.get("was", record)
    if old.get("settings") and old["settings"] != record["settings"]:
        changed = [
            f"{k}={old['settings'].get(k)!r} (now {v!r})"
            for k, v in record["settings"].items()
            if old["settings"].get(k) != v
        ]
        return f"{len(stale)} existing output(s) were made with {', '.join(changed)}"
    first = stale[0]
    before = old.get("outputs", {}).get(first)
    if before is None:
        return (
            f"{len(stale)} existing output(s), e.g. {first}.wav, were not written by this command with "
            "these settings (no record in fingerprint.json)"
        )
    if before.get("speaker") != wanted[first]["speaker"]:
        return (
            f"{len(stale)} existing output(s) were made with another speaker, e.g. {first}.wav with "
            f"{before.get('speaker')!r} (now {wanted[first]['speaker']!r})"
        )
    return (
        f"{len(stale)} existing output(s), e.g. {first}.wav, were made from other codes (the input audio, "
        "units or chunk_seconds changed)"
    )


def check_decode_options(cfg: DictConfig) -> None:
    """The decoding keys' checks (DecodeOptions; a typed command's whole schema), and a model
    directory that exists."""
    typed = dataclasses.is_dataclass(OmegaConf.get_type(cfg))
    validate(cfg, None if typed else DecodeOptions)
    if not Path(cfg.model).expanduser().is_dir():
        raise ConfigError(f"model={cfg.model}: no such model directory")
