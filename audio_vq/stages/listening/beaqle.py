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

from ...atomic import atomic_write_text
from .key import ANCHOR35, ANCHOR70, CONDITION, REFERENCE, KeyRow

BEAQLEJS_NAME = "beaqlejs_config.js"
DEFAULT_PREFIX_ROOT = "audio"
TEST_CLASSES = {"mushra": "MushraTest", "abx": "AbxTest", "ab": "PrefTest"}  # mos: none
MUSHRA_SCALE = (0, 100)  # BS.1534-3 continuous quality scale


def supported(kind: str) -> bool:
    return kind in TEST_CLASSES


def default_prefix(folder: str | os.PathLike) -> str:
    return f"{DEFAULT_PREFIX_ROOT}/{Path(folder).resolve().name}"


def build_config(kind: str, trials: dict[str, list[KeyRow]], prefix: str, test_name: str) -> dict:
    """The TestConfig object for ``kind`` (mushra, abx or ab)."""
    path = lambda r: f"{prefix}/{r.file}" if prefix else r.file  # noqa: E731
    config: dict = {"TestName": test_name, "LoopByDefault": False, "ShowFileIDs": False, "ShowResults": False,
                    "EnableABLoop": True, "EnableOnlineSubmission": False, "BeaqleServiceURL": "",
                    "SupervisorContact": "", "RandomizeTestOrder": True, "MaxTestsPerRun": -1}
    sets = []
    if kind == "mushra":
        config.update(RateScalePng="img/scale_abs.png", RateScaleBgPng="img/scale_abs_background.png",
                      RateMinValue=MUSHRA_SCALE[0], RateMaxValue=MUSHRA_SCALE[1], RateDefaultValue=MUSHRA_SCALE[0],
                      RequireMaxRating=False)
        for trial, rows in trials.items():
            files = {"Reference": path(next(r for r in rows if r.role == REFERENCE))}
            files.update({r.stimulus: path(r) for r in rows if r.role in (ANCHOR35, ANCHOR70, CONDITION)})
            sets.append({"Name": trial, "TestID": trial, "Files": files})
    elif kind == "abx":
        for trial, rows in trials.items():
            ref = next(r for r in rows if r.role == REFERENCE)
            for r in (r for r in rows if r.role == CONDITION):
                sets.append({"Name": trial, "TestID": r.stimulus, "Files": {"A": path(ref), "B": path(r)}})
    else:  # ab: A and B in the (seeded, randomised) order of the key
        config["RandomizeFileOrder"] = True
        for trial, rows in trials.items():
            a, b = rows
            sets.append({"Name": trial, "TestID": trial, "Files": {"A": path(a), "B": path(b)}})
    config["Testsets"] = sets
    return config


def write_config(folder: str | os.PathLike, kind: str, config: dict) -> Path:
    """``beaqlejs_config.js``: the config as a JS variable (JSON is valid JavaScript)."""
    head = (f"// BeaqleJS config written by audio-vq export-listening-test ({kind}).\n"
            f"// In BeaqleJS's index.html load this file and start the test with:\n"
            f"//     testHandle = new {TEST_CLASSES[kind]}(TestConfig);\n")
    return atomic_write_text(Path(folder) / BEAQLEJS_NAME, f"{head}var TestConfig = {json.dumps(config, indent=2)};\n")
