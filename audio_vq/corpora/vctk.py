"""VCTK (CSTR voice cloning toolkit corpus), releases 0.80 and 0.92.

0.80 (``VCTK-Corpus/``)::

    wav48/p225/p225_001.wav       48 kHz wav
    txt/p225/p225_001.txt
    speaker-info.txt              IDs without the "p": "225  23  F  English  Southern England"

0.92 (``VCTK-Corpus-0.92/``)::

    wav48_silence_trimmed/p225/p225_001_mic1.flac   48 kHz 24-bit flac, one file per microphone
    wav48_silence_trimmed/p225/p225_001_mic2.flac
    txt/p225/p225_001.txt
    speaker-info.txt              IDs with the "p": "p225  23  F  English  Southern England"

The speaker is the folder name. Text is attached when its txt exists (real VCTK has none for
p315 and a few other utterances). In 0.92 only the chosen microphone is yielded, so speakers
recorded without it (p280 and p362 lack mic2) are simply absent. The root may also be the
folder that holds the corpus folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

from ..manifest import Utterance
from .common import CorpusError, check_root, find_files, read_text

CORPUS = "vctk"
V080, V092 = "0.80", "0.92"
WAV_DIRS = {V092: "wav48_silence_trimmed", V080: "wav48"}  # dict order = preference under auto
AUDIO_SUFFIX = {V092: ".flac", V080: ".wav"}
TXT_DIR = "txt"
SPEAKER_INFO = "speaker-info.txt"
MICS = ("mic1", "mic2")
BOTH = "both"
_MIC_STEM = re.compile(r"^(?P<base>.+)_(?P<mic>mic\d+)$")
_COMMENT = re.compile(r"\s*\((?P<comment>[^)]*)\)\s*$")  # 0.92: "(mic2 files unavailable)"


def scan(root: str | os.PathLike, version: str = "auto", mic: str = "mic1") -> Iterator[Utterance]:
    """Utterances of the VCTK corpus at ``root``, sorted by speaker then id.

    ``version``: ``auto`` (0.92 if its folder exists, else 0.80), ``"0.80"`` or ``"0.92"``.
    ``mic`` (0.92 only): ``mic1``, ``mic2`` or ``both``; ids keep the ``_micN`` suffix only
    with ``both``, so that a single-microphone manifest has the same ids as 0.80.
    """
    version = _normalize_version(version)
    if mic not in (*MICS, BOTH):
        raise CorpusError(f"vctk: mic must be one of {', '.join((*MICS, BOTH))}, got {mic!r}")
    corpus, version = _locate(check_root(root, CORPUS), version)
    wav_dir = corpus / WAV_DIRS[version]
    utterances = []
    for path in find_files(wav_dir, (AUDIO_SUFFIX[version],)):
        rel = path.relative_to(wav_dir)
        if len(rel.parts) != 2:  # only <speaker>/<file>: anything else is not an utterance
            continue
        speaker, stem = rel.parts[0], path.stem
        base, utt_id = stem, stem
        if version == V092:
            m = _MIC_STEM.match(stem)
            if m is None or (mic != BOTH and m["mic"] != mic):
                continue
            base = m["base"]
            utt_id = stem if mic == BOTH else base
        text = read_text(corpus / TXT_DIR / speaker / f"{base}.txt")
        utterances.append(Utterance(id=utt_id, path=str(path), speaker=speaker, text=text))
    if not utterances:
        which = f" for {mic}" if version == V092 else ""
        raise CorpusError(
            f"{wav_dir}: no VCTK {version} audio{which} "
            f"(expected <speaker>/<speaker>_NNN{_example_suffix(version, mic)})"
        )
    return iter(utterances)


def read_speaker_info(root: str | os.PathLike) -> dict[str, dict]:
    """``speaker-info.txt`` as speaker -> {age, gender, accents, region[, comments]}.

    Keys are folder names ("p225") in both releases: 0.80's bare numbers get their "p". Age is
    an int when numeric. Returns {} when the file is absent.
    """
    corpus, _ = _locate(check_root(root, CORPUS), "auto")
    path = corpus / SPEAKER_INFO
    if not path.is_file():
        return {}
    info: dict[str, dict] = {}
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in lines[1:]:  # the first line is the header
        fields = line.split()
        if len(fields) < 3:  # blank or truncated lines
            continue
        speaker = f"p{fields[0]}" if fields[0].isdigit() else fields[0]
        rest = " ".join(fields[4:])
        entry: dict = {
            "age": int(fields[1]) if fields[1].isdigit() else fields[1],
            "gender": fields[2],
            "accents": fields[3] if len(fields) > 3 else None,
        }
        comment = _COMMENT.search(rest)
        if comment:
            entry["comments"] = comment["comment"]
            rest = rest[: comment.start()]
        entry["region"] = rest.strip() or None
        info[speaker] = entry
    return info


def _normalize_version(version) -> str:
    # An unquoted `version: 0.80` in YAML arrives as the float 0.8.
    text = str(version).strip().lower()
    aliases = {"auto": "auto", "0.8": V080, "0.80": V080, "0.92": V092}
    if text not in aliases:
        raise CorpusError(f"vctk: version must be auto, {V080} or {V092}, got {version!r}")
    return aliases[text]


def _locate(root: Path, version: str) -> tuple[Path, str]:
    """The corpus folder and its release: ``root`` itself, or the one subfolder holding it."""

    def holds(folder: Path) -> bool:
        return any((folder / d).is_dir() for d in WAV_DIRS.values())

    if holds(root):
        candidates = [root]
    else:
        candidates = [c for c in sorted(root.iterdir()) if c.is_dir() and not c.name.startswith(".") and holds(c)]
    if not candidates:
        raise CorpusError(f"{root}: not a VCTK root (no {WAV_DIRS[V092]}/ or {WAV_DIRS[V080]}/ here or in a subfolder)")
    for v in WAV_DIRS if version == "auto" else (version,):
        found = [c for c in candidates if (c / WAV_DIRS[v]).is_dir()]
        if len(found) > 1:
            names = ", ".join(c.name for c in found)
            raise CorpusError(f"{root}: several VCTK {v} corpora inside ({names}); pass one of them as root")
        if found:
            return found[0], v
    raise CorpusError(f"{root}: VCTK {version} needs {WAV_DIRS[version]}/, which is missing")


def _example_suffix(version: str, mic: str) -> str:
    if version == V080:
        return AUDIO_SUFFIX[V080]
    return f"_{MICS[0] if mic == BOTH else mic}{AUDIO_SUFFIX[V092]}"
