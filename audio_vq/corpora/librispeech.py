"""LibriSpeech: one or several subsets of read audiobook speech.

::

    LibriSpeech/train-clean-100/19/198/19-198-0000.flac     16 kHz flac
    LibriSpeech/train-clean-100/19/198/19-198.trans.txt     "19-198-0000 NORTHANGER ABBEY"
    LibriSpeech/dev-clean/...

The root is either ``LibriSpeech/`` (its subfolders are subsets) or one subset folder (its
subfolders are numeric speaker ids). The speaker is the speaker folder's name. Every flac is
an utterance, and so is every transcript line, so a flac lost in a partial download is still
listed and `prepare` reports it missing instead of it vanishing silently.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

from ..manifest import Utterance
from .common import CorpusError, check_root, find_files

CORPUS = "librispeech"
AUDIO_SUFFIX = ".flac"
TRANS_SUFFIX = ".trans.txt"
# Subset name prefix -> split hint; anything else (train-*, custom names) is training data.
SPLIT_PREFIXES = (("dev", "valid"), ("test", "test"))
DEFAULT_SPLIT = "train"
CHAPTER_DEPTH = 3  # <speaker>/<chapter>/<file> below the subset folder


def scan(
    root: str | os.PathLike, subsets: Iterable[str] | str | None = None, use_subset_splits: bool = True
) -> Iterator[Utterance]:
    """Utterances of the LibriSpeech subsets under ``root``, sorted by subset, then path.

    ``subsets``: names of the subset folders to read (a list, or a comma-separated string), or
    None for every subset found. ``use_subset_splits``: set each utterance's split hint from its
    subset (dev* -> valid, test* -> test, else train); False leaves the split to `prepare`.
    """
    root = check_root(root, CORPUS)
    available = _find_subsets(root)
    if not available:
        raise CorpusError(
            f"{root}: not a LibriSpeech root (no subset folders <subset>/<speaker>/<chapter>/ "
            f"and no numeric speaker folders)"
        )
    chosen = sorted(available) if subsets is None else _requested(subsets)
    missing = [s for s in chosen if s not in available]
    if missing:
        raise CorpusError(f"{root}: subset(s) {', '.join(missing)} not found; present: {', '.join(sorted(available))}")
    utterances: list[Utterance] = []
    first_seen: dict[str, str] = {}
    for name in chosen:
        split = split_of(name) if use_subset_splits else None
        for utt in _scan_subset(available[name], split):
            if utt.id in first_seen:  # e.g. the same subset copied twice under two names
                raise CorpusError(f"{root}: utterance {utt.id} is in two places: {first_seen[utt.id]} and {utt.path}")
            first_seen[utt.id] = utt.path
            utterances.append(utt)
    return iter(utterances)


def split_of(subset: str) -> str:
    """The split hint of a subset name: dev* -> valid, test* -> test, else train."""
    for prefix, split in SPLIT_PREFIXES:
        if subset.startswith(prefix):
            return split
    return DEFAULT_SPLIT


def _find_subsets(root: Path) -> dict[str, Path]:
    if _is_subset(root):
        return {root.name: root}
    return {d.name: d for d in _subdirs(root) if _is_subset(d)}


def _is_subset(folder: Path) -> bool:
    return any(d.name.isdigit() for d in _subdirs(folder))


def _subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _requested(subsets: Iterable[str] | str) -> list[str]:
    names = subsets.split(",") if isinstance(subsets, str) else list(subsets)
    names = [str(n).strip() for n in names if str(n).strip()]
    if not names:
        raise CorpusError("librispeech: subsets is empty; give subset names or null for all")
    return sorted(set(names))


def _scan_subset(subset: Path, split: str | None) -> list[Utterance]:
    """Every flac and every transcript line of one subset, sorted by path."""
    found: dict[str, Utterance] = {}
    for path in find_files(subset, (AUDIO_SUFFIX,)):
        if not _in_chapter(subset, path):
            continue
        found[path.stem] = Utterance(id=path.stem, path=str(path), speaker=_speaker(subset, path), split=split)
    for trans in find_files(subset, (".txt",)):
        if not trans.name.endswith(TRANS_SUFFIX) or not _in_chapter(subset, trans):
            continue
        for utt_id, text in _read_transcripts(trans):
            utt = found.get(utt_id)
            if utt is None:  # listed but its flac is missing: keep it so prepare reports it
                path = trans.parent / f"{utt_id}{AUDIO_SUFFIX}"
                utt = found[utt_id] = Utterance(id=utt_id, path=str(path), speaker=_speaker(subset, path), split=split)
            utt.text = text
    return sorted(found.values(), key=lambda u: u.path)


def _in_chapter(subset: Path, path: Path) -> bool:
    """Whether ``path`` is <subset>/<speaker>/<chapter>/<file>; files elsewhere are not LibriSpeech's."""
    return len(path.relative_to(subset).parts) == CHAPTER_DEPTH


def _speaker(subset: Path, path: Path) -> str:
    # <subset>/<speaker>/<chapter>/<file>: the folder, which equals the id's first field
    return path.relative_to(subset).parts[0]


def _read_transcripts(path: Path) -> Iterator[tuple[str, str | None]]:
    """(utterance id, text) for each line of a ``<spk>-<chapter>.trans.txt``."""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split(maxsplit=1)
        if fields:
            yield fields[0], " ".join(fields[1].split()) if len(fields) > 1 else None
