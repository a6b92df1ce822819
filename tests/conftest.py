"""Fixtures shared across the test tree: a tiny trained model on a small synthetic corpus."""
from pathlib import Path

import pytest

from audio_vq import prepare, train
from audio_vq.config import compose, compose_run

INFERENCE = "audio_vq.configs.inference"
# A model that trains 3 steps in seconds: hop 16 (1000 frames/s), K = 16, a 4-layer WaveNet.
TINY = ["model.encoder.channels=16", "model.encoder.strides=[2,2,2,2]", "model.quantizer.dim=8",
        "model.quantizer.codebook_size=16", "model.decoder.stacks=1", "model.decoder.layers_per_stack=4",
        "model.decoder.residual_channels=16", "model.decoder.gate_channels=32", "model.decoder.skip_channels=32",
        "model.decoder.speaker_dim=4", "data.crop_seconds=0.064", "train.batch_size=4", "data.num_workers=0"]
TINY_HOP = 16


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory) -> Path:
    """A folder holding synthetic/ (1 minute, 4 speakers, with .lab alignments), data/ (its
    manifest) and run/model/ (a tiny model trained 3 steps). Shared: tests must not modify it."""
    root = tmp_path_factory.mktemp("tiny_trained")
    prepare.run(compose("prepare", ["corpus=synthetic", f"root={root / 'synthetic'}", f"out={root / 'data'}",
                                    "corpus.minutes=1.0", "corpus.num_speakers=4", "num_workers=0"]))
    cfg, folder = compose_run("train", [f"data.manifest={root / 'data'}", f"hydra.run.dir={root / 'run'}",
                                        "train.max_steps=3", *TINY])
    train.run(cfg, folder)
    return root
