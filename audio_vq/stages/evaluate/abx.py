"""ABX phone discrimination on frame-level features, within and across speakers.

Our own implementation of the ZeroSpeech "by context" ABX (Schatz et al. 2013; ZeroSpeech
2017-2021, libri-light's ABX), on the features of the frames of each phone occurrence (for a
VQ-VAE: the codebook vector of each unit frame):

- **Items** (:func:`abx_items`): every non-silence phone segment of the alignments, with its
  utterance, speaker, previous and next phone (``#`` when the neighbour is a silence, a gap or the
  utterance edge) and its frames [start, end): the unit frames whose centres (i + 0.5) / frame_rate
  lie in the segment (the convention of :func:`.alignments.frame_labels`). Segments holding no
  frame centre are skipped.
- **Distance** between two items: DTW (:func:`.dtw.dtw`, mean cost along the cheapest path) over
  the frame-wise angular distance arccos(cos sim) / pi, in [0, 1]. A zero vector is at 0.5 (a
  right angle) from any non-zero vector and at 0 from another zero vector.
- **Triples**: A and X share the central phone a and context (previous, next), B has the same
  context and another phone b. *Within* speaker: A, B, X all from one speaker s, X != A. *Across*:
  A and B from speaker s1, X from a speaker s2 != s1. A triple's error is 1 if d(A, X) > d(B, X),
  0.5 on a tie, else 0.
- **Cells**: a cell is (context, a, b, s) within, (context, a, b, s1, s2) across (s1 the speaker
  of A and B, s2 that of X); its score is the mean error over its triples (all of them, or
  ``max_triples`` drawn without replacement with a seeded RNG when there are more). Both
  averagings below read the same cell scores; they differ only in how cells are collapsed.
- **Ours** (``within``, ``across``): cell scores are averaged over contexts, then over speakers
  (over speaker pairs (s1, s2), as one level, across), giving a score per ordered pair (a, b); the
  two orders of a pair are averaged (where both exist) and the result is the mean over unordered
  phone pairs, in percent. Each unordered pair weighs the same, whether one order or both exist.
- **ZeroSpeech averaging** (``within_zerospeech``, ``across_zerospeech``), as libri-light's
  ``eval/eval_ABX.py`` (the ZeroSpeech 2021 ABX) and fastabx's ``zerospeech_abx``
  (github.com/bootphon/fastabx, ``score.py`` / ``zerospeech.py``) collapse cells: within, over
  contexts, then over speakers, then over *ordered* phone pairs (a, b); across, over contexts and
  X speakers s2 together (one mean over the (context, s2) cells of an (a, b, s1)), then over A/B
  speakers s1, then over ordered phone pairs. So a phone pair with both orders weighs twice one
  with a single order, and across, an X speaker with more contexts weighs more among s1's.
  With contexts ignored (the "phone only" variant: every item in context ``#``), this is also
  fastabx's ``context="any"``, which averages the across cells of an (a, b) over (s1, s2) in one
  mean: every s1 of an (a, b) has the same X speakers count (the other speakers with an a), so
  the two means agree.

The two agree when every phone pair has both orders and, across, each (a, b) has as many
contexts for every speaker pair and as many X speakers for every s1. Both are reported so that
our numbers can be read against published ZeroSpeech ones (which also sample differently:
ZeroSpeech caps the items per cell, 10 by default, and X speakers per A/B pair, 5; we cap
triples).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from .alignments import DEFAULT_SILENCES, TIME_EPSILON, FrameLabels, Segment, segments_from_frame_labels
from .dtw import dtw

EDGE_CONTEXT = "#"  # the context of a phone next to a silence, a gap or the utterance's edge
# Triples drawn per cell at most: cells in the synthetic corpus' few hundred utterances rarely hold
# more, and beyond this a cell's mean error is already known to a few percent; the whole run stays
# at seconds on two cores.
DEFAULT_MAX_TRIPLES = 20
PERCENT = 100.0


@dataclass(frozen=True)
class AbxItem:
    """One phone occurrence: frames [start, end) of ``utterance``'s features."""

    utterance: str
    speaker: str
    phone: str
    prev: str
    next: str
    start: int
    end: int


