"""webMUSHRA's experiment config (``webmushra.yaml``) for an exported test, and a checker that
applies webMUSHRA's own checks to it before anyone opens it in a browser.

webMUSHRA (github.com/audiolabs/webMUSHRA) reads ``configs/<name>.yaml``; file paths in it are
relative to webMUSHRA's root folder. The export's folder is meant to be copied to
``configs/resources/audio/<folder name>/`` (the `webmushra_prefix` key says where), the YAML to
``configs/<folder name>.yaml``, and the test opened as ``.../webMUSHRA/?config=<folder name>.yaml``.

Page types used, one per trial (grouped in a ``random`` array, so webMUSHRA shuffles the trial
order for every listener):

- mushra: the reference plus anchors and systems; webMUSHRA adds the hidden reference itself
  (a copy of the reference, reported as ``reference``), so the export's own anchors go in as
  stimuli and ``createAnchor35/70`` stay false: the same anchors serve BeaqleJS and the HTML page.
- paired_comparison (ABX): the reference is X; webMUSHRA makes one page per stimulus with the
  reference and the stimulus as A and B in random order and asks which one is the reference;
  it records ``correct`` / ``incorrect``.
- preference_test (AB): two stimuli, "which do you prefer"; one page per pair.
- likert_single_stimulus (MOS): one page per stimulus with the ITU-T P.800 ACR scale.
"""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import soundfile as sf
import yaml

from ..atomic import atomic_write_text
from .key import ANCHOR35, ANCHOR70, CONDITION, HIDDEN_REFERENCE, REFERENCE, KeyRow

WEBMUSHRA_NAME = "webmushra.yaml"
DEFAULT_PREFIX_ROOT = "configs/resources/audio"  # where webMUSHRA keeps its audio resources
REMOTE_SERVICE = "service/write.php"  # webMUSHRA's PHP service: writes results/<testId>/*.csv
BUFFER_SIZE = 2048
BUFFER_SIZES = (256, 512, 1024, 2048, 4096, 8192, 16384)  # the values webMUSHRA accepts

# webMUSHRA's strict MUSHRA checks (lib/webmushra/misc/MushraValidator.js), after ITU-R
# BS.1534-3: at most 12 stimuli in a trial and at most 12 s per stimulus. The hidden reference
# webMUSHRA adds is counted here as one of the 12, since listeners grade it like the others.
MUSHRA_MAX_STIMULI = 12
MUSHRA_MAX_SECONDS = 12.0

# ITU-T P.800 Annex B, Absolute Category Rating listening-quality scale
ACR_SCALE = ((5, "Excellent"), (4, "Good"), (3, "Fair"), (2, "Poor"), (1, "Bad"))

PAGE_TYPES = {"mushra": "mushra", "abx": "paired_comparison", "ab": "preference_test", "mos": "likert_single_stimulus"}
AUDIO_PAGE_TYPES = tuple(PAGE_TYPES.values())

INSTRUCTIONS = {
    "mushra": ("MUSHRA", "Listen to the reference, then rate how close each condition is to it, from 0 (bad) "
                         "to 100 (excellent). One of the conditions is the reference itself: give it 100."),
    "abx": ("ABX", "Listen to the reference, then to A and B. One of them is the reference: which one?"),
    "ab": ("Preference", "Listen to A and B. Which one do you prefer?"),
    "mos": ("Quality", "Rate the overall quality of each speech sample: 5 excellent, 4 good, 3 fair, 2 poor, 1 bad."),
}


def build_config(kind: str, trials: dict[str, list[KeyRow]], prefix: str, test_name: str, test_id: str,
                 strict: bool) -> dict:
    """The webMUSHRA experiment as a dict (see the module docstring for the page types)."""
    name, text = INSTRUCTIONS[kind]
    pages = [_page(kind, trial, rows, prefix, name, text, strict) for trial, rows in trials.items()]
    return {
        "testname": test_name,
        "testId": test_id,
        "bufferSize": BUFFER_SIZE,
        "stopOnErrors": True,
        "showButtonPreviousPage": False,  # going back would let listeners revise by comparison across trials
        "remoteService": REMOTE_SERVICE,
        "pages": [
            {"type": "generic", "id": "instructions", "name": "Instructions", "content": text},
            ["random", *pages],
            {"type": "finish", "name": "Thank you", "content": "Thank you for taking part.",
             "showResults": False, "writeResults": True},
        ],
    }


def write_config(folder: str | os.PathLike, config: dict) -> Path:
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=1000)
    return atomic_write_text(Path(folder) / WEBMUSHRA_NAME, text)


def default_prefix(folder: str | os.PathLike) -> str:
    return f"{DEFAULT_PREFIX_ROOT}/{Path(folder).resolve().name}"


