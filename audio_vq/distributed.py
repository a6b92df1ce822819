"""Where this process stands: its rank among torchrun's processes and its device.

``setup(device)`` joins the process group when torchrun started several processes (NCCL on
CUDA, gloo on CPU) and returns a :class:`Context`; with one process it is a plain record and
every collective is a no-op. Train and extract both run on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .config import resolve_device


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def primary(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (e.g. the run folder, whose name holds a time)."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on any: ranks must take the same branch."""
        return self.any_each(flag)[0]

    def any_each(self, *flags: bool) -> tuple[bool, ...]:
        """:meth:`any` of each flag, in one collective (the training loop asks two every step)."""
        if self.world == 1:
            return tuple(bool(f) for f in flags)
        t = torch.tensor([int(f) for f in flags], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return tuple(bool(v) for v in t.tolist())


TORCHRUN_VARIABLE = "TORCHELASTIC_RUN_ID"  # set by torchrun in every process it starts


def setup(device: str) -> Context:
    """The process's context; under torchrun (one process too: the GPU check's NCCL row) joins
    the process group (NCCL on CUDA, gloo on CPU). ``device``: auto | cpu | cuda | cuda:N."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if (world > 1 or TORCHRUN_VARIABLE in os.environ) and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(rank, world, dev)
