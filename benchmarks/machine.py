"""What the benchmarks share about the machine they run on (imported as a sibling script)."""

from __future__ import annotations

import os
from pathlib import Path


def busy_seconds() -> float | None:
    """CPU seconds all processes on the machine have spent busy so far (Linux /proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
