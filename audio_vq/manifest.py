"""The manifest: the contract between `prepare` and every later stage (see DESIGN.md).

``manifest.jsonl`` holds one utterance per line::

    {"id": "p225_001", "path": "wav48/p225/p225_001.wav", "speaker": "p225",
     "num_samples": 120000, "sample_rate": 48000, "split": "train",
     "text": "Please call Stella.", "alignment": null}

``path`` and ``alignment`` are absolute or relative to the manifest's folder; ``num_samples``
and ``sample_rate`` describe the file at ``path`` as stored (loaders resample on the fly).
Beside it ``speakers.json`` maps each speaker the decoder can be conditioned on to its index.
fairseq's ``.tsv`` manifest (first line: root folder; then ``relpath<TAB>num_samples``) is read
and written too.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .atomic import atomic_write_text
from .outputs import name_problem

MANIFEST_NAME = "manifest.jsonl"
SPEAKERS_NAME = "speakers.json"
SKIPPED_NAME = "skipped.tsv"
SPLITS = ("train", "valid", "test")


class ManifestError(ValueError):
    """A manifest, speakers or tsv file that does not follow the contract; names file and line."""


@dataclass
class Utterance:
    """One utterance. Corpus scanners fill id, path, speaker and what they know of text,
    alignment and split; `prepare` fills num_samples and sample_rate after decoding the file."""

    id: str
    path: str
    speaker: str
    num_samples: int | None = None
    sample_rate: int | None = None
    split: str | None = None
    text: str | None = None
    alignment: str | None = None
    # a scanner's: audio that is not a whole file (corpora.sources.AudioSource, a span of a
    # recording or a table's row), which prepare writes out as a file; never in the manifest
    source: object | None = field(default=None, repr=False, compare=False)

    @property
    def duration(self) -> float:
        if not self.num_samples or not self.sample_rate:
            raise ValueError(f"{self.id}: duration unknown before prepare decodes the file")
        return self.num_samples / self.sample_rate

    def to_json(self) -> str:
        record = {k: v for k, v in asdict(replace(self, source=None)).items() if k in _FIELDS}
        record = {k: v for k, v in record.items() if v is not None or k in _REQUIRED}
        return json.dumps(record, ensure_ascii=False)


_REQUIRED = ("id", "path", "speaker", "num_samples", "sample_rate", "split")
_FIELDS = {f.name for f in fields(Utterance)} - {"source"}  # what a manifest line may hold


def resolve(path: str | os.PathLike, base: str | os.PathLike) -> Path:
    """A manifest path made absolute: relative paths are relative to the manifest's folder."""
    p = Path(path)
    return p if p.is_absolute() else Path(base) / p


