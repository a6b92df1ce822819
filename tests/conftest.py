"""Fixtures shared across the test tree: a tiny trained model on a small synthetic corpus."""
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
