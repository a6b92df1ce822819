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

Before a model is built, :func:`check_fits` builds it on torch's ``meta`` device (shapes, no
storage) and refuses, in one line naming the config key behind its largest tensor, a model
whose weights and training state cannot fit in the memory this process can have.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

log = logging.getLogger(__name__)

# Bytes a trained parameter takes per byte of weight: the weight, its gradient and Adam's two moments
TRAINING_COPIES = 4
CGROUP_V2 = Path("/sys/fs/cgroup")
CGROUP_V1 = Path("/sys/fs/cgroup/memory")

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
    log.warning(
        "train.memory: torch's large blocks are not on huge pages (torch had allocated before %s=1 "
        "was set, or the kernel has transparent huge pages off); steps are slower. Set %s=1 in the "
        "environment before starting",
        THP_ENV,
        THP_ENV,
    )


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


def check_fits(build: Callable[[], Any], config: Mapping, device: str, training: bool = True):
    """Build a model with ``build()`` on the meta device and return it (its shapes, no storage),
    or raise ConfigError when its weights (x TRAINING_COPIES when ``training``) and buffers
    exceed :func:`available_bytes` of ``device`` (a device key: auto | cpu | cuda[:N]; on a CPU
    times the processes torchrun started on this machine). The error names the key of
    ``config`` (the mapping the model was built from) whose value is a dimension of the largest
    tensor."""
    import torch

    from .config import ConfigError, resolve_device

    device = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    copies = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if device.type == "cpu" else 1
    with torch.device("meta"):
        model = build()
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    weights = sum(t.numel() * t.element_size() for t in model.parameters())
    buffers = sum(t.numel() * t.element_size() for t in model.buffers())
    need = copies * ((TRAINING_COPIES if training else 1) * weights + buffers)
    free = available_bytes(device)
    if free is None or need <= free:
        return model
    name, largest = max(tensors.items(), key=lambda item: item[1].numel())
    key, value = _key_of(tuple(largest.shape), config)
    what = "weights, gradients, Adam's moments and buffers" if training else "weights and buffers"
    raise ConfigError(
        f"{key}={value}: the model needs {_gib(need)} GiB ({what}; its largest tensor {name} is "
        f"{' x '.join(map(str, largest.shape))}), more than the {_gib(free)} GiB of memory "
        f"available{' on ' + str(device) if device.type != 'cpu' else ''}"
    )


def available_bytes(device) -> int | None:
    """Memory this process can still take on ``device``: CUDA's free memory, or on a CPU the
    kernel's MemAvailable capped by the cgroup's limit (None where neither can be read)."""
    import torch

    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    limits = [_meminfo_available(), _cgroup_room()]
    limits = [v for v in limits if v is not None]
    return min(limits) if limits else None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """The cgroup's memory limit less its usage (v2, then v1); None without a limit."""
    for limit_file, usage_file in (
        (CGROUP_V2 / "memory.max", CGROUP_V2 / "memory.current"),
        (CGROUP_V1 / "memory.limit_in_bytes", CGROUP_V1 / "memory.usage_in_bytes"),
    ):
        try:
            limit, usage = limit_file.read_text().strip(), int(usage_file.read_text())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:  # v1 writes "no limit" as a huge number, v2 as "max"
            return max(0, int(limit) - usage)
    return None


def _key_of(shape: tuple[int, ...], config: Mapping) -> tuple[str, Any]:
    """The config key whose integer value is the largest of the tensor's dimensions that a key
    holds (a codebook (K, D) -> its codebook_size); the config's own name when none does."""
    from .config import flatten

    leaves = [
        (k, v) for k, v in flatten(config).items() if isinstance(v, int) and not isinstance(v, bool) and v in shape
    ]
    if not leaves:
        return next(iter(config), "model"), "(its sizes)"
    return max(leaves, key=lambda kv: kv[1])


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g}"