def read_manifest(path: str | os.PathLike, resolve_paths: bool = True) -> list[Utterance]:
    """Read ``manifest.jsonl`` (or the folder holding it). With ``resolve_paths`` the audio and
    alignment paths come back absolute."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found")
    base = path.parent.resolve()
    out: list[Utterance] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise ManifestError(f"{where}: expected a JSON object")
            missing = [k for k in _REQUIRED if record.get(k) is None]
            if missing:
                raise ManifestError(f"{where}: missing key(s) {', '.join(missing)}")
            # keys added by other tools are tolerated and dropped
            utt = Utterance(**{k: v for k, v in record.items() if k in _FIELDS})
            if utt.split not in SPLITS:
                raise ManifestError(f"{where}: split must be one of {'/'.join(SPLITS)}, got {utt.split!r}")
            for key in ("id", "speaker"):  # both become file names (<id>.wav, <id>__<speaker>.wav)
                if type(getattr(utt, key)) is int:  # a numeric id or speaker written by another tool
                    setattr(utt, key, str(getattr(utt, key)))
                problem = name_problem(getattr(utt, key))
                if problem:
                    raise ManifestError(f"{where}: {key} {getattr(utt, key)!r} {problem}")
            if utt.id in seen:
                raise ManifestError(f"{where}: duplicate id {utt.id!r} (first on line {seen[utt.id]})")
            seen[utt.id] = lineno
            if resolve_paths:
                utt.path = str(resolve(utt.path, base))
                if utt.alignment:
                    utt.alignment = str(resolve(utt.alignment, base))
            out.append(utt)
    return out


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance], relative: bool = True) -> Path:
    """Write ``manifest.jsonl`` atomically. With ``relative`` paths under the manifest's folder
    are stored relative to it, so the folder can move as a whole."""
    path = Path(path)
    if path.suffix != ".jsonl":
        path = path / MANIFEST_NAME
    base = path.parent.resolve()
    lines = []
    for u in utterances:
        missing = [k for k in _REQUIRED if getattr(u, k) is None]
        if missing:
            raise ManifestError(f"{u.id}: cannot write a manifest entry without {', '.join(missing)}")
        problem = next(
            (f"{k} {getattr(u, k)!r} {p}" for k in ("id", "speaker") if (p := name_problem(getattr(u, k)))), None
        )
        if problem:  # what read_manifest would refuse is never written
            raise ManifestError(f"{u.path}: cannot write a manifest entry whose {problem}")
        rec = replace(u, source=None)
        if relative:
            rec.path = _relative_if_inside(rec.path, base)
            if rec.alignment:
                rec.alignment = _relative_if_inside(rec.alignment, base)
        lines.append(rec.to_json() + "\n")
    atomic_write_text(path, "".join(lines))
    return path


def read_speakers(path: str | os.PathLike) -> dict[str, int]:
    """Read ``speakers.json`` (or the folder holding it): speaker -> index, indices 0..N-1."""
    path = Path(path)
    if path.is_dir():
        path = path / SPEAKERS_NAME
    try:
        speakers = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: speakers file not found") from None
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: not JSON ({e.msg})") from None
    if (
        not isinstance(speakers, dict)
        or not all(type(v) is int for v in speakers.values())
        or sorted(speakers.values()) != list(range(len(speakers)))
    ):
        raise ManifestError(f"{path}: expected an object mapping speaker -> index 0..N-1")
    for name in speakers:
        problem = name_problem(name)
        if problem:
            raise ManifestError(f"{path}: speaker {name!r} {problem}")
    return {str(k): int(v) for k, v in speakers.items()}


def write_speakers(path: str | os.PathLike, speakers: Iterable[str]) -> dict[str, int]:
    """Write ``speakers.json`` with the given speakers indexed in sorted order."""
    path = Path(path)
    if path.suffix != ".json":
        path = path / SPEAKERS_NAME
    mapping = {s: i for i, s in enumerate(sorted(set(speakers)))}
    atomic_write_text(path, json.dumps(mapping, indent=1, ensure_ascii=False) + "\n")
    return mapping


def write_fairseq_tsv(
    path: str | os.PathLike, utterances: Iterable[Utterance], root: str | os.PathLike | None = None
) -> Path:
    """fairseq's wav2vec/HuBERT manifest: first line the root folder, then ``relpath<TAB>num_samples``.

    ``root`` defaults to the deepest folder holding every file. fairseq expects 16 kHz audio,
    so write it from a manifest prepared with ``cache_audio=true`` or of 16 kHz sources."""
    path = Path(path)
    utts = list(utterances)
    abs_paths = [Path(u.path).resolve() for u in utts]
    if root is None:
        root = Path(os.path.commonpath([str(p.parent) for p in abs_paths])) if abs_paths else Path(".").resolve()
    root = Path(root).resolve()
    lines = [f"{root}\n"]
    for u, p in zip(utts, abs_paths):
        lines.append(f"{os.path.relpath(p, root)}\t{u.num_samples}\n")
    atomic_write_text(path, "".join(lines))
    return path


def read_fairseq_tsv(path: str | os.PathLike) -> list[tuple[Path, int]]:
    """Read a fairseq ``.tsv`` manifest: [(absolute audio path, num_samples)]."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ManifestError(f"{path}: tsv manifest not found") from None
    if not lines:
        raise ManifestError(f"{path}: empty tsv manifest (the first line must be the root folder)")
    root = Path(lines[0].strip())
    out = []
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[1].strip().isdigit():
            raise ManifestError(f"{path}:{lineno}: expected 'relpath<TAB>num_samples'")
        out.append((root / parts[0], int(parts[1])))
    return out


def write_skipped(folder: str | os.PathLike, skipped: Iterable[tuple[str, str]]) -> Path:
    """``<folder>/skipped.tsv``: a ``path<TAB>reason`` header, then one row per item a stage could
    not use (whitespace in reasons collapsed, so every row stays one line of two fields)."""
    rows = ["path\treason\n"] + [f"{_one_field(p)}\t{' '.join(str(r).split())}\n" for p, r in skipped]
    return atomic_write_text(Path(folder) / SKIPPED_NAME, "".join(rows))


def _one_field(path: str) -> str:
    """A path as one tsv field: a file name may hold a tab or a newline; write them escaped."""
    return str(path).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def spread_over_speakers(
    utterances: Sequence[Utterance], n: int, rng: np.random.Generator | None = None
) -> list[Utterance]:
    """Up to ``n`` utterances dealt round robin over the speakers in sorted order, so a cap keeps
    every speaker. Within a speaker: the given order, or a permutation drawn from ``rng`` (one
    per speaker, in sorted speaker order, so a seed gives the same choice)."""
    by_speaker: dict[str, list[Utterance]] = {}
    for u in utterances:
        by_speaker.setdefault(u.speaker, []).append(u)
    queues = []
    for speaker in sorted(by_speaker):
        us = by_speaker[speaker]
        queues.append([us[i] for i in rng.permutation(len(us))] if rng is not None else list(us))
    chosen: list[Utterance] = []
    while len(chosen) < n and any(queues):
        for q in queues:
            if q and len(chosen) < n:
                chosen.append(q.pop(0))
    return chosen


def iter_split(utterances: Iterable[Utterance], split: str | None) -> Iterator[Utterance]:
    """The utterances of one split (all when ``split`` is None)."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {'/'.join(SPLITS)} or None, got {split!r}")
    return (u for u in utterances if split is None or u.split == split)


def _relative_if_inside(p: str, base: Path) -> str:
    ap = resolve(p, base).resolve()  # a relative path is relative to the manifest's folder, not the cwd
    try:
        return str(ap.relative_to(base))
    except ValueError:
        return str(ap)
