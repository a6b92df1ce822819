"""What the listening-test apps give back, read into one form: answer rows in webMUSHRA's
column names, each with the listener who gave it.

webMUSHRA (its service/write.php appends to ``results/<testId>/<type>.csv``; columns
``session_test_id, <questionnaire answers>, [session_uuid,] trial_id, ...``):

    mushra.csv             trial_id, rating_stimulus, rating_score, ...
    paired_comparison.csv  trial_id, choice_reference, choice_non_reference, choice_answer, ...   (abx)
    lms.csv                trial_id, stimuli_rating (" 3 ", padded), stimuli, rating_time       (ab: the
                           two stimuli of a pair rated on one page; the higher rated is preferred)
    lss.csv                trial_id, stimuli_rating (or stimuli_rating1..N), stimuli, ...        (mos)

BeaqleJS (the file "download results" gives, ``<date>_<name>.txt``, or what its
beaqleJS_Service.php stores, ``web_service/results/*.txt``: the same JSON): a JSON array, one
element per test set in config order, then the listener's ``{UserName, UserEmail, UserComment}``:

    mushra  {"TestID", "rating": {file key: score}, ...}; the "Reference" key is the hidden reference
    abx     true / false (X identified) by position; the set is the config's set at that index
    ab      {"TestID", "PresentationOrder": "A=B, B=A", "Preference": "A"}: the on-screen letter,
            un-swapped here through the presentation order

A folder of BeaqleJS files is one listening session per file.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ...config import ConfigError
from . import beaqle
from .key import HIDDEN_REFERENCE_STIMULUS, KeyRow
from .kinds import KINDS, Kind
from .webmushra import LISTENER_FIELD, group_trials

# The columns that identify the CSV webMUSHRA's service writes for each page type, tried in this
# order. Its two likert pages write the same columns, to lss.csv and lms.csv: the test's
# export.json, else the file's name, says which kind of test the file is from.
LIKERT_COLUMNS = ("trial_id", "stimuli")
PAGE_COLUMNS = {
    "mushra": ("trial_id", "rating_stimulus", "rating_score"),
    "paired_comparison": ("trial_id", "choice_non_reference", "choice_answer"),
    "likert_single_stimulus": LIKERT_COLUMNS,
    "likert_multi_stimulus": LIKERT_COLUMNS,
}
LIKERT_FILES = {"lss": "likert_single_stimulus", "lms": "likert_multi_stimulus"}  # result file -> its page type
PREFERENCE_COLUMNS = ("trial_id", "choice_answer")  # a hand-made preference CSV: the chosen stimulus per trial
SESSION_COLUMN = "session_uuid"
NOT_PARTICIPANT = ("session_test_id", "session_uuid", "date")  # webMUSHRA columns around the participant fields
ONE_LISTENER = "listener"
NO_CHOICE = ("undecided", "unknown", "")
BEAQLE_REFERENCE = "Reference"  # BeaqleJS's name of the MUSHRA (hidden) reference
BEAQLE_USER_KEYS = ("UserName", "UserEmail", "UserComment")
BEAQLE_SUFFIXES = (".txt", ".json")


@dataclass
class Answers:
    """Answer rows (webMUSHRA's column names), the listener of each, and how listeners were told apart."""

    kind: Kind
    rows: list[dict[str, str]]
    listener: Callable[[dict], str]
    identified_by: str
    source: str  # webmushra | beaqlejs | csv


def read_answers(path: Path, kind: Kind | None, key: list[KeyRow], listener_column: str) -> Answers:
    """The answers in ``path`` (a webMUSHRA CSV, a BeaqleJS results file, or a folder of the
    latter) for a test of ``kind`` (None: decide from the file)."""
    if not path.exists():
        raise ConfigError(f"results={path}: no such file or folder")
    if path.is_dir() or _is_json(path):
        if kind is None:
            raise ConfigError(f"results={path}: BeaqleJS results do not say the kind of test; give kind=")
        return _beaqle(path, kind, key)
    header, rows = _read_csv(path)
    page = next((t for t, columns in PAGE_COLUMNS.items() if _holds(header, columns)), None)
    if page is not None:
        fits = [k for k in KINDS.values() if PAGE_COLUMNS[k.page_type] == PAGE_COLUMNS[page]]
    else:  # webMUSHRA's paired_comparison.csv holds a preference CSV's columns too: tried last
        fits = [k for k in KINDS.values() if k.preference and _holds(header, PREFERENCE_COLUMNS)]
    if kind is not None and kind not in fits:
        missing = [c for c in _columns(kind) if c not in header]
        raise ConfigError(f"results={path}: missing column(s) {', '.join(missing)} for kind={kind.name}")
    if not fits:
        raise ConfigError(
            f"results={path}: not a webMUSHRA result file (columns: {', '.join(header)}); expected "
            + "; or ".join(f"{k.name}: {', '.join(_columns(k))}" for k in KINDS.values())
        )
    likert = page in LIKERT_FILES.values()
    if likert:
        kind = kind or next((k for k in fits if k.page_type == LIKERT_FILES.get(path.stem)), None)
        if kind is None:
            raise ConfigError(
                f"results={path}: a likert result file is "
                + " or ".join(
                    f"{k.name} ({stem}.csv)"
                    for stem, page_type in LIKERT_FILES.items()
                    for k in fits
                    if k.page_type == page_type
                )
                + "; give kind="
            )
    kind = kind or fits[0]
    listener, identified_by = _listener(header, rows, listener_column, path)
    if likert and kind.preference:
        rows = _preferences_from_ratings(rows, listener)
        return Answers(kind, rows, lambda r: r[ONE_LISTENER], identified_by, "webmushra")
    if likert:
        rows = [{**r, "stimuli_rating": _first_rating(r)} for r in rows]
    return Answers(kind, rows, listener, identified_by, "csv" if header[0] == "trial_id" else "webmushra")


def _holds(header: list[str], columns: tuple[str, ...]) -> bool:
    return all(c in header for c in columns)


def _columns(kind: Kind) -> tuple[str, ...]:
    """The columns a result file of ``kind`` must have: a preference CSV's for a preference test
    (its webMUSHRA lms.csv has a likert page's)."""
    return PREFERENCE_COLUMNS if kind.preference else PAGE_COLUMNS[kind.page_type]


# ---------------------------------------------------------------------------------------------
# webMUSHRA


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows, values stripped (webMUSHRA pads likert ratings with spaces)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
    if not rows:
        raise ConfigError(f"results={path}: no answers in the file")
    return header, rows


def _listener(header: list[str], rows: list[dict], column: str, path: Path) -> tuple[Callable[[dict], str], str]:
    """row -> listener: the named column; auto: the export's listener id field, else
    session_uuid (each when it holds values: the 1.4.3 client leaves master's session_uuid
    column empty), else the participant columns together, else one listener for the file."""
    if column != "auto":
        if column not in header:
            raise ConfigError(f"listener={column}: no such column in {path} (columns: {', '.join(header)})")
        return (lambda row: row[column]), f"column {column}"
    for c in (LISTENER_FIELD, SESSION_COLUMN):
        if c in header and any(r.get(c) for r in rows):
            return (lambda row: row[c]), f"column {c}"
    end = header.index("trial_id")
    participant = [c for c in header[:end] if c not in NOT_PARTICIPANT and any(r.get(c) for r in rows)]
    if participant:
        return (lambda row: "|".join(row[c] for c in participant)), f"columns {', '.join(participant)}"
    return (lambda row: ONE_LISTENER), (
        "none: the file has no listener id, session or participant column, so every answer is counted as one listener's"
    )


def _first_rating(row: dict) -> str:
    """lss.csv's rating: ``stimuli_rating``, or ``stimuli_rating1`` of several scales."""
    return row.get("stimuli_rating", row.get("stimuli_rating1", ""))


def _preferences_from_ratings(rows: list[dict], listener) -> list[dict]:
    """lms.csv (ab): per listener and pair, the stimulus rated higher is the choice; equal or
    missing ratings are no choice."""
    pairs: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for r in rows:
        pairs[listener(r), r["trial_id"]].append((r["stimuli"], r.get("stimuli_rating", "")))
    out = []
    for (who, trial), rated in pairs.items():
        scores = {s: _number(v) for s, v in rated}
        known = {s: v for s, v in scores.items() if v is not None}
        choice = "unknown"
        if len(known) == 2:
            (a, va), (b, vb) = known.items()
            choice = a if va > vb else b if vb > va else "undecided"
        out.append({"trial_id": trial, "choice_answer": choice, ONE_LISTENER: who})
    return out


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "NA": not rated


# ---------------------------------------------------------------------------------------------
# BeaqleJS


def _is_json(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(64).lstrip()[:1] == b"["


def _beaqle(path: Path, kind: Kind, key: list[KeyRow]) -> Answers:
    if not beaqle.supported(kind):
        raise ConfigError(f"kind={kind.name}: BeaqleJS has no {kind.name} test")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in BEAQLE_SUFFIXES) if path.is_dir() else [path]
    if not files:
        raise ConfigError(f"results={path}: no BeaqleJS result files ({' or '.join(BEAQLE_SUFFIXES)}) in this folder")
    sets = beaqle.build_config(kind, group_trials(key), "", "")["Testsets"]  # the export's own sets, in order
    rows: list[dict] = []
    for f in files:
        session, user = _beaqle_file(f, len(sets))
        who = user.get("UserName", "").strip() or f.stem
        for i, result in enumerate(session):
            where = f"results={f}: test set {i + 1} ({sets[i]['TestID']})"
            rows += [{**r, ONE_LISTENER: who} for r in BEAQLE_ROWS[kind.beaqle_class](result, sets[i], where)]
    if not rows:
        raise ConfigError(f"results={path}: no answers in the file(s)")
    return Answers(kind, rows, lambda r: r[ONE_LISTENER], "BeaqleJS UserName (else the file name)", "beaqlejs")


def _beaqle_file(f: Path, num_sets: int) -> tuple[list, dict]:
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"results={f}: not a BeaqleJS result file ({' '.join(str(e).split())[:120]})") from None
    if not isinstance(data, list):
        raise ConfigError(f"results={f}: not a BeaqleJS result file (expected a JSON array)")
    users = [e for e in data if isinstance(e, dict) and any(k in e for k in BEAQLE_USER_KEYS)]
    session = [e for e in data if not (isinstance(e, dict) and any(k in e for k in BEAQLE_USER_KEYS))]
    if len(session) != num_sets:
        raise ConfigError(
            f"results={f}: {len(session)} test results, the key's test has {num_sets} test sets (wrong key.csv?)"
        )
    return session, users[-1] if users else {}  # every submit/download click appends a user object


