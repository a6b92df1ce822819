"""train.memory's allocator policies, each in a fresh interpreter (they are process-wide)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from audio_vq import memory

THP_SWITCH = Path("/sys/kernel/mm/transparent_hugepage/enabled")

# Allocates and frees 4 blocks of 16 MiB three times; prints the RSS growth and whether torch's
# large blocks are on huge pages.
PROBE = """
import json, sys
from audio_vq import memory
memory.apply(sys.argv[1])
import torch

def rss_mib():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) / 1024

base = rss_mib()
for _ in range(3):
    blocks = [torch.ones(4 * 2**20) for _ in range(4)]
    del blocks
print(json.dumps({"kept_mib": rss_mib() - base, "huge_pages": memory._huge_pages()}))
"""


def probe(policy: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, policy], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin"})
    return json.loads(done.stdout.strip().splitlines()[-1])


linux_glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or not Path("/proc/self/status").exists(),
                                 reason="the policies tune glibc on Linux")


@linux_glibc
def test_low_returns_freed_blocks_that_the_default_allocator_keeps():
    default, low = probe("default"), probe("low")
    assert default["kept_mib"] > 32  # glibc raised its mmap threshold and kept the blocks
    assert low["kept_mib"] < 16, low


@linux_glibc
@pytest.mark.skipif(not THP_SWITCH.exists() or "[never]" in THP_SWITCH.read_text(),
                    reason="transparent huge pages are off in this kernel")
def test_huge_pages_puts_torch_blocks_on_huge_pages():
    assert probe("huge_pages")["huge_pages"] is True
    assert probe("default")["huge_pages"] is False


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="memory policy 'fast'"):
        memory.apply("fast")
