"""Fixtures shared across the test tree: a tiny trained model on a small synthetic corpus."""
import subprocess
import sys
from pathlib import Path

import pytest

from audio_vq import prepare, train
from audio_vq.config import compose, compose_run

from tiny import TINY


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory) -> Path:
    """A folder holding synthetic/ (1 minute, 4 speakers, with .lab alignments), data/ (its
    manifest) and run/model/ (a tiny model trained 3 steps). Shared: tests must not modify it."""
    root = tmp_path_factory.mktemp("tiny_trained")
    prepare.run(compose("prepare", ["corpus=synthetic", f"root={root / 'synthetic'}", f"out={root / 'data'}",
                                    "corpus.minutes=1.0", "corpus.num_speakers=4", "num_workers=0"]))
    cfg, folder = compose_run("train", [f"data.manifest={root / 'data'}", f"hydra.run.dir={root / 'run'}",
                                        "train.max_steps=3", "train.log_every=1", *TINY])
    train.run(cfg, folder)
    return root


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