def _page(kind: str, trial: str, rows: list[KeyRow], prefix: str, name: str, text: str, strict: bool) -> dict:
    path = lambda r: f"{prefix}/{r.file}" if prefix else r.file  # noqa: E731
    reference = next((r for r in rows if r.role == REFERENCE), None)
    rated = [r for r in rows if r.role in (ANCHOR35, ANCHOR70, CONDITION)]
    stimuli = {r.stimulus: path(r) for r in rated}
    page: dict = {"type": PAGE_TYPES[kind], "id": trial, "name": name, "content": text}
    if kind == "mushra":
        page.update(showWaveform=True, enableLooping=True, strict=strict, reference=path(reference),
                    createAnchor35=False, createAnchor70=False, randomize=True, showConditionNames=False,
                    stimuli=stimuli)
    elif kind == "abx":
        page.update(showWaveform=False, enableLooping=True, reference=path(reference), stimuli=stimuli)
    elif kind == "ab":
        page.update(numPerTrial=2, mustPlayback="ended", stimuli=stimuli)
    else:
        page.update(mustRate=True, mustPlayback="ended", stimuli=stimuli,
                    response=[{"value": v, "label": label} for v, label in reversed(ACR_SCALE)])
    return page


# ---------------------------------------------------------------------------------------------
# The checker: webMUSHRA's checks, run on the written files


def check_config(config: dict, folder: str | os.PathLike, prefix: str) -> list[str]:
    """Problems webMUSHRA would report for ``config`` with the files under ``folder`` (paths in
    the config are ``<prefix>/<path in folder>``): missing top-level keys, a bad buffer size, a
    last page that is not ``finish``, duplicate trial ids, missing files, and per trial files
    that differ in sample rate, length or channel count; for mushra pages with ``strict`` (the
    default) more than MUSHRA_MAX_STIMULI stimuli or a stimulus longer than MUSHRA_MAX_SECONDS.
    An empty list means the config passes."""
    problems = [f"missing top-level key '{k}'" for k in ("testname", "testId", "bufferSize", "stopOnErrors",
                                                         "remoteService", "pages") if k not in config]
    if config.get("bufferSize") not in BUFFER_SIZES:
        problems.append(f"bufferSize {config.get('bufferSize')} is not one of {BUFFER_SIZES}")
    pages = list(_walk_pages(config.get("pages") or []))
    if not pages or pages[-1].get("type") != "finish":
        problems.append("the last page must be of type finish")
    ids = defaultdict(int)
    for page in pages:
        if page.get("type") in AUDIO_PAGE_TYPES:
            ids[page.get("id")] += 1
            problems += _check_page(page, Path(folder), prefix)
    problems += [f"page id {i!r} is used {n} times" for i, n in ids.items() if n > 1]
    return problems


def _walk_pages(pages: list) -> Iterator[dict]:
    """Pages in order, descending into (possibly ``random``) page arrays."""
    for p in pages:
        if isinstance(p, list):
            yield from _walk_pages([q for q in p if q != "random"])
        elif isinstance(p, dict):
            yield p


def _check_page(page: dict, folder: Path, prefix: str) -> list[str]:
    where = f"page {page.get('id')!r} ({page.get('type')})"
    stimuli = page.get("stimuli") or {}
    files = ([("reference", page["reference"])] if "reference" in page else []) + list(stimuli.items())
    if not stimuli:
        return [f"{where}: no stimuli"]
    problems, infos = [], {}
    for label, path in files:
        local = _local(path, folder, prefix)
        if local is None or not local.is_file():
            problems.append(f"{where}: {label}: file {path} not found")
            continue
        info = sf.info(str(local))
        infos[label] = (info.samplerate, info.frames, info.channels)
    for i, what in enumerate(("sample rates", "lengths (samples)", "channel counts")):
        values = {v[i] for v in infos.values()}
        if len(values) > 1:
            problems.append(f"{where}: stimuli have different {what}: {sorted(values)}")
    if page.get("type") == "mushra" and page.get("strict") is not False:
        graded = len(stimuli) + 1  # + the hidden reference webMUSHRA adds
        if graded > MUSHRA_MAX_STIMULI:
            problems.append(f"{where}: {graded} stimuli with the hidden reference; strict allows at most "
                            f"{MUSHRA_MAX_STIMULI}")
        long = [label for label, (rate, frames, _) in infos.items() if frames / rate > MUSHRA_MAX_SECONDS]
        if long:
            problems.append(f"{where}: {', '.join(long)} longer than {MUSHRA_MAX_SECONDS:g} s (strict)")
    return problems


def _local(path: str, folder: Path, prefix: str) -> Path | None:
    """The file under ``folder`` that config path ``path`` names, or None if it is outside."""
    if prefix:
        head = prefix.rstrip("/") + "/"
        if not path.startswith(head):
            return None
        path = path[len(head):]
    return folder / path


def group_trials(rows: list[KeyRow]) -> dict[str, list[KeyRow]]:
    """Key rows grouped by trial, trials and rows in key order; the hidden reference rows are
    left out (the tools make their own from the reference)."""
    out: dict[str, list[KeyRow]] = {}
    for r in rows:
        if r.role != HIDDEN_REFERENCE:
            out.setdefault(r.trial, []).append(r)
    return out
