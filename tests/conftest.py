"""Fixtures shared across the test tree: a tiny trained model on a small synthetic corpus."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from audio_vq.config import compose, compose_run
from audio_vq.stages import prepare, train

from tiny import RESIDUAL_LEVELS, TINY


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory) -> Path:
    """A folder holding synthetic/ (1 minute, 4 speakers, with .lab alignments), data/ (its
    manifest) and run/model/ (a tiny model trained 3 steps). Shared: tests must not modify it."""
    root = tmp_path_factory.mktemp("tiny_trained")
    prepare.run(
        compose(
            "prepare",
            [
                "corpus=synthetic",
                f"root={root / 'synthetic'}",
                f"out={root / 'data'}",
                "corpus.minutes=1.0",
                "corpus.num_speakers=4",
                "num_workers=0",
            ],
        )
    )
    cfg, folder = compose_run(
        "train",
        [
            f"data.manifest={root / 'data'}",
            f"hydra.run.dir={root / 'run'}",
            "train.max_steps=3",
            "train.log_every=1",
            *TINY,
        ],
    )
    train.run(cfg, folder)
    return root


@pytest.fixture(scope="session")
def tiny_residual(tiny_trained, tmp_path_factory) -> Path:
    """The model directory of tiny_trained's model with a residual quantizer of RESIDUAL_LEVELS
    levels (trained 3 steps on the same manifest)."""
    run = tmp_path_factory.mktemp("tiny_residual") / "run"
    cfg, folder = compose_run(
        "train",
        [
            f"data.manifest={tiny_trained / 'data'}",
            f"hydra.run.dir={run}",
            "train.max_steps=3",
            *TINY,
            "model/quantizer=residual",
            f"model.quantizer.num_quantizers={RESIDUAL_LEVELS}",
        ],
    )
    train.run(cfg, folder)
    return run / "model"


@pytest.fixture(scope="session")
def tiny_hierarchical(tiny_trained, tmp_path_factory) -> Path:
    """The model directory of tiny_trained's model with the hierarchy's two levels, the top's
    code spanning HIERARCHY_RATIO frames (trained 3 steps on the same manifest)."""
    run = tmp_path_factory.mktemp("tiny_hierarchical") / "run"
    cfg, folder = compose_run(
        "train",
        [
            f"data.manifest={tiny_trained / 'data'}",
            f"hydra.run.dir={run}",
            "train.max_steps=3",
            *TINY,
            "model/quantizer=hierarchical",
            "model.quantizer.top_strides=[2,2]",
            "model.quantizer.top_channels=8",
        ],
    )
    train.run(cfg, folder)
    return run / "model"


@pytest.fixture(scope="session")
def tiny_pitch(tiny_trained, tmp_path_factory) -> Path:
    """The run folder of a tiny model with pitch=excitation (2 harmonics) trained 3 steps on
    tiny_trained's data, its contours tracked with DIO (fast)."""
    run = tmp_path_factory.mktemp("tiny_pitch") / "run"
    cfg, folder = compose_run(
        "train",
        [
            f"data.manifest={tiny_trained / 'data'}",
            f"hydra.run.dir={run}",
            "train.max_steps=3",
            *TINY,
            "model.decoder.pitch=excitation",
            "model.decoder.harmonics=2",
            "data.pitch_tracker=dio",
        ],
    )
    train.run(cfg, folder)
    return run


# Holds the lock <folder>/<name> (as a running command would) until killed.
_LOCK_HOLDER = """
import sys, time
from audio_vq.outputs import exclusive
with exclusive(sys.argv[1], "x", sys.argv[2]):
    print("held", flush=True)
    time.sleep(300)
"""


@pytest.fixture
def hold_lock():
    """``hold_lock(folder, name=".lock")`` starts a process holding that lock and returns it
    (a Popen); ``.kill()`` it (SIGKILL: no cleanup runs) to release. Killed at teardown."""
    started = []

    def hold(folder, name=".lock"):
        p = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, str(folder), name], stdout=subprocess.PIPE, text=True)
        started.append(p)
        assert p.stdout.readline().strip() == "held"
        return p

    yield hold
    for p in started:
        p.kill()
        p.wait()


# webMUSHRA parses its config with yamljs 0.3.0 (its lib/external/yaml/yaml.min.js); .ci/run
# installs that npm package under Debian's node into this folder.
NODE_DIR = Path(os.environ.get("AUDIO_VQ_NODE_DIR", "~/.cache/audio_vq/node")).expanduser()
_YAMLJS = """
const YAML = require('yamljs');
let text = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { text += chunk; });
process.stdin.on('end', () => { process.stdout.write(JSON.stringify(YAML.parse(text))); });
"""


@pytest.fixture(scope="session")
def yamljs():
    """``yamljs(text)``: what webMUSHRA's YAML parser makes of ``text`` (via node). Skipped where
    node or the package is missing, except under CI (CI=true), where .ci/run installs them."""
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "yamljs").is_dir():
        message = f"node and the npm package yamljs (in {NODE_DIR}) are needed: see .ci/run"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

    def parse(text: str):
        r = subprocess.run(
            [node, "-e", _YAMLJS],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "NODE_PATH": str(NODE_DIR / "node_modules")},
        )
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    return parse
