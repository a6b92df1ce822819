"""Every Python block of the README runs, in order, in one namespace (as lucidrains' test_readme
does), so the documented API cannot drift from the code. The blocks use the demo's paths; this
test lays out a small stand-in: exp/demo/{train/model, data, units/units.txt} from the tiny
pitch model (a pitch model, as the demo's), and speech.wav."""

import os
import re
import shutil
from pathlib import Path

import audio_vq

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def test_the_readme_has_its_python_blocks():
    blocks = python_blocks()
    assert len(blocks) >= 4 and any("audio_vq.load(" in b for b in blocks)  # the reader is not silently empty


def test_every_python_block_of_the_readme_runs(tiny_pitch, tiny_trained, tmp_path, monkeypatch):
    demo = tmp_path / "exp" / "demo"
    (demo / "train").mkdir(parents=True)
    shutil.copytree(tiny_pitch / "model", demo / "train" / "model")
    shutil.copytree(tiny_trained / "data", demo / "data")
    first = next(iter(sorted((tiny_trained / "synthetic").rglob("*.wav"))))
    shutil.copy(first, tmp_path / "speech.wav")
    monkeypatch.chdir(tmp_path)
    audio_vq.extract(
        model=demo / "train" / "model",
        input=demo / "data",
        output=demo / "units" / "units.txt",
        pitch_bins=8,
        num_workers=0,
    )
    namespace = {"__name__": "__main__"}
    for i, block in enumerate(python_blocks()):
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"README.md python block {i + 1} fails: {type(e).__name__}: {e}\n{block}") from e
    assert (tmp_path / "exp" / "api" / "eval" / "report.md").is_file()
    assert sorted(os.listdir(tmp_path / "exp" / "api" / "converted"))  # the last command of the demo block wrote
