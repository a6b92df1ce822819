"""n-gram baselines for a prior over units: interpolated Witten-Bell smoothing (Witten & Bell
1991; as in SRILM's -wbdiscount -interpolate), fitted and scored in the same run as the prior.

    P(w | h) = (c(h, w) + T(h) P(w | h')) / (c(h) + T(h))      h' = h without its oldest unit
    P(w)     = (c(w) + T P_uniform(w)) / (N + T)               P_uniform = 1 / K

c counts in the training sequences, T(h) the number of distinct units seen after h (T: distinct
units), and a history never seen backs off wholly to h'. Every sequence starts with a start
symbol (so its first units have a history); there is no end symbol, as the prior has none.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Iterable, Sequence

import numpy as np


class WittenBell:
    """An interpolated Witten-Bell n-gram model of ``order`` over units 0..K-1."""

    def __init__(self, order: int, codebook_size: int):
        if order < 1 or codebook_size < 1:
            raise ValueError(f"order={order}, codebook_size={codebook_size}: expected integers >= 1")
        self.order, self.k = order, codebook_size
        self.start = codebook_size  # the start symbol pads histories
        self.counts: list[dict[tuple, Counter]] = [defaultdict(Counter) for _ in range(order)]  # [n][history][w]

    def fit(self, sequences: Iterable[Sequence[int]]) -> "WittenBell":
        for seq in sequences:
            padded = [self.start] * (self.order - 1) + [int(u) for u in seq]
            for i in range(self.order - 1, len(padded)):
                w = padded[i]
                for n in range(self.order):  # history of n units
                    self.counts[n][tuple(padded[i - n : i])][w] += 1
        return self

    def prob(self, w: int, history: Sequence[int]) -> float:
        """P(w | the last order - 1 units of history), start-padded."""
        h = ([self.start] * (self.order - 1) + [int(u) for u in history])[len(history) :]
        p = 1.0 / self.k
        for n in range(self.order):
            seen = self.counts[n].get(tuple(h[len(h) - n :]) if n else ())
            if not seen:
                continue  # an unseen history: all its mass goes to the shorter one
            total, types = sum(seen.values()), len(seen)
            p = (seen[w] + types * p) / (total + types)
        return p

    def log2prob(self, seq: Sequence[int]) -> float:
        return sum(math.log2(self.prob(int(w), seq[:i])) for i, w in enumerate(seq))

    def bits_per_unit(self, sequences: Iterable[Sequence[int]]) -> float:
        """Mean -log2 P per unit over ``sequences`` (held-out)."""
        bits, units = 0.0, 0
        for seq in sequences:
            seq = np.asarray(seq).tolist()
            bits -= self.log2prob(seq)
            units += len(seq)
        return bits / max(units, 1)
