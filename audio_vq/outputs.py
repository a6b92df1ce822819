"""Where a command may write, shared by every writer.

- Ids become file names (``<out>/<id>.wav``, ``<folder>/<id>.txt``) and fields of unit files
  (``id|units``, line-aligned ``.ids``): :func:`name_problem` says why an id cannot be one, and
  :func:`inside` joins a name to its folder, refusing one that would leave it.
- No output may replace one of the command's inputs: :func:`check_not_inputs`.
- One writer per output: :func:`exclusive` holds an ``fcntl`` lock while a command writes (the
  kernel releases it when the process ends, crash included) and names the pid that holds it.
- A killed writer leaves the temporaries of its atomic writes (``.<name>.<random>.tmp``,
  ``.<name>.tmp-<pid>``): :func:`remove_temporaries` clears them once the lock is held.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

# Characters no id may hold: path separators leave the folder, '|' splits a gslm line
# (``id|units``), control characters (tab, newline, ...) split the line-aligned formats.
SEPARATORS = "/\\|"
MAX_NAME_BYTES = 200  # an id plus "__<speaker>.wav" stays under NAME_MAX (255) of common filesystems
LOCK_NAME = ".lock"


class OutputError(ValueError):
    """An output that would leave its folder, replace an input, or is being written by another process."""


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be an id (a file name, a field of a unit file), or None if it can."""
    if not isinstance(name, str) or name == "":
        return "is empty" if name == "" else f"is not a string ({type(name).__name__})"
    if name in (".", ".."):
        return "is a folder reference, not a name"
    bad = sorted({c for c in name if c in SEPARATORS or unicodedata.category(c).startswith("C")})
    if bad:
        return (
            f"holds {' '.join(repr(c) for c in bad)} "
            "(no id may hold / \\ | or control characters such as tab and newline)"
        )
    if name.startswith("."):
        return "starts with '.' (it would be a hidden file)"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    return None


def inside(folder: str | os.PathLike, name: str) -> Path:
    """``folder / name``, or OutputError when ``name`` is not a plain file name in ``folder``."""
    problem = name_problem(name)
    if problem:
        raise OutputError(f"{folder}: refusing to write {name!r}: the name {problem}")
    return Path(folder) / name


def check_not_inputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike], key: str) -> None:
    """OutputError naming ``key`` when an output path is one of the inputs (the same path, a
    symlink to it, or a hard link). Only outputs that exist can be inputs, so the inputs are
    looked at only when one does."""
    existing = {}
    for p in outputs:
        try:
            st = os.stat(p)
        except OSError:
            continue
        existing[(st.st_dev, st.st_ino)] = Path(p)
    if not existing:
        return
    for p in inputs:
        try:
            st = os.stat(p)
        except OSError:
            continue
        hit = existing.get((st.st_dev, st.st_ino))
        if hit is not None:
            raise OutputError(f"{key}: refusing to write {hit}: it is the input {p}")


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "?"
    except OSError:
        return "?"


@contextmanager
def exclusive(folder: str | os.PathLike, what: str, lock_name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold ``<folder>/<lock_name>`` locked (the folder is created) while the block runs;
    OutputError "<what> is in use by pid N" when another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / lock_name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EACCES):
            raise OutputError(
                f"{what} is in use by pid {_holder(path)} (lock {path}); wait for it or choose another output"
            ) from None
        raise
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        os.close(fd)  # releases the lock; the file stays (unlinking it would race a new holder)


def temporary_of(name: str) -> str | None:
    """The file an atomic write's temporary ``name`` was for (``.<file>.<random>.tmp``,
    ``.<file>.tmp-<pid>``, or a writer's ``.<file>.<part>.tmp-<pid>``), or None if it is not one."""
    if not name.startswith("."):
        return None
    if name.endswith(".tmp"):
        base = name[1 : -len(".tmp")].rpartition(".")[0]
    elif ".tmp-" in name:
        base = name[1:].rpartition(".tmp-")[0]
    else:
        return None
    return base or None


def is_temporary(name: str, of: Iterable[str] | None = None) -> bool:
    """Whether ``name`` is a temporary of an atomic write (of one of the names in ``of``, or of any)."""
    base = temporary_of(name)
    if base is None:
        return False
    if of is None:
        return True
    names = of if isinstance(of, (set, frozenset)) else set(of)
    # a writer's temporaries of one output may add a part name (.u.npz.units.tmp-<pid>): try the
    # base and each of its dotted prefixes
    parts = base.split(".")
    return any(".".join(parts[:i]) in names for i in range(len(parts), 0, -1))


def remove_temporaries(
    folder: str | os.PathLike, of: Iterable[str] | None = None, recursive: bool = False
) -> list[Path]:
    """Delete what interrupted atomic writes left in ``folder`` (and below, with ``recursive``):
    the temporaries of the names in ``of``, or all of them. Call it holding the folder's lock,
    so that no live writer's temporary is taken. Returns what was removed."""
    folder = Path(folder)
    names = None if of is None else set(of)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in sorted(folder.iterdir()):
        if is_temporary(entry.name, names):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
        elif recursive and entry.is_dir() and not entry.is_symlink():
            removed += remove_temporaries(entry, names, recursive=True)
    return removed
