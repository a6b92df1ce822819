"""benchmarks/gpu_check.sh: its CPU dry run goes through every row (training in fp32, bf16 and
compiled, a one-process torchrun through DistributedDataParallel, extraction, the torch
generation path for 1 and 64 streams), so the script that checks the GPU path cannot rot."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
ROWS = ("train fp32", "train bf16", "train compile", "torchrun nccl", "extract", "generate 1", "generate 64")


def test_the_dry_run_passes_every_row(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600, env=env
    )
    assert r.returncode == 0, r.stdout + r.stderr
    table = {line.split("|")[1].strip(): line for line in r.stdout.splitlines() if line.startswith("| ")}
    assert all(name in table for name in ROWS) and "FAILED" not in r.stdout, r.stdout
    assert "DDP over gloo" in table["torchrun nccl"]
    assert "7 of 7 rows ran" in r.stdout
    for run in ("train_fp32", "train_bf16", "train_compile", "torchrun"):  # each trained to its last step
        assert (tmp_path / run / "model" / "checksum.sha256").is_file()