def abx_items(
    alignments: Mapping[str, Sequence[Segment] | FrameLabels],
    speakers: Mapping[str, str],
    num_frames: Mapping[str, int],
    frame_rate: float,
    silences: Iterable[str] = DEFAULT_SILENCES,
) -> list[AbxItem]:
    """The ABX items of the utterances present in all three mappings (utterance id -> alignment,
    speaker, number of feature frames), in utterance id then time order. Silence segments give
    no item but serve as context (``#``); segments covering no frame centre are skipped."""
    silences = frozenset(silences)
    items: list[AbxItem] = []
    for uid in sorted(set(alignments) & set(speakers) & set(num_frames)):
        alignment = alignments[uid]
        segments = (
            segments_from_frame_labels(alignment)
            if isinstance(alignment, FrameLabels)
            else sorted(alignment, key=lambda s: s.start)
        )
        for i, seg in enumerate(segments):
            if seg.phone in silences:
                continue
            start = _first_frame(seg.start, frame_rate, num_frames[uid])
            end = _first_frame(seg.end, frame_rate, num_frames[uid])
            if end <= start:
                continue
            prev = _context(segments[i - 1] if i > 0 else None, seg.start, True, silences)
            nxt = _context(segments[i + 1] if i + 1 < len(segments) else None, seg.end, False, silences)
            items.append(AbxItem(uid, speakers[uid], seg.phone, prev, nxt, start, end))
    return items


def _first_frame(time: float, frame_rate: float, num_frames: int) -> int:
    """The first frame whose centre (i + 0.5) / frame_rate is at or after ``time``, in [0, num_frames]
    (centres within TIME_EPSILON before it count as on it, as in frame_labels)."""
    return min(max(math.ceil((time - TIME_EPSILON) * frame_rate - 0.5), 0), num_frames)


def _context(neighbour: Segment | None, boundary: float, before: bool, silences: frozenset) -> str:
    if neighbour is None or neighbour.phone in silences:
        return EDGE_CONTEXT
    touching = abs((neighbour.end if before else neighbour.start) - boundary) <= TIME_EPSILON
    return neighbour.phone if touching else EDGE_CONTEXT


