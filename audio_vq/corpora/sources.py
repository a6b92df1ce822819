"""Audio that is not a whole file of its own: a span (and channel) of a longer recording, as
lhotse's cuts and supervisions (and Kaldi's segments) describe it, or an encoded file stored in
a row of a table, as a Hugging Face dataset's audio column holds it.

A scanner puts such an :class:`AudioSource` on the utterance; `prepare` decodes it with
:func:`read_source` and writes it out as ``<out>/audio/<speaker>/<id>.wav`` (the manifest's
contract: one utterance, one file), validating it as it validates every file.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import audio

TABLE_SUFFIXES = (".arrow", ".parquet")
_OPEN_TABLES = 2  # tables a worker keeps open (HF shards are read row after row)


@dataclass(frozen=True)
class AudioSource:
    """Where an utterance's audio is. ``path``: the recording, or the table file. A span:
    ``start`` and ``duration`` in seconds (None: to the end), ``channel`` of the recording's file
    (None: channels mixed down). A table: ``row`` and ``column`` (a struct of encoded ``bytes``
    and the original file's ``path``, Hugging Face's Audio feature). ``problem``: why the scanner
    cannot give this utterance's audio (a cut of a kind audio_vq does not read), which prepare
    reports as it reports a file it cannot decode."""

    path: str
    start: float = 0.0
    duration: float | None = None
    channel: int | None = None
    row: int | None = None
    column: str | None = None
    problem: str | None = None

    def describe(self) -> str:
        """How reports name it (skipped.tsv): the file and where in it."""
        if self.row is not None:
            return f"{self.path}#row={self.row}"
        span = f"{self.start:g}-{'' if self.duration is None else f'{self.start + self.duration:g}'}s"
        return f"{self.path}@{span}" + ("" if self.channel is None else f",channel={self.channel}")

    def stamp(self) -> str:
        """What changes when the audio could: the file's size and time, and where in it."""
        try:
            st = os.stat(self.path)
            return f"{st.st_size}:{st.st_mtime_ns}:{self.describe()}"
        except OSError:
            return f"missing:{self.describe()}"


def read_source(source: AudioSource) -> tuple[np.ndarray, int]:
    """Mono float32 (T,) at its own rate, and the rate; audio.AudioError names what is wrong."""
    if source.problem is not None:
        raise audio.AudioError(Path(source.path), source.problem)
    if source.row is not None:
        return _read_row(source)
    path = Path(source.path)
    rate = audio.info(path).sample_rate
    start = round(source.start * rate)
    frames = -1 if source.duration is None else max(1, round(source.duration * rate))
    return audio.load_segment(path, start, frames, channel=source.channel), rate


def _read_row(source: AudioSource) -> tuple[np.ndarray, int]:
    try:
        cell = _column(source.path, source.column)[source.row].as_py()
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise audio.AudioError(Path(source.path), f"row {source.row}: {' '.join(str(e).split())}") from None
    data = cell.get("bytes") if isinstance(cell, dict) else None
    if not data:
        raise audio.AudioError(Path(source.path), f"row {source.row}: no audio bytes in column {source.column!r}")
    # the bytes are a whole encoded file: decoded by the one path every file takes (its checks)
    suffix = Path(str(cell.get("path") or "")).suffix or ".wav"
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder) / f"row{source.row}{suffix}"
        tmp.write_bytes(data)
        try:
            return audio.load_with_rate(tmp, sample_rate=None)
        except audio.AudioError as e:
            raise audio.AudioError(Path(source.describe()), e.reason) from None


@functools.lru_cache(maxsize=_OPEN_TABLES)
def _column(path: str, column: str):
    """One column of an Arrow (memory-mapped) or Parquet file, as a pyarrow ChunkedArray."""
    return read_table(path, [column]).column(column)


def read_table(path: str | os.PathLike, columns: list[str] | None = None):
    """A pyarrow Table of an ``.arrow`` file (IPC stream, as ``save_to_disk`` writes, or file
    format; memory-mapped) or a ``.parquet`` file; only ``columns`` when given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = str(path)
    if path.endswith(".parquet"):
        return pq.read_table(path, columns=columns, memory_map=True)
    source = pa.memory_map(path)
    try:
        table = pa.ipc.open_stream(source).read_all()
    except pa.ArrowInvalid:
        table = pa.ipc.open_file(pa.memory_map(path)).read_all()
    return table.select(columns) if columns else table
