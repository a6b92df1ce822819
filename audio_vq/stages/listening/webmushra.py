"""webMUSHRA's experiment config (``webmushra.yaml``) for an exported test, and a checker that
applies webMUSHRA's own checks to it before anyone opens it in a browser.

webMUSHRA (github.com/audiolabs/webMUSHRA) reads ``configs/<name>.yaml``; file paths in it are
relative to webMUSHRA's root folder. The export's folder is meant to be copied to
``configs/resources/audio/<folder name>/`` (the `webmushra_prefix` key says where), the YAML to
``configs/<folder name>.yaml``, and the test opened as ``.../webMUSHRA/?config=<folder name>.yaml``.

Only page types webMUSHRA 1.4.3 builds (startup.js: WEBMUSHRA_PAGE_TYPES; any other is "Type
not specified." and the page is dropped). The trials' pages are grouped in a ``random`` array,
so webMUSHRA shuffles their order for every listener:

- mushra: the reference plus anchors and systems; webMUSHRA adds the hidden reference itself
  (a copy of the reference, reported as ``reference``), so the export's own anchors go in as
  stimuli and ``createAnchor35/70`` stay false: the same anchors serve BeaqleJS and the HTML page.
- paired_comparison (ABX): the reference is X; webMUSHRA makes one page per stimulus with the
  reference and the stimulus as A and B in random order and asks which one is the reference;
  it records ``correct`` / ``incorrect``.
- likert_multi_stimulus (AB; webMUSHRA has no preference page): both stimuli of a pair on one
  page, each rated on the ACR scale; the one rated higher is the preferred one, equal ratings
  are no preference. Its service writes ``lms.csv``.
- likert_single_stimulus (MOS): one page config per stimulus with the ITU-T P.800 ACR scale, all
  in the random group, so the stimuli of one utterance do not come on consecutive pages (pages
  of one trial id share a trial in the results, ``lss.csv``).

The finish page asks for a listener id (questionnaire field ``listener``): webMUSHRA's service
puts questionnaire answers as columns into every CSV, and only ``mushra.csv`` of its newest
code has a session uuid, so this column is what tells listeners apart.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import soundfile as sf

from ...atomic import atomic_write_text
from .key import ANCHOR35, ANCHOR70, CONDITION, HIDDEN_REFERENCE, REFERENCE, KeyRow
from .kinds import Kind

WEBMUSHRA_NAME = "webmushra.yaml"
DEFAULT_PREFIX_ROOT = "configs/resources/audio"  # where webMUSHRA keeps its audio resources
REMOTE_SERVICE = "service/write.php"  # webMUSHRA's PHP service: writes results/<testId>/*.csv
YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}  # keys YAML would not read as strings
BUFFER_SIZE = 2048
BUFFER_SIZES = (256, 512, 1024, 2048, 4096, 8192, 16384)  # the values webMUSHRA accepts

# webMUSHRA's strict MUSHRA checks (lib/webmushra/misc/MushraValidator.js), after ITU-R
# BS.1534-3: at most 12 stimuli in a trial and at most 12 s per stimulus. The hidden reference
# webMUSHRA adds is counted here as one of the 12, since listeners grade it like the others.
MUSHRA_MAX_STIMULI = 12
MUSHRA_MAX_SECONDS = 12.0

# ITU-T P.800 Annex B, Absolute Category Rating listening-quality scale
ACR_SCALE = ((5, "Excellent"), (4, "Good"), (3, "Fair"), (2, "Poor"), (1, "Bad"))

# The page types webMUSHRA 1.4.3 builds (startup.js, addPagesToPageManager)
WEBMUSHRA_PAGE_TYPES = (
    "generic",
    "volume",
    "mushra",
    "spatial",
    "paired_comparison",
    "bs1116",
    "likert_single_stimulus",
    "likert_multi_stimulus",
    "finish",
)
STRICT_PAGE_TYPES = ("mushra",)  # the pages webMUSHRA's strict checks (MushraValidator) apply to
SHARED_ID_TYPES = ("likert_single_stimulus",)  # one page config per stimulus, one trial id for all
LISTENER_FIELD = "listener"  # the finish page's questionnaire field: a column of every result CSV
LISTENER_LABEL = "Your listener id (as given to you):"


def build_config(
    kind: Kind, trials: dict[str, list[KeyRow]], prefix: str, test_name: str, test_id: str, strict: bool
) -> dict:
    """The webMUSHRA experiment as a dict (see the module docstring for the page types)."""
    pages = [page for trial, rows in trials.items() for page in _pages(kind, trial, rows, prefix, strict)]
    return {
        "testname": test_name,
        "testId": test_id,
        "bufferSize": BUFFER_SIZE,
        "stopOnErrors": True,
        "showButtonPreviousPage": False,  # going back would let listeners revise by comparison across trials
        "remoteService": REMOTE_SERVICE,
        "pages": [
            {"type": "generic", "id": "instructions", "name": "Instructions", "content": kind.instructions},
            ["random", *pages],
            {
                "type": "finish",
                "name": "Thank you",
                "content": "Thank you for taking part.",
                "showResults": False,
                "writeResults": True,
                "questionnaire": [{"type": "text", "name": LISTENER_FIELD, "label": LISTENER_LABEL}],
            },
        ],
    }


def write_config(folder: str | os.PathLike, config: dict) -> Path:
    return atomic_write_text(Path(folder) / WEBMUSHRA_NAME, dump_yaml(config))


def dump_yaml(value, indent: int = 0) -> str:
    """``value`` (dicts, lists, strings, numbers, booleans, None) as block-style YAML that
    webMUSHRA's parser (yamljs, bundled as lib/external/yaml/yaml.min.js) reads as PyYAML does.

    yamljs reads the compact nested sequence PyYAML writes (``- - random``) as one string, which
    drops every randomised group of pages; here a list inside a list starts on the line after its
    ``-``. Strings are double-quoted JSON strings with non-ASCII characters written as they are
    (yamljs decodes ``\\u`` escapes wrongly); keys are plain."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}\n" if indent == 0 else f"{pad}{{}}\n"
        lines = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{_key(k)}:\n{dump_yaml(v, indent + 2)}")
            else:
                lines.append(f"{pad}{_key(k)}: {_scalar(v)}\n")
        return "".join(lines)
    if isinstance(value, list):
        if not value:
            return f"{pad}[]\n"
        lines = []
        for item in value:
            if isinstance(item, dict) and item:  # "- key: value", the other keys aligned under the first
                lines.append(f"{pad}- {dump_yaml(item, indent + 2)[indent + 2 :]}")
            elif isinstance(item, list) and item:
                lines.append(f"{pad}-\n{dump_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}- {_scalar(item)}\n")
        return "".join(lines)
    return f"{pad}{_scalar(value)}\n"


