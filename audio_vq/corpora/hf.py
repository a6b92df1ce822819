"""Hugging Face datasets on disk, read with pyarrow (the ``hf`` extra), audio decoded by soundfile
from the bytes or files the audio column holds (no torchcodec, no FFmpeg).

root: a dataset saved with ``save_to_disk`` (``state.json`` and ``data-*.arrow``), a DatasetDict
saved so (``dataset_dict.json`` and a folder per split), or any folder of ``.parquet`` /
``.arrow`` files (a dataset repository's ``data/train-00000-of-00004.parquet``). The audio
column is Hugging Face's Audio feature (a struct of the encoded file's ``bytes`` and its
``path``) or a column of file paths. Speaker, id and text come from the columns the keys name.
Rows whose audio is bytes are decoded and written to out/audio/ by prepare.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from ..config import optional_import
from ..manifest import Utterance
from .common import CorpusError, check_root, split_of
from .sources import TABLE_SUFFIXES, AudioSource, read_table

CORPUS = "hf"
BATCH_ROWS = 256  # rows read at a time: a scan holds one batch of a table in memory


def scan(
    root: str | os.PathLike,
    audio_column: str = "audio",
    speaker_column: str | None = None,
    id_column: str | None = None,
    text_column: str | None = None,
    default_speaker: str | None = None,
    use_splits: bool = True,
) -> Iterator[Utterance]:
    """Utterances of every row of the dataset at ``root`` (see the module). ``speaker_column``
    (None: every row is ``default_speaker``; a row without either is reported, not used);
    ``id_column`` (None: the audio file's stem, else ``<table>-<row>``); ``text_column`` (None:
    no text); ``use_splits``: train / valid / test from the DatasetDict's split names or the
    files' names (validation and dev -> valid)."""
    optional_import("pyarrow", "hf", "corpus=hf", CorpusError)
    root = check_root(root, CORPUS)
    for split_name, table in _tables(root):
        split = split_of(split_name) if use_splits else None
        yield from _rows(table, split, audio_column, speaker_column, id_column, text_column, default_speaker)


def _tables(root: Path) -> Iterator[tuple[str, Path]]:
    """(split name, table file) of the dataset at ``root``, in order."""
    if (root / "dataset_dict.json").is_file():
        splits = _json(root / "dataset_dict.json").get("splits") or []
        for split in splits:
            for table in _saved_tables(root / split):
                yield split, table
        return
    if (root / "state.json").is_file():
        state = _json(root / "state.json")
        for table in _saved_tables(root):
            yield state.get("_split") or "", table
        return
    tables = sorted(p for p in root.rglob("*") if p.suffix in TABLE_SUFFIXES and not p.name.startswith("."))
    if not tables:
        raise CorpusError(f"{root}: no Hugging Face dataset (save_to_disk's state.json, or .parquet / .arrow files)")
    for table in tables:
        yield str(table.relative_to(root)), table


def _saved_tables(folder: Path) -> list[Path]:
    files = _json(folder / "state.json").get("_data_files") or []
    tables = [folder / f["filename"] for f in files if isinstance(f, dict) and "filename" in f]
    if not tables:
        raise CorpusError(f"{folder / 'state.json'}: lists no data files")
    return tables


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CorpusError(f"{path}: unreadable ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise CorpusError(f"{path}: expected a JSON object")
    return data


def _rows(
    table: Path,
    split: str | None,
    audio_column: str,
    speaker_column: str | None,
    id_column: str | None,
    text_column: str | None,
    default_speaker: str | None,
) -> Iterator[Utterance]:
    columns = [audio_column, *(c for c in (speaker_column, id_column, text_column) if c)]
    row = 0
    for batch in _batches(table, columns):
        for values in batch.to_pylist():
            where = f"{table}#row={row}"
            audio = values[audio_column]
            speaker = values[speaker_column] if speaker_column else default_speaker
            path = audio.get("path") if isinstance(audio, dict) else audio
            uid = values[id_column] if id_column else (Path(path).stem if path else f"{table.stem}-{row}")
            text = values[text_column] if text_column else None
            utt = Utterance(str(uid), where, "-" if speaker is None else str(speaker), split=split, text=text)
            if speaker is None:
                problem = "no speaker (name corpus.speaker_column or corpus.default_speaker)"
                utt.source = AudioSource(where, problem=problem)
            elif isinstance(audio, dict) and audio.get("bytes"):
                utt.source = AudioSource(str(table), row=row, column=audio_column)
            elif path and (file := _file(path, table)) is not None:
                utt.path = str(file)
            else:
                utt.source = AudioSource(where, problem=f"no audio bytes, and its path {path!r} is not a file here")
            yield utt
            row += 1


def _batches(table: Path, columns: list[str]):
    """The table's rows, ``BATCH_ROWS`` at a time, of ``columns`` (CorpusError naming a missing one)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if table.suffix == ".parquet":
            reader = pq.ParquetFile(table)
            names = reader.schema_arrow.names
            _check_columns(table, columns, names)
            yield from reader.iter_batches(batch_size=BATCH_ROWS, columns=columns)
            return
        data = read_table(table)  # memory-mapped: the audio bytes are not read here
        _check_columns(table, columns, data.column_names)
        yield from data.select(columns).to_batches(max_chunksize=BATCH_ROWS)
    except (OSError, pa.ArrowException) as e:
        raise CorpusError(f"{table}: unreadable table ({' '.join(str(e).split())})") from None


def _check_columns(table: Path, columns: list[str], names: list[str]) -> None:
    missing = [c for c in columns if c not in names]
    if missing:
        raise CorpusError(f"{table}: no column {', '.join(map(repr, missing))} (columns: {', '.join(names)})")


def _file(path: str, table: Path) -> Path | None:
    """An audio column's path as an existing file: absolute, or relative to the table's folder."""
    for candidate in (Path(path), table.parent / path):
        if candidate.is_file():
            return candidate.resolve()
    return None
