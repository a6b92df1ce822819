"""Worker processes end with their parent, even when it is killed with SIGKILL."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# A DataLoader whose worker (extract's worker_init_fn) blocks for minutes in __getitem__: before
# die_with_parent, such a worker outlived a killed extract.
SCRIPT = """
import os, sys, time
from torch.utils.data import DataLoader, Dataset
from audio_vq.stages.extract import _worker_init

class Slow(Dataset):
    def __len__(self):
        return 4
    def __getitem__(self, i):
        with open(sys.argv[1], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(300)
        return i

next(iter(DataLoader(Slow(), num_workers=1, worker_init_fn=_worker_init)))
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its reaping is pending


def test_a_loader_worker_dies_when_its_parent_is_killed(tmp_path):
    pid_file = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT, str(pid_file)])
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    assert _alive(worker)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = _alive(worker)
    if alive:
        os.kill(worker, signal.SIGKILL)
    assert not alive, "the worker outlived its killed parent"
