"""Nearest-codebook search and Lloyd's k-means, shared by the vector quantizer.

Both work on flat fp32 matrices: vectors x (N, d) and a codebook (K, d).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import codebook_sync

# The search computes its (rows, K) distance matrix a block of rows at a time. On CPU a block of
# 256 Ki floats (1 MiB) stays in L2 between the addmm that writes it and the min that reads it:
# about 25% faster than one big matrix at 16k frames x K = 512. On accelerators bigger blocks
# (64 MiB) keep kernels large while still bounding memory on long inputs (an hour of audio at
# 250 frames/s against K = 512 would otherwise be a 1.8 GB matrix).
CPU_BLOCK_ELEMENTS = 1 << 18
DEVICE_BLOCK_ELEMENTS = 1 << 24


@torch.no_grad()
def nearest(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """codes (N,) int64: argmin_k ||x_n - e_k||^2 for x (N, d), codebook (K, d).

    ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2, and ||x||^2 is the same for every k, so the search is
    one addmm (||e||^2 - 2 x E^T) per block of rows and a row minimum: no (N, K, d) broadcast.
    torch.min(dim) returns the indices too, and on CPU it is about twice as fast as argmin.
    """
    sq_norms = codebook.pow(2).sum(1)
    n, k = x.shape[0], codebook.shape[0]
    limit = CPU_BLOCK_ELEMENTS if x.device.type == "cpu" else DEVICE_BLOCK_ELEMENTS
    rows = max(1, min(n, limit // k))
    codes = torch.empty(n, dtype=torch.long, device=x.device)
    minima = torch.empty(n, dtype=x.dtype, device=x.device)
    block = torch.empty(rows, k, dtype=x.dtype, device=x.device)  # reused: no allocation per block
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        distances = torch.addmm(sq_norms, x[start:stop], codebook.t(), alpha=-2.0, out=block[: stop - start])
        torch.min(distances, 1, out=(minima[start:stop], codes[start:stop]))
    return codes


@torch.no_grad()
def cluster_sums(x: torch.Tensor, codes: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(counts (k,), sums (k, d)) of the vectors x (N, d) assigned to each code, summed over all
    ranks with one all-reduce (both travel in one buffer)."""
    d = x.shape[1]
    buffer = torch.zeros(k, 1 + d, dtype=x.dtype, device=x.device)
    buffer[:, 0].index_add_(0, codes, torch.ones_like(codes, dtype=x.dtype))
    buffer[:, 1:].index_add_(0, codes, x)
    codebook_sync.all_reduce_sum_(buffer)
    return buffer[:, 0], buffer[:, 1:]


@torch.no_grad()
def kmeans_plus_plus(x: torch.Tensor, k: int) -> torch.Tensor:
    """k seeds (k, d) from x (N, d) by k-means++ (Arthur & Vassilvitskii 2007): each next seed is
    drawn with probability proportional to its squared distance from the nearest seed so far.
    Uniform seeding leaves whole clusters without a code (4 equal clusters, k = 4: all four get a
    seed only 4!/4^4 = 9% of the time) and Lloyd iterations cannot move a code across to them."""
    seeds = torch.empty(k, x.shape[1], dtype=x.dtype, device=x.device)
    pick = torch.randint(x.shape[0], (), device=x.device)
    closest = torch.full((x.shape[0],), float("inf"), dtype=x.dtype, device=x.device)
    for i in range(k):
        seeds[i] = x[pick]
        closest = torch.minimum(closest, (x - seeds[i]).pow(2).sum(1))
        if i + 1 < k:
            total = closest.sum()
            # every vector already is a seed (fewer distinct vectors than k): repeat one at random
            pick = torch.multinomial(closest, 1)[0] if total > 0 else torch.randint(x.shape[0], (), device=x.device)
    return seeds


@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, iters: int, cosine: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on x (N, d) from k-means++ seeds: (centroids (k, d), counts (k,) of the
    last assignment).

    Under torch.distributed each rank passes its own x: the primary rank seeds from its data and
    broadcasts, then every iteration sums assignments over all ranks, so the result is the
    k-means of the union of the ranks' data and is identical on every rank. With cosine=True
    (x should be unit-norm) the centroids are renormalised: spherical k-means. A centroid that
    loses all its vectors stays put.
    """
    centroids = torch.empty(k, x.shape[1], dtype=x.dtype, device=x.device)
    if codebook_sync.is_primary():
        centroids.copy_(kmeans_plus_plus(x, k))
    codebook_sync.broadcast_(centroids)
    counts = torch.zeros(k, dtype=x.dtype, device=x.device)
    for _ in range(iters):
        counts, sums = cluster_sums(x, nearest(x, centroids), k)
        means = sums / counts.clamp(min=1).unsqueeze(1)
        if cosine:
            means = F.normalize(means, dim=1)
        centroids = torch.where(counts.unsqueeze(1) > 0, means, centroids)
    return centroids, counts
