"""lhotse manifests: a CutSet, or a RecordingSet with its SupervisionSet (``.jsonl`` or
``.jsonl.gz``, as lhotse's recipes for ~100 corpora write them, and ``lhotse kaldi import`` makes
of a Kaldi data dir). Read with lhotse's own loader (the ``lhotse`` extra).

root: one manifest file (a CutSet; or a RecordingSet whose SupervisionSet is beside it, named
with ``supervisions`` for ``recordings``), or a folder of them: its CutSets if it holds any,
else its recording / supervision pairs. Each cut is an utterance (a recording / supervision pair:
each supervision, cut out of its recording); its speaker is its supervisions' speaker and its
text theirs joined. A cut that spans a whole single-channel file is that file; any other (a
segment of a longer recording, one channel of several) is decoded and written out by prepare.
The split hint comes from the manifest's name (``..._cuts_dev-clean.jsonl.gz``: valid).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from ..config import optional_import
from ..manifest import Utterance
from .common import CorpusError, split_of
from .sources import AudioSource

CORPUS = "lhotse"
MANIFEST_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
WHOLE_FILE_TOLERANCE_SECONDS = 1e-3  # a cut this close to its recording's length spans all of it


def scan(
    root: str | os.PathLike, default_speaker: str | None = None, use_file_splits: bool = True
) -> Iterator[Utterance]:
    """Utterances of the lhotse manifests at ``root`` (see the module). ``default_speaker``: for
    cuts whose supervisions name none (None: such a cut is reported, not used).
    ``use_file_splits``: take train / valid / test from the manifest's name."""
    lhotse = optional_import("lhotse", "lhotse", "corpus=lhotse", CorpusError)
    for path, cuts in _cut_sets(Path(root).expanduser(), lhotse):
        split = split_of(path.name) if use_file_splits else None
        for cut in cuts:
            yield _utterance(cut, path, split, default_speaker, lhotse)


def _cut_sets(root: Path, lhotse) -> Iterator[tuple[Path, object]]:
    """(manifest, its cuts) for each CutSet or recording / supervision pair at ``root``."""
    if not root.exists():
        raise CorpusError(f"{root}: lhotse manifest or folder does not exist")
    files = [root] if root.is_file() else sorted(p for p in root.iterdir() if _is_manifest(p))
    loaded = [(p, _load(p, lhotse)) for p in files]
    cut_sets = [(p, m) for p, m in loaded if isinstance(m, lhotse.CutSet)]
    if cut_sets:
        yield from cut_sets
        return
    recordings = [(p, m) for p, m in loaded if isinstance(m, lhotse.RecordingSet)]
    if not recordings:
        raise CorpusError(f"{root}: no lhotse CutSet or RecordingSet manifest (*.jsonl[.gz]) found")
    for path, recording_set in recordings:
        supervision_path = path.with_name(path.name.replace("recordings", "supervisions"))
        if supervision_path == path or not supervision_path.is_file():
            raise CorpusError(f"{path}: a RecordingSet needs its SupervisionSet beside it ({supervision_path.name})")
        supervisions = _load(supervision_path, lhotse)
        if not isinstance(supervisions, lhotse.SupervisionSet):
            raise CorpusError(f"{supervision_path}: not a lhotse SupervisionSet")
        cuts = lhotse.CutSet.from_manifests(recordings=recording_set.to_eager(), supervisions=supervisions.to_eager())
        yield path, cuts.trim_to_supervisions(keep_overlapping=False)


def _is_manifest(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.name.endswith(MANIFEST_SUFFIXES)


def _load(path: Path, lhotse):
    try:
        return lhotse.load_manifest_lazy(path) if ".jsonl" in path.name else lhotse.load_manifest(path)
    except Exception as e:  # lhotse raises several kinds for a file that is not its manifest
        raise CorpusError(f"{path}: not a lhotse manifest ({type(e).__name__}: {' '.join(str(e).split())})") from None


def _utterance(cut, manifest: Path, split: str | None, default_speaker: str | None, lhotse) -> Utterance:
    """The utterance of one cut; one whose audio cannot be read from a file carries the reason
    as its path's problem (prepare reports it in skipped.tsv)."""
    where = f"{manifest}#{cut.id}"
    if not isinstance(cut, lhotse.MonoCut) or cut.recording is None:
        return _refused(cut.id, where, f"a {type(cut).__name__} (only single-recording MonoCuts are utterances)")
    supervisions = cut.supervisions
    speakers = {s.speaker for s in supervisions if s.speaker}
    if len(speakers) > 1:
        return _refused(cut.id, where, f"supervisions of several speakers ({', '.join(sorted(speakers))})")
    speaker = speakers.pop() if speakers else default_speaker
    if speaker is None:
        return _refused(cut.id, where, "no speaker in its supervisions (give corpus.default_speaker)")
    text = " ".join(s.text for s in supervisions if s.text) or None
    recording = cut.recording
    sources = [s for s in recording.sources if cut.channel in s.channels]
    if len(sources) != 1 or sources[0].type != "file":
        kind = sources[0].type if sources else "no source"
        return _refused(cut.id, where, f"its audio is {kind!r}, not a file (only file sources are read)", speaker)
    file = Path(sources[0].source)
    if not file.is_absolute():
        file = (manifest.parent / file).resolve()
    whole = (
        cut.start <= WHOLE_FILE_TOLERANCE_SECONDS
        and abs(cut.duration - recording.duration) <= WHOLE_FILE_TOLERANCE_SECONDS
        and len(sources[0].channels) == 1
    )
    if whole:
        return Utterance(cut.id, str(file), speaker, split=split, text=text)
    source = AudioSource(
        str(file),
        start=float(cut.start),
        duration=float(cut.duration),
        channel=sources[0].channels.index(cut.channel) if len(sources[0].channels) > 1 else None,
    )
    return Utterance(cut.id, source.describe(), speaker, split=split, text=text, source=source)


def _refused(uid: str, where: str, reason: str, speaker: str = "-") -> Utterance:
    """An utterance prepare will report and not use (a source that always fails, with the reason)."""
    return Utterance(uid, where, speaker, source=AudioSource(where, problem=reason))