def _key(k) -> str:
    """A plain key when it reads back as the same string in YAML 1.1 and 1.2, else quoted."""
    k = str(k)
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", k) and k.lower() not in YAML_WORDS
    return k if plain else json.dumps(k, ensure_ascii=False)


def _scalar(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        text = repr(v)  # YAML 1.1 (PyYAML) reads 1e-05 as a string: the mantissa needs a dot
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    if isinstance(v, (dict, list)):  # empty ones
        return "{}" if isinstance(v, dict) else "[]"
    return json.dumps(str(v), ensure_ascii=False)


def default_prefix(folder: str | os.PathLike) -> str:
    return f"{DEFAULT_PREFIX_ROOT}/{Path(folder).resolve().name}"


def _pages(kind: Kind, trial: str, rows: list[KeyRow], prefix: str, strict: bool) -> list[dict]:
    """The page configs of one trial: one, except for page types whose pages share the trial id
    (one per stimulus, see the module docstring)."""
    page = _page(kind, trial, rows, prefix, strict)
    if kind.page_type not in SHARED_ID_TYPES:
        return [page]
    return [{**page, "stimuli": {k: v}} for k, v in page["stimuli"].items()]


def _page(kind: Kind, trial: str, rows: list[KeyRow], prefix: str, strict: bool) -> dict:
    path = lambda r: f"{prefix}/{r.file}" if prefix else r.file  # noqa: E731
    reference = next((path(r) for r in rows if r.role == REFERENCE), None)
    stimuli = {r.stimulus: path(r) for r in rows if r.role in (ANCHOR35, ANCHOR70, CONDITION)}
    page: dict = {"type": kind.page_type, "id": trial, "name": kind.title, "content": kind.instructions}
    page.update(PAGE_FIELDS[kind.page_type](reference, stimuli, strict))
    return page


def _mushra_fields(reference: str | None, stimuli: dict[str, str], strict: bool) -> dict:
    return dict(
        showWaveform=True,
        enableLooping=True,
        strict=strict,
        reference=reference,
        createAnchor35=False,
        createAnchor70=False,
        randomize=True,
        showConditionNames=False,
        stimuli=stimuli,
    )


def _paired_comparison_fields(reference: str | None, stimuli: dict[str, str], strict: bool) -> dict:
    return dict(showWaveform=False, enableLooping=True, reference=reference, stimuli=stimuli)


def _likert_fields(reference: str | None, stimuli: dict[str, str], strict: bool) -> dict:
    """Every stimulus rated on the ACR scale."""
    return dict(
        mustRate=True,
        mustPlayback="ended",
        stimuli=stimuli,
        response=[{"value": v, "label": label} for v, label in reversed(ACR_SCALE)],
    )


# A trial page's keys beyond type, id, name and content, by page type (the ones the export writes)
PAGE_FIELDS = {
    "mushra": _mushra_fields,
    "paired_comparison": _paired_comparison_fields,
    "likert_multi_stimulus": _likert_fields,
    "likert_single_stimulus": _likert_fields,
}
AUDIO_PAGE_TYPES = tuple(PAGE_FIELDS)


# ---------------------------------------------------------------------------------------------
# The checker: webMUSHRA's checks, run on the written files


def check_config(config: dict, folder: str | os.PathLike, prefix: str) -> list[str]:
    """Problems webMUSHRA would report for ``config`` with the files under ``folder`` (paths in
    the config are ``<prefix>/<path in folder>``): missing top-level keys, a bad buffer size, a
    last page that is not ``finish``, duplicate trial ids, missing files, and per trial files
    that differ in sample rate, length or channel count; for mushra pages with ``strict`` (the
    default) more than MUSHRA_MAX_STIMULI stimuli or a stimulus longer than MUSHRA_MAX_SECONDS.
    An empty list means the config passes."""
    problems = [
        f"missing top-level key '{k}'"
        for k in ("testname", "testId", "bufferSize", "stopOnErrors", "remoteService", "pages")
        if k not in config
    ]
    if config.get("bufferSize") not in BUFFER_SIZES:
        problems.append(f"bufferSize {config.get('bufferSize')} is not one of {BUFFER_SIZES}")
    pages = list(_walk_pages(config.get("pages") or []))
    if not pages or pages[-1].get("type") != "finish":
        problems.append("the last page must be of type finish")
    problems += [
        f"page {p.get('id') or p.get('name')!r}: type {p.get('type')!r} is not a webMUSHRA page type "
        f"(webMUSHRA says 'Type not specified.')"
        for p in pages
        if p.get("type") not in WEBMUSHRA_PAGE_TYPES
    ]
    ids = defaultdict(int)
    for page in pages:
        if page.get("type") in AUDIO_PAGE_TYPES:
            ids[page.get("id")] += page.get("type") not in SHARED_ID_TYPES
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
    if page.get("type") in STRICT_PAGE_TYPES and page.get("strict") is not False:
        graded = len(stimuli) + 1  # + the hidden reference webMUSHRA adds
        if graded > MUSHRA_MAX_STIMULI:
            problems.append(
                f"{where}: {graded} stimuli with the hidden reference; strict allows at most {MUSHRA_MAX_STIMULI}"
            )
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
        path = path[len(head) :]
    return folder / path


def group_trials(rows: list[KeyRow]) -> dict[str, list[KeyRow]]:
    """Key rows grouped by trial, trials and rows in key order; the hidden reference rows are
    left out (the tools make their own from the reference)."""
    out: dict[str, list[KeyRow]] = {}
    for r in rows:
        if r.role != HIDDEN_REFERENCE:
            out.setdefault(r.trial, []).append(r)
    return out
