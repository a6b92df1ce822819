"""The CPU allocator policy of training (``train.memory``).

A WaveNet training step allocates and frees hundreds of activation blocks of 8-32 MB.

* ``default``: the allocator as the process gets it.
* ``huge_pages``: torch's large blocks on transparent huge pages (``THP_MEM_ALLOC_ENABLE``):
  512x fewer page faults and TLB entries for them (faster in bf16 here, slower in fp32).
* ``low``: huge pages, and every freed block of 4 MiB or more returned to the OS at once.
  glibc maps blocks above its mmap threshold and unmaps them on free, but raises that threshold
  (up to 32 MiB) each time such a block is freed, so from the second step on they come from its
  heap, which it keeps and fragments: the peak RSS ends up near twice what the step holds live.
  A fixed threshold keeps it near the live size; the cost is mapping and zeroing the blocks
  again at every step.

Both are process-wide and last for the rest of the process. Measured in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

POLICIES = ("default", "huge_pages", "low")
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
MMAP_THRESHOLD_BYTES = 4 * 2**20  # with "low", blocks from here up are mapped and returned on free
THP_ENV = "THP_MEM_ALLOC_ENABLE"  # torch: madvise(MADV_HUGEPAGE) on its CPU allocations of >= 2 MiB
THP_PROBE_BYTES = 2 * 2**20


def apply(policy: str) -> None:
    """Apply a ``train.memory`` policy; a log line says what this process could not apply."""
    if policy not in POLICIES:
        raise ValueError(f"memory policy {policy!r}: expected one of {', '.join(POLICIES)}")
    if policy == "default":
        return
    use_huge_pages()
    if policy == "low":
        return_freed_blocks()


def use_huge_pages() -> None:
    """Put torch's large CPU blocks on transparent huge pages. Torch reads its switch at its
    first allocation, so this must run before any tensor is made; a warning when that was too
    late, or when the kernel does not give them."""
    os.environ.setdefault(THP_ENV, "1")
    if os.environ[THP_ENV] != "1" or _huge_pages():  # the user's own setting, or done
        return
    log.warning("train.memory: torch's large blocks are not on huge pages (torch had allocated before %s=1 "
                "was set, or the kernel has transparent huge pages off); steps are slower. Set %s=1 in the "
                "environment before starting", THP_ENV, THP_ENV)


def return_freed_blocks() -> None:
    """Fix glibc's mmap threshold, so that freed blocks of MMAP_THRESHOLD_BYTES and more go
    back to the OS; a log line where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        log.info("train.memory=low: only glibc's allocator is tuned; %s keeps its own", sys.platform)
        return
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        log.info("train.memory=low: the C library has no mallopt (not glibc); its allocator is left as it is")
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) != 1:
        log.info("train.memory=low: mallopt refused the mmap threshold; the allocator is left as it is")


def _huge_pages() -> bool:
    """Whether torch now advises huge pages for its large CPU blocks: the mapping holding a
    fresh block carries the ``hg`` flag in /proc/self/smaps (True where that cannot be read)."""
    import torch

    address = torch.empty(THP_PROBE_BYTES, dtype=torch.uint8).data_ptr()
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return True
    inside = False
    for line in lines:
        head = line.split(maxsplit=1)[0] if line.strip() else ""
        if "-" in head and not head.endswith(":"):  # a mapping's first line: start-end perms ...
            start, end = (int(v, 16) for v in head.split("-"))
            inside = start <= address < end
        elif inside and head == "VmFlags:":
            return "hg" in line.split()[1:]
    return True