def _beaqle_abx(result, test_set: dict, where: str) -> list[dict]:
    if isinstance(result, dict):
        return []  # a set this listener was not given (MaxTestsPerRun)
    if not isinstance(result, bool):
        raise ConfigError(f"{where}: expected true or false")
    return [
        {
            "trial_id": test_set["Name"],
            "choice_non_reference": test_set["TestID"],
            "choice_answer": "correct" if result else "incorrect",
        }
    ]


def _beaqle_mushra(result, test_set: dict, where: str) -> list[dict]:
    _check_set(result, test_set, where)
    if "rating" not in result:
        return []
    trial = test_set["TestID"]
    return [
        {
            "trial_id": trial,
            "rating_stimulus": HIDDEN_REFERENCE_STIMULUS if k == BEAQLE_REFERENCE else k,
            "rating_score": str(v),
        }
        for k, v in result["rating"].items()
    ]


def _beaqle_preference(result, test_set: dict, where: str) -> list[dict]:
    _check_set(result, test_set, where)
    if "PresentationOrder" not in result:
        return []  # not given
    shown = dict(part.strip().split("=", 1) for part in result["PresentationOrder"].split(","))  # letter -> file key
    preference = result.get("Preference")
    if preference is None:
        return [{"trial_id": test_set["TestID"], "choice_answer": "unknown"}]
    if preference not in shown or shown[preference] not in test_set["Files"]:
        raise ConfigError(f"{where}: Preference {preference!r} is not one of {sorted(shown)}")
    chosen = Path(test_set["Files"][shown[preference]]).stem  # the stimulus (file stem)
    return [{"trial_id": test_set["TestID"], "choice_answer": chosen}]


def _check_set(result, test_set: dict, where: str) -> None:
    if not isinstance(result, dict) or result.get("TestID") != test_set["TestID"]:
        raise ConfigError(f"{where}: holds {str(result)[:60]!r}, not that set's result (wrong key.csv?)")


# One test set's result as answer rows, by BeaqleJS test class
BEAQLE_ROWS = {"MushraTest": _beaqle_mushra, "AbxTest": _beaqle_abx, "PrefTest": _beaqle_preference}