def angular_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Frame-wise angular distance arccos(cos sim) / pi, (N, M), between a (N, D) and b (M, D)."""
    a_hat, a_zero = _normalise(a)
    b_hat, b_zero = _normalise(b)
    sim = a_hat @ b_hat.T
    sim[np.outer(a_zero, b_zero)] = 1.0  # two zero vectors: identical
    return np.arccos(np.clip(sim, -1.0, 1.0)) / np.pi


def _normalise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows scaled to unit norm, zero rows left zero; which rows are zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    zero = norms == 0
    return x / np.where(zero, 1.0, norms)[:, None], zero


class _Distances:
    """DTW distances between items, each pair computed once (DTW on (N, M) and (M, N) agree)."""

    def __init__(self, items: Sequence[AbxItem], features: Mapping[str, np.ndarray]):
        self.frames = []
        for item in items:
            if item.utterance not in features:
                raise ValueError(f"{item.utterance}: an ABX item but no features")
            f = features[item.utterance]
            if item.end > len(f):
                raise ValueError(
                    f"{item.utterance}: item frames [{item.start}, {item.end}) past the {len(f)} feature frames"
                )
            self.frames.append(np.asarray(f[item.start : item.end], dtype=np.float64))
        self.cache: dict[tuple[int, int], float] = {}

    def __call__(self, i: int, j: int) -> float:
        key = (i, j) if i < j else (j, i)
        d = self.cache.get(key)
        if d is None:
            d = self.cache[key] = dtw(angular_distances(self.frames[key[0]], self.frames[key[1]]))
        return d


def abx(
    items: Sequence[AbxItem], features: Mapping[str, np.ndarray], max_triples: int = DEFAULT_MAX_TRIPLES, seed: int = 0
) -> dict[str, float | int | None]:
    """Within- and across-speaker ABX error rates (percent) of ``features`` (utterance id ->
    (T, D) frames) on ``items``; see the module docstring for the definition.

    Returns ``within`` and ``across`` (ours; None when no cell exists, e.g. ``across`` with a
    single speaker), ``within_zerospeech`` and ``across_zerospeech`` (the same cells under the
    ZeroSpeech averaging), and for each the number of triples scored, cells and unordered phone
    pairs (``within_triples``, ``within_cells``, ``within_pairs``, likewise ``across_*``), and
    ``items``.
    """
    if max_triples < 1:
        raise ValueError(f"max_triples must be >= 1, got {max_triples}")
    distance = _Distances(items, features)
    rng = np.random.default_rng(seed)
    # context -> speaker -> phone -> item indices, in item order
    groups: dict[tuple[str, str], dict[str, dict[str, list[int]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for i, item in enumerate(items):
        groups[(item.prev, item.next)][item.speaker][item.phone].append(i)

    within: dict[tuple, float] = {}  # (context, a, b, speaker) -> mean error
    across: dict[tuple, float] = {}  # (context, a, b, s1, s2) -> mean error
    counts = {"within": 0, "across": 0}
    for context in sorted(groups):
        by_speaker = groups[context]
        for s1 in sorted(by_speaker):
            phones = by_speaker[s1]
            for a in sorted(phones):
                for b in sorted(phones):
                    if a == b:
                        continue
                    if len(phones[a]) >= 2:
                        score, n = _cell(phones[a], phones[b], None, distance, max_triples, rng)
                        within[(context, a, b, s1)] = score
                        counts["within"] += n
                    for s2 in sorted(by_speaker):
                        if s2 != s1 and a in by_speaker[s2]:
                            score, n = _cell(phones[a], phones[b], by_speaker[s2][a], distance, max_triples, rng)
                            across[(context, a, b, s1, s2)] = score
                            counts["across"] += n
    out: dict[str, float | int | None] = {"items": len(items)}
    for name, cells in (("within", within), ("across", across)):
        rate, pairs = _aggregate(cells)
        out.update(
            {
                name: rate,
                f"{name}_zerospeech": _aggregate_zerospeech(cells),
                f"{name}_triples": counts[name],
                f"{name}_cells": len(cells),
                f"{name}_pairs": pairs,
            }
        )
    return out


def _cell(
    a_items: list[int],
    b_items: list[int],
    x_items: list[int] | None,
    distance: _Distances,
    max_triples: int,
    rng: np.random.Generator,
) -> tuple[float, int]:
    """(mean error, triples scored) of one cell. ``x_items`` None: within, X is another A item."""
    n_a, n_b = len(a_items), len(b_items)
    n_x = n_a - 1 if x_items is None else len(x_items)
    total = n_a * n_x * n_b
    picks = np.arange(total) if total <= max_triples else rng.choice(total, max_triples, replace=False)
    errors = 0.0
    for t in picks.tolist():  # triple index -> (A, X, B) positions, B varying fastest
        ia, rest = divmod(t, n_x * n_b)
        ix, ib = divmod(rest, n_b)
        if x_items is None:
            x = a_items[ix + (ix >= ia)]  # skip A itself
        else:
            x = x_items[ix]
        d_ax, d_bx = distance(a_items[ia], x), distance(b_items[ib], x)
        errors += 1.0 if d_ax > d_bx else 0.5 if d_ax == d_bx else 0.0
    return errors / len(picks), len(picks)


def _aggregate(cells: dict[tuple, float]) -> tuple[float | None, int]:
    """(error in percent, unordered phone pairs): cells keyed (context, a, b, *speakers) averaged
    over contexts, then speakers, then the two orders of each pair, then pairs."""
    if not cells:
        return None, 0
    by_speakers: dict[tuple, list[float]] = defaultdict(list)
    for (_, a, b, *speakers), score in cells.items():
        by_speakers[(a, b, *speakers)].append(score)
    by_pair: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (a, b, *_), scores in by_speakers.items():
        by_pair[(a, b)].append(float(np.mean(scores)))
    unordered: dict[frozenset, list[float]] = defaultdict(list)
    for (a, b), scores in by_pair.items():
        unordered[frozenset((a, b))].append(float(np.mean(scores)))
    return PERCENT * float(np.mean([np.mean(s) for s in unordered.values()])), len(unordered)


def _aggregate_zerospeech(cells: dict[tuple, float]) -> float | None:
    """Error in percent under the ZeroSpeech averaging (libri-light's eval_ABX, fastabx's
    zerospeech_abx) of cells keyed (context, a, b, s) within or (context, a, b, s1, s2) across:
    the mean per (a, b, s) or (a, b, s1) -- over contexts, and across over contexts and X speakers
    s2 together -- then over s or s1, then over ordered phone pairs (a, b)."""
    if not cells:
        return None
    by_speaker = _mean_by(cells, lambda key: key[1:4])  # (a, b, s) within, (a, b, s1) across
    by_pair = _mean_by(by_speaker, lambda key: key[:2])
    return PERCENT * float(np.mean(list(by_pair.values())))


def _mean_by(scores: dict[tuple, float], group: Callable[[tuple], tuple]) -> dict[tuple, float]:
    """The mean score of each group of keys (``group(key)``), keyed by group."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for key, score in scores.items():
        groups[group(key)].append(score)
    return {g: float(np.mean(v)) for g, v in groups.items()}
