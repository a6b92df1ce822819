"""The few collectives the quantizers need so that every DDP rank holds the same codebook.

Each helper is a no-op (no collective call at all) unless torch.distributed is initialised with
more than one process, so single-process training and tests never touch the process group.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

PRIMARY_RANK = 0  # the rank whose random choices (k-means seeds, restart vectors) everyone adopts


def is_distributed() -> bool:
    """True when collectives are needed: a process group is initialised with world_size > 1."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_primary() -> bool:
    return not is_distributed() or dist.get_rank() == PRIMARY_RANK


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` in place over all ranks (every rank receives the same bits); returns it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_(tensor: torch.Tensor, src: int = PRIMARY_RANK) -> torch.Tensor:
    """Overwrite `tensor` in place with rank `src`'s copy; returns it."""
    if is_distributed():
        dist.broadcast(tensor, src=src)
    return tensor


def sample_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """n random rows of x (N, d), chosen by the primary rank and broadcast: (n, d), identical on
    every rank even though each rank's x differs. Without replacement when N >= n.

    The other ranks still need x for its width, dtype and device; their rows are not used.
    """
    out = torch.empty(n, x.shape[1], dtype=x.dtype, device=x.device)
    if is_primary():
        count = x.shape[0]
        if count >= n:
            index = torch.randperm(count, device=x.device)[:n]
        else:  # a small batch: repeat some vectors rather than invent any
            index = torch.randint(count, (n,), device=x.device)
        out.copy_(x[index])
    return broadcast_(out)
