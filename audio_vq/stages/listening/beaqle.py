"""A BeaqleJS config (``beaqlejs_config.js``) for an exported test: the alternative to webMUSHRA
that runs from static files.

BeaqleJS (github.com/HSU-ANT/beaqlejs) loads ``var TestConfig = {...}`` from a script named in
its ``index.html``, where one line picks the test class: ``new MushraTest(TestConfig)`` for
mushra (every "Files" entry, the "Reference" included, is graded blind, so the reference is
its own hidden reference), ``new AbxTest(TestConfig)`` for abx (A = the reference, B = the
system; BeaqleJS hides one of them as X) and ``new PrefTest(TestConfig)`` for ab. File paths are
relative to BeaqleJS's index.html: copy the export's folder to ``<beaqlejs>/audio/<folder
name>/`` (the `beaqlejs_prefix` key says where). BeaqleJS has no single-stimulus rating class,
so mos exports no BeaqleJS config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from ...atomic import atomic_write_text
from .key import ANCHOR35, ANCHOR70, CONDITION, REFERENCE, KeyRow
from .kinds import Kind

BEAQLEJS_NAME = "beaqlejs_config.js"
DEFAULT_PREFIX_ROOT = "audio"
MUSHRA_SCALE = (0, 100)  # BS.1534-3 continuous quality scale


def supported(kind: Kind) -> bool:
    return kind.beaqle_class is not None


def default_prefix(folder: str | os.PathLike) -> str:
    return f"{DEFAULT_PREFIX_ROOT}/{Path(folder).resolve().name}"


def build_config(kind: Kind, trials: dict[str, list[KeyRow]], prefix: str, test_name: str) -> dict:
    """The TestConfig object for ``kind`` (one BeaqleJS supports)."""
    path = lambda r: f"{prefix}/{r.file}" if prefix else r.file  # noqa: E731
    config: dict = {
        "TestName": test_name,
        "LoopByDefault": False,
        "ShowFileIDs": False,
        "ShowResults": False,
        "EnableABLoop": True,
        "EnableOnlineSubmission": False,
        "BeaqleServiceURL": "",
        "SupervisorContact": "",
        "RandomizeTestOrder": True,
        "MaxTestsPerRun": -1,
    }
    settings, sets = TEST_SETS[kind.beaqle_class](trials, path)
    config.update(settings)
    config["Testsets"] = sets
    return config


def _mushra_sets(trials: dict[str, list[KeyRow]], path: Callable[[KeyRow], str]) -> tuple[dict, list[dict]]:
    settings = dict(
        RateScalePng="img/scale_abs.png",
        RateScaleBgPng="img/scale_abs_background.png",
        RateMinValue=MUSHRA_SCALE[0],
        RateMaxValue=MUSHRA_SCALE[1],
        RateDefaultValue=MUSHRA_SCALE[0],
        RequireMaxRating=False,
    )
    sets = []
    for trial, rows in trials.items():
        files = {"Reference": path(next(r for r in rows if r.role == REFERENCE))}
        files.update({r.stimulus: path(r) for r in rows if r.role in (ANCHOR35, ANCHOR70, CONDITION)})
        sets.append({"Name": trial, "TestID": trial, "Files": files})
    return settings, sets


def _abx_sets(trials: dict[str, list[KeyRow]], path: Callable[[KeyRow], str]) -> tuple[dict, list[dict]]:
    sets = []
    for trial, rows in trials.items():
        ref = next(r for r in rows if r.role == REFERENCE)
        for r in (r for r in rows if r.role == CONDITION):
            sets.append({"Name": trial, "TestID": r.stimulus, "Files": {"A": path(ref), "B": path(r)}})
    return {}, sets


def _preference_sets(trials: dict[str, list[KeyRow]], path: Callable[[KeyRow], str]) -> tuple[dict, list[dict]]:
    """A and B in the (seeded, randomised) order of the key."""
    sets = []
    for trial, rows in trials.items():
        a, b = rows
        sets.append({"Name": trial, "TestID": trial, "Files": {"A": path(a), "B": path(b)}})
    return {"RandomizeFileOrder": True}, sets


# The config keys and test sets of each BeaqleJS test class
TEST_SETS = {"MushraTest": _mushra_sets, "AbxTest": _abx_sets, "PrefTest": _preference_sets}


def write_config(folder: str | os.PathLike, kind: Kind, config: dict) -> Path:
    """``beaqlejs_config.js``: the config as a JS variable (JSON is valid JavaScript)."""
    head = (
        f"// BeaqleJS config written by audio-vq export-listening-test ({kind.name}).\n"
        f"// In BeaqleJS's index.html load this file and start the test with:\n"
        f"//     testHandle = new {kind.beaqle_class}(TestConfig);\n"
    )
    return atomic_write_text(Path(folder) / BEAQLEJS_NAME, f"{head}var TestConfig = {json.dumps(config, indent=2)};\n")
