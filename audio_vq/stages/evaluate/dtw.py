"""Dynamic time warping over a precomputed cost matrix, shared by ABX and MCD-after-DTW.

The path may move (1, 0), (0, 1) or (1, 1) at each step, from (0, 0) to (N - 1, M - 1). The
result is the mean cost along the cheapest path (total cost / path length), the normalisation
ZeroSpeech's ABX uses, so sequences of different lengths compare on one scale.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _accumulate(cost):
    n, m = cost.shape
    acc = np.empty((n, m))
    steps = np.empty((n, m), dtype=np.int64)  # path length to each cell along the best path
    for i in range(n):
        for j in range(m):
            if i == 0 and j == 0:
                acc[i, j], steps[i, j] = cost[0, 0], 1
                continue
            best, length = np.inf, 0
            if i > 0 and acc[i - 1, j] < best:
                best, length = acc[i - 1, j], steps[i - 1, j]
            if j > 0 and acc[i, j - 1] < best:
                best, length = acc[i, j - 1], steps[i, j - 1]
            if i > 0 and j > 0 and acc[i - 1, j - 1] <= best:
                best, length = acc[i - 1, j - 1], steps[i - 1, j - 1]
            acc[i, j], steps[i, j] = best + cost[i, j], length + 1
    return acc, steps


def dtw(cost: np.ndarray) -> float:
    """Mean cost along the cheapest monotonic path through ``cost`` (N, M)."""
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    if cost.ndim != 2 or 0 in cost.shape:
        raise ValueError(f"dtw needs a non-empty (N, M) cost matrix, got shape {cost.shape}")
    acc, steps = _accumulate(cost)
    return float(acc[-1, -1] / steps[-1, -1])


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest path through ``cost`` (N, M) as index arrays (i, j), from (0, 0) to the end."""
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    if cost.ndim != 2 or 0 in cost.shape:
        raise ValueError(f"dtw needs a non-empty (N, M) cost matrix, got shape {cost.shape}")
    acc, _ = _accumulate(cost)
    i, j = cost.shape[0] - 1, cost.shape[1] - 1
    path = [(i, j)]
    while i > 0 or j > 0:  # walk back along the predecessor the forward pass chose
        moves = []
        if i > 0 and j > 0:
            moves.append((acc[i - 1, j - 1], i - 1, j - 1))
        if i > 0:
            moves.append((acc[i - 1, j], i - 1, j))
        if j > 0:
            moves.append((acc[i, j - 1], i, j - 1))
        _, i, j = min(moves, key=lambda m: m[0])
        path.append((i, j))
    path.reverse()
    return np.array([p[0] for p in path]), np.array([p[1] for p in path])
