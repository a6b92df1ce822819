"""`audio-vq <command> -m`: sweeps through Hydra's multirun, a run folder per job, and extract as
an array job through hydra-submitit-launcher's submitit_local (the SLURM launcher's code path)."""

import shutil
import subprocess

import numpy as np
import pytest
import yaml

from audio_vq.units.formats import Record, UnitsMeta, read_units, write_units

SCRIPT = shutil.which("audio-vq")
PRIOR = [
    "prior.dim=16",
    "prior.layers=1",
    "prior.heads=2",
    "prior.max_len=24",
    "train.batch_size=4",
    "train.max_steps=2",
]


def cli(*args, cwd):
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture
def units(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "u.txt"
    write_units(
        path,
        [Record(f"u{i}", rng.integers(0, 16, 30)) for i in range(8)],
        UnitsMeta("gslm", 100.0, 16, 16000, "abc", False),
    )
    return path


def test_a_sweep_trains_a_run_folder_per_job(units, tmp_path):
    """Catches jobs sharing a folder, a job given another job's value, Hydra's own files in a run
    folder (training refuses those), the sweep's values not reaching the jobs."""
    sweep = tmp_path / "sweep"
    r = cli(
        "train-prior", "-m", f"units={units}", *PRIOR, "train.lr=1e-3,2e-3", f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    lrs = [yaml.safe_load((sweep / str(job) / "config.yaml").read_text())["train"]["lr"] for job in (0, 1)]
    assert lrs == [1e-3, 2e-3]
    for job in (0, 1):
        assert (sweep / str(job) / "prior" / "checksum.sha256").is_file()
        assert not (sweep / str(job) / ".hydra").exists()
    assert (sweep / "multirun.yaml").is_file()


def test_train_sweeps_the_same_way(tiny_trained, tmp_path):
    from tiny import TINY

    sweep = tmp_path / "sweep"
    keys = [f"data.manifest={tiny_trained / 'data'}", *TINY, "train.max_steps=2", "train.seed=0,1"]
    r = cli("train", "-m", *keys, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    seeds = [yaml.safe_load((sweep / str(job) / "config.yaml").read_text())["train"]["seed"] for job in (0, 1)]
    assert seeds == [0, 1] and all((sweep / str(job) / "model" / "checksum.sha256").is_file() for job in (0, 1))


def test_a_bad_value_of_any_job_is_one_line_before_any_job_runs(units, tmp_path):
    sweep = tmp_path / "sweep"
    r = cli("train-prior", "-m", f"units={units}", *PRIOR, "train.lr=1e-3,-1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "train.lr=-1: expected a learning rate > 0" in r.stderr
    assert not sweep.exists()  # the first job's value was good, and still nothing ran
    r = cli("evaluate", "-m", "model=m", "data=d", "out=o", cwd=tmp_path)
    assert r.returncode == 2 and "evaluate does not sweep" in r.stderr


def test_a_launcher_whose_extra_is_missing_is_one_line(units, monkeypatch):
    import sys

    from audio_vq.config import ConfigError
    from audio_vq.sweep import multirun

    monkeypatch.setitem(sys.modules, "hydra_plugins.hydra_submitit_launcher", None)  # the plugin not installed
    with pytest.raises(ConfigError, match=r"hydra/launcher=submitit_slurm needs .*pip install 'audio_vq\[slurm\]'"):
        multirun("train-prior", [f"units={units}", "hydra/launcher=submitit_slurm"])


def test_extract_runs_as_an_array_job_of_shards_then_merges(tiny_trained, tmp_path):
    """Through submitit_local (hydra-submitit-launcher: a process per job, as SLURM's tasks):
    the merged units equal one process's, and each shard ran once."""
    model, data = tiny_trained / "run" / "model", tiny_trained / "data"
    common = [f"model={model}", f"input={data}", "num_workers=0"]
    single = cli("extract", *common, f"output={tmp_path / 'one' / 'units.txt'}", cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    out = tmp_path / "array" / "units.txt"
    r = cli(
        "extract",
        "-m",
        *common,
        f"output={out}",
        "num_shards=2",
        "block_size=4",
        "hydra/launcher=submitit_local",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    frames = {rec.id: rec.frames().tolist() for rec in read_units(out)[1]}
    assert frames == {rec.id: rec.frames().tolist() for rec in read_units(tmp_path / "one" / "units.txt")[1]}
    logs = sorted((tmp_path / "array" / "units.txt.sweep").rglob("*_log.out"))
    assert len(logs) == 2  # two submitit jobs, one per shard
    assert not (tmp_path / "array" / "units.txt.parts").exists()  # merged and cleaned
