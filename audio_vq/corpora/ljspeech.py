"""LJSpeech 1.1: one speaker reading non-fiction, 13,100 clips.

::

    LJSpeech-1.1/wavs/LJ001-0001.wav     22,050 Hz wav
    LJSpeech-1.1/metadata.csv            LJ001-0001|raw text|normalized text

metadata.csv is pipe-separated and not csv-quoted (texts contain quotes and commas), so it is
split on "|" rather than read with the csv module; the normalized column is missing or empty
on some lines, and the raw text stands in for it there. Every metadata entry is yielded, its
wav present or not (`prepare` reports missing ones); wavs that metadata does not list are
yielded too, without text.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from ..manifest import Utterance
from .common import CorpusError, check_root, find_files

CORPUS = "ljspeech"
METADATA = "metadata.csv"
WAV_DIR = "wavs"
AUDIO_SUFFIX = ".wav"
SEPARATOR = "|"
TEXT_CHOICES = ("normalized", "raw")


def scan(root: str | os.PathLike, speaker: str = "LJ", text: str = "normalized") -> Iterator[Utterance]:
    """Utterances of the LJSpeech corpus at ``root`` (the folder holding metadata.csv and wavs/),
    sorted by id. ``speaker`` names the one speaker; ``text`` picks the ``normalized`` (numbers
    and abbreviations spelled out) or ``raw`` transcript."""
    if text not in TEXT_CHOICES:
        raise CorpusError(f"ljspeech: text must be one of {', '.join(TEXT_CHOICES)}, got {text!r}")
    root = check_root(root, CORPUS)
    missing = [METADATA] if not (root / METADATA).is_file() else []
    missing += [f"{WAV_DIR}/"] if not (root / WAV_DIR).is_dir() else []
    if missing:
        raise CorpusError(f"{root}: not an LJSpeech root (missing {', '.join(missing)})")
    wav_dir = root / WAV_DIR
    texts = read_metadata(root / METADATA, normalized=text == "normalized")
    # only wavs/<id>.wav: the ids of metadata.csv name files directly in wavs/
    on_disk = {p.stem: p for p in find_files(wav_dir, (AUDIO_SUFFIX,)) if p.parent == wav_dir}
    ids = sorted(set(texts) | set(on_disk))
    return iter(
        [
            Utterance(
                id=i, path=str(on_disk.get(i, wav_dir / f"{i}{AUDIO_SUFFIX}")), speaker=speaker, text=texts.get(i)
            )
            for i in ids
        ]
    )


def read_metadata(path: Path, normalized: bool = True) -> dict[str, str | None]:
    """``metadata.csv`` as id -> text (normalized when present and asked for, else raw)."""
    texts: dict[str, str | None] = {}
    first_line: dict[str, int] = {}
    # utf-8-sig: a re-saved metadata.csv may start with a byte-order mark
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = [" ".join(field.split()) for field in line.split(SEPARATOR, 2)]
            if len(fields) < 2 or not fields[0]:
                raise CorpusError(f"{path}:{lineno}: expected 'id|text|normalized text'")
            utt_id, raw = fields[0], fields[1]
            if utt_id in first_line:
                raise CorpusError(f"{path}:{lineno}: duplicate id {utt_id} (first on line {first_line[utt_id]})")
            first_line[utt_id] = lineno
            norm = fields[2] if len(fields) > 2 else ""
            texts[utt_id] = (norm if normalized and norm else raw) or None
    return texts
