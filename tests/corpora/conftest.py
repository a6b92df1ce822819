"""Fixtures shared by the corpus scanner tests: tiny real audio files and the corpus configs."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

import audio_vq.configs
from audio_vq.corpora import get_scanner

CONFIG_DIR = Path(audio_vq.configs.__file__).parent / "corpus"
TONE_HZ = 220.0
TONE_AMPLITUDE = 0.3


@pytest.fixture
def write_audio():
    """write(path, sample_rate, seconds=0.1, subtype=None) -> path: a short tone in a real file,
    format from the suffix, parent folders created."""

    def write(path: Path, sample_rate: int, seconds: float = 0.1, subtype: str | None = None) -> Path:
        t = np.arange(int(sample_rate * seconds)) / sample_rate
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(
            str(path),
            (TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32),
            sample_rate,
            subtype=subtype,
        )
        return path

    return write


@pytest.fixture
def write_text():
    """write(path, text) -> path, parent folders created."""

    def write(path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def corpus_config():
    """config(name) -> the options of configs/corpus/<name>.yaml (its `name` key checked and
    removed), after asserting they are exactly the keyword arguments of the scanner, with its
    defaults: the config mirrors the function."""

    def load(name: str) -> dict:
        options = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / f"{name}.yaml"))
        assert options.pop("defaults") == [f"/{name}_corpus_schema@_here_", "_self_"]  # typed by its schema
        assert options.pop("name") == name
        scan = get_scanner(name)
        params = dict(list(inspect.signature(scan).parameters.items())[1:])  # all but root
        assert set(options) == set(params)
        for key, value in options.items():
            default = params[key].default
            assert (list(default) if isinstance(default, tuple) else default) == value, key
        return options

    return load
