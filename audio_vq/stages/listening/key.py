"""The key of a blinded listening test: ``key.csv``, one row per stimulus file.

The export writes it; the results analysis reads it back to de-anonymise the answers. Columns:

    file            the stimulus, relative to the test folder (stimuli/t03_5f2a1.wav)
    trial           the trial (page) it belongs to (t03)
    stimulus        the name the test tools report for it: the file's stem, except for the
                    hidden reference of a MUSHRA trial, which webMUSHRA and BeaqleJS add by
                    themselves from the reference and report as "reference"
    role            reference | hidden_reference | anchor35 | anchor70 | condition
    system          reference (the original) | anchor35 | anchor70 | reconstruction |
                    conversion | the name of another system given with systems.<name>=<folder>
    utterance       the manifest id of the utterance
    speaker         its speaker
    target_speaker  the speaker identity the model decoded with (reconstruction: the speaker
                    itself; conversion: the target); empty for files the model did not make
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ...atomic import atomic_write_text
from ...config import ConfigError

KEY_NAME = "key.csv"
EXPORT_NAME = "export.json"  # the export's summary (kind, settings), beside key.csv
PRIVATE_DIR = "private"  # what listeners must not fetch: the key, export.json, generated audio, the named page
SERVE_DIR = "serve"  # what listeners may fetch: the app configs and the anonymised stimuli

# Roles of a stimulus within its trial
REFERENCE = "reference"  # the original, played as the open reference (never rated itself)
HIDDEN_REFERENCE = "hidden_reference"  # the original again, rated blind (MUSHRA)
ANCHOR35 = "anchor35"  # ITU-R BS.1534-3 low anchor: the reference low-passed at 3.5 kHz
ANCHOR70 = "anchor70"  # ITU-R BS.1534-3 mid-range anchor: low-passed at 7 kHz
CONDITION = "condition"  # a system under test
ROLES = (REFERENCE, HIDDEN_REFERENCE, ANCHOR35, ANCHOR70, CONDITION)

# Systems the export makes itself; other systems get the names given in `systems`
ORIGINAL = "reference"
RECONSTRUCTION = "reconstruction"
CONVERSION = "conversion"
BUILTIN_SYSTEMS = (ORIGINAL, ANCHOR35, ANCHOR70, RECONSTRUCTION, CONVERSION, HIDDEN_REFERENCE)

# The name webMUSHRA (and BeaqleJS) report for the hidden reference they add to a MUSHRA trial
HIDDEN_REFERENCE_STIMULUS = "reference"


@dataclass(frozen=True)
class KeyRow:
    """One stimulus file of the test and what it really is."""

    file: str
    trial: str
    stimulus: str
    role: str
    system: str
    utterance: str
    speaker: str
    target_speaker: str = ""


COLUMNS = tuple(f.name for f in fields(KeyRow))


def write_key(folder: str | os.PathLike, rows: list[KeyRow]) -> Path:
    """``<folder>/key.csv`` (atomic), rows in the order given."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    return atomic_write_text(Path(folder) / KEY_NAME, buf.getvalue())


def key_path(path: str | os.PathLike) -> Path:
    """A key CSV given as itself, its folder, or the export folder (``<out>/private/key.csv``)."""
    path = Path(path).expanduser()
    if path.is_dir():
        private = path / PRIVATE_DIR / KEY_NAME
        path = private if private.is_file() else path / KEY_NAME
    return path


def read_key(path: str | os.PathLike) -> list[KeyRow]:
    """Read a key CSV (or the test folder holding key.csv); ConfigError naming the problem."""
    path = key_path(path)
    if not path.is_file():
        raise ConfigError(f"key={path}: no such file")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(
                f"key={path}: missing column(s) {', '.join(missing)} (is this a key.csv from export-listening-test?)"
            )
        rows = [KeyRow(**{c: (r[c] or "") for c in COLUMNS}) for r in reader]
    bad = [r for r in rows if r.role not in ROLES]
    if bad:
        raise ConfigError(f"key={path}: unknown role {bad[0].role!r} for {bad[0].file}")
    return rows
