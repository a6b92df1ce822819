"""Helpers shared by the corpus scanners."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Iterator

from ..audio import AUDIO_EXTENSIONS


class CorpusError(ValueError):
    """A dataset root that is missing or not in the layout its scanner expects."""


def check_root(root: str | os.PathLike, corpus: str) -> Path:
    """``root`` as an absolute Path, or CorpusError if it is not a folder."""
    root = Path(root).expanduser()
    if not root.exists():
        raise CorpusError(f"{root}: {corpus} root does not exist")
    if not root.is_dir():
        raise CorpusError(f"{root}: {corpus} root is not a folder")
    return root.resolve()


def find_files(root: Path, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> Iterator[Path]:
    """Files under ``root`` whose suffix (case-insensitive) is in ``extensions``, in sorted
    order so that scans are deterministic. Hidden files and folders are skipped. Symlinked
    folders are followed, but every real folder is visited once: a link back up the tree (a
    loop) or a second link to one folder adds no files twice."""
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    visited: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in visited:
            dirnames[:] = []
            continue
        visited.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in exts:
                yield Path(dirpath) / name


def read_text(path: Path) -> str | None:
    """A transcript file's text with whitespace collapsed, or None if absent/unreadable."""
    try:
        return " ".join(path.read_text(encoding="utf-8", errors="replace").split()) or None
    except OSError:
        return None


# words of a file or folder name that say its split (lhotse's ..._cuts_dev-clean, HF's validation/)
SPLIT_WORDS = {"train": "train", "dev": "valid", "valid": "valid", "validation": "valid", "test": "test"}


def split_of(name: str) -> str | None:
    """The split a name says (``dev-clean`` -> valid), or None when it says none or several."""
    found = {SPLIT_WORDS[w] for w in re.split(r"[^a-z]+", name.lower()) if w in SPLIT_WORDS}
    return found.pop() if len(found) == 1 else None
