"""Any tree of audio files: speakers from folder names or a regex, transcripts and alignments
found beside the audio.

::

    root/alice/take1.wav        speaker "alice", id "take1"
    root/alice/take1.TextGrid   its alignment (same stem; .lab and .phn too)
    root/alice/take1.txt        its transcript (or take1.normalized.txt / .original.txt, as in LibriTTS)
    root/bob/s1/take1.flac      speaker "s1" by default (the parent folder), or what speaker_regex captures
    root/loose.wav              directly under root: speaker = the root folder's name

Ids are file stems. When several files share a stem (take1 above), all of them instead get
their path relative to root, without the suffix, with "/" replaced by "_": ``alice_take1`` and
``bob_s1_take1``; files whose stems are unique keep them. Two audio files that would still get
one id (``a.wav`` beside ``a.flac``) are an error: restrict ``extensions``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..audio import AUDIO_EXTENSIONS
from ..manifest import Utterance
from .common import CorpusError, check_root, find_files, read_text

CORPUS = "folder"
DEFAULT_ALIGNMENT_EXTENSIONS = (".TextGrid", ".lab", ".phn")
# LibriTTS ships both .normalized.txt and .original.txt; the normalized one is preferred, as
# LJSpeech's normalized column is.
DEFAULT_TEXT_EXTENSIONS = (".normalized.txt", ".txt", ".original.txt")
SPEAKER_GROUP = "speaker"


def scan(
    root: str | os.PathLike,
    extensions: Iterable[str] | str | None = None,
    speaker_regex: str | None = None,
    default_speaker: str | None = None,
    alignment_extensions: Iterable[str] | str | None = DEFAULT_ALIGNMENT_EXTENSIONS,
    text_extensions: Iterable[str] | str | None = DEFAULT_TEXT_EXTENSIONS,
) -> Iterator[Utterance]:
    """Utterances for every audio file under ``root``, in find_files' sorted walk order (a
    folder's files, then its subfolders).

    ``extensions``: audio suffixes to take (None: every format :mod:`audio_vq.audio` reads).
    ``speaker_regex``: searched in each file's path relative to root (posix form); the speaker
    is its group ``speaker``, or else group 1. A file it does not match gets
    ``default_speaker``, or is an error when that is None. Without a regex the speaker is the
    parent folder's name. ``alignment_extensions`` / ``text_extensions``: suffixes of the
    alignment / transcript files looked for beside the audio (same stem, case-insensitive);
    the first one present wins.
    """
    root = check_root(root, CORPUS)
    audio_exts = _suffixes(extensions) if extensions is not None else AUDIO_EXTENSIONS
    speaker_of = _speaker_rule(root, speaker_regex, default_speaker)
    files = list(find_files(root, audio_exts))
    if not files:
        raise CorpusError(f"{root}: no audio files ({' '.join(audio_exts)}) in this tree")
    ids = _ids(root, files)
    beside = _Siblings()
    align_exts, text_exts = _suffixes(alignment_extensions), _suffixes(text_extensions)
    utterances = []
    for path, utt_id in zip(files, ids):
        alignment = beside.find(path, align_exts)
        transcript = beside.find(path, text_exts)
        utterances.append(
            Utterance(
                id=utt_id,
                path=str(path),
                speaker=speaker_of(path),
                text=read_text(transcript) if transcript else None,
                alignment=str(alignment) if alignment else None,
            )
        )
    return iter(utterances)


def _speaker_rule(root: Path, pattern: str | None, default: str | None) -> Callable[[Path], str]:
    """The function path -> speaker that the options describe; checks the regex at once."""
    if pattern is None:
        return lambda path: root.name if path.parent == root else path.parent.name
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise CorpusError(f"folder: speaker_regex {pattern!r} is not a valid regex ({e})") from None
    if SPEAKER_GROUP in regex.groupindex:
        group: str | int = SPEAKER_GROUP
    elif regex.groups >= 1:
        group = 1
    else:
        raise CorpusError(f"folder: speaker_regex {pattern!r} needs a group (?P<speaker>...) or (...)")

    def speaker_of(path: Path) -> str:
        rel = path.relative_to(root).as_posix()
        match = regex.search(rel)
        speaker = match.group(group) if match else None
        if speaker:
            return speaker
        if default is not None:
            return str(default)
        raise CorpusError(
            f"{root}: speaker_regex {pattern!r} does not match {rel} (set default_speaker to accept such files)"
        )

    return speaker_of


def _ids(root: Path, files: list[Path]) -> list[str]:
    """File stems, or for every file whose stem is shared, its relative path without suffix
    with "/" -> "_"; raises if two files still share an id."""
    stems = Counter(p.stem for p in files)
    ids = [
        p.stem if stems[p.stem] == 1 else p.relative_to(root).with_suffix("").as_posix().replace("/", "_")
        for p in files
    ]
    first: dict[str, Path] = {}
    for path, utt_id in zip(files, ids):
        if utt_id in first:
            raise CorpusError(
                f"{root}: {first[utt_id].relative_to(root)} and {path.relative_to(root)} "
                f"would both get id {utt_id!r}; restrict extensions or rename one"
            )
        first[utt_id] = path
    return ids


class _Siblings:
    """Files beside an audio file, looked up by lowercased name; one listing per folder."""

    def __init__(self):
        self._listings: dict[Path, dict[str, Path]] = {}

    def find(self, audio: Path, suffixes: tuple[str, ...]) -> Path | None:
        """The first ``<stem><suffix>`` beside ``audio`` that exists, in ``suffixes`` order."""
        folder = audio.parent
        if folder not in self._listings:
            # reversed sort: when names differ only in case, the sorted-first one wins
            self._listings[folder] = {p.name.lower(): p for p in sorted(folder.iterdir(), reverse=True) if p.is_file()}
        listing = self._listings[folder]
        for suffix in suffixes:
            hit = listing.get((audio.stem + suffix).lower())
            if hit is not None and hit != audio:
                return hit
        return None


def _suffixes(exts: Iterable[str] | str | None) -> tuple[str, ...]:
    """Option value -> tuple of suffixes with their leading dot (a string may list them with commas)."""
    if exts is None:
        return ()
    items = exts.split(",") if isinstance(exts, str) else list(exts)
    items = [str(e).strip() for e in items if str(e).strip()]
    return tuple(e if e.startswith(".") else f".{e}" for e in items)
