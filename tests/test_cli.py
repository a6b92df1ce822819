"""The `audio-vq` console script: help, one-line errors, a real prepare run."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from audio_vq.commands import COMMANDS
from audio_vq.config import group_options

# the console script installed beside this interpreter (a venv's bin/, or pyenv's), else PATH's
SCRIPT = Path(sys.executable).with_name("audio-vq")
SCRIPT = str(SCRIPT) if SCRIPT.exists() else shutil.which("audio-vq")


def cli(*args, cwd=None):
    assert SCRIPT, "the audio-vq console script is not installed (pip install -e .)"
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_help_lists_commands_and_keys():
    r = cli("--help")
    assert r.returncode == 0
    for name in COMMANDS:
        assert f"  {name}" in r.stdout
    r = cli("prepare", "--help")
    assert r.returncode == 0
    for key in ("root:", "out:", "cache_audio:", "num_workers:", "holdout_speakers:", "fairseq_tsv:"):
        assert key in r.stdout
    corpora = {"vctk", "librispeech", "ljspeech", "folder", "synthetic", "lhotse", "hf"}
    for option in corpora:
        assert f"corpus={option}  (keys" in r.stdout
    assert "mic:" in r.stdout  # a corpus option's own keys are listed too
    assert set(group_options("corpus")) == corpora


def test_errors_are_one_line_naming_the_key(tmp_path):
    cases = [
        (("prepare", "root=x", f"out={tmp_path}"), "corpus"),
        (("prepare", "corpus=vctk", f"out={tmp_path}"), "root"),
        (("prepare", "corpus=nope", "root=x", "out=y"), "corpus=nope"),
        (("prepare", "corpus=folder", "root=x", "out=y", "colour=red"), "colour"),
        (("prepare", "corpus=folder", "root=x", "out=y", "split.valid=2"), "split.valid"),
        (("prepare", "corpus=vctk", f"root={tmp_path / 'missing'}", f"out={tmp_path / 'o'}"), "missing"),
        (("frobnicate",), "frobnicate"),
    ]
    for args, word in cases:
        r = cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and word in lines[0], (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_prepare_folder_from_the_command_line(tmp_path):
    for spk in ("alice", "bob"):
        for i in range(4):
            path = tmp_path / "c" / spk / f"{spk}{i}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, np.full(1600, 0.1, np.float32), 16_000)
    r = cli(
        "prepare",
        "corpus=folder",
        f"root={tmp_path / 'c'}",
        f"out={tmp_path / 'out'}",
        "split.valid=0.25",
        "split.test=0",
    )
    assert r.returncode == 0, r.stderr
    assert "train:       6 utterances" in r.stdout and "valid:       2 utterances" in r.stdout
    assert (tmp_path / "out" / "manifest.jsonl").exists() and (tmp_path / "out" / "prepare.yaml").exists()


def test_module_entry_point_matches_console_script():
    r = subprocess.run([sys.executable, "-m", "audio_vq.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("audio-vq ")
