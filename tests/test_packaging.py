"""The built wheel carries the configs: commands compose from any working directory."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_wheel_ships_configs_and_composes_from_elsewhere(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next((tmp_path / "dist").glob("audio_vq-*.whl"))
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    code = (
        "import audio_vq, sys; from audio_vq.config import compose; "
        "assert audio_vq.__file__.startswith(sys.argv[1]), audio_vq.__file__; "
        "c = compose('train', ['model=phoneme25hz', 'model/quantizer=gumbel']); "
        "p = compose('prepare', ['corpus=vctk', 'root=r', 'out=o']); "
        "print(c.model.encoder.strides, c.model.quantizer.kind, p.corpus.mic)"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["[2,", "2,", "2,", "2,", "5,", "8]", "gumbel", "mic1"]


def test_every_package_is_listed_for_the_wheel():
    # pyproject lists the packages by hand (configs/ maps to audio_vq.configs): a new subpackage
    # left out of the list would be missing from every wheel.
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from setuptools import find_packages

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {p for p in find_packages(str(REPO), include=["audio_vq*"])}
    found |= {f"audio_vq.configs{'.' + p if p else ''}" for p in [""] + find_packages(str(REPO / "configs"))}
    assert listed == found


def test_editable_install_reads_the_top_level_configs():
    import audio_vq.configs

    assert Path(audio_vq.configs.__file__).resolve().parent == REPO / "configs"
