"""Statistics of listening-test answers: MUSHRA post-screening, means and proportions with
confidence intervals.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

# ITU-R BS.1534-3, post-screening of assessors: exclude an assessor who rates the hidden
# reference below 90 for more than 15% of the test items, or the mid-range anchor above 90 for
# more than 15% of the test items.
HIDDEN_REFERENCE_MIN_SCORE = 90.0
MID_ANCHOR_MAX_SCORE = 90.0
SCREENING_MAX_FRACTION = 0.15
CHANCE = 0.5  # ABX guessing, or no preference in AB


@dataclass(frozen=True)
class Rating:
    """One de-anonymised score: who gave it, in which trial, to what."""

    listener: str
    trial: str
    role: str
    system: str
    score: float


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval (bounds NaN when undefined, e.g. n < 2)."""

    n: int
    estimate: float
    low: float
    high: float


def screen_mushra(ratings: Iterable[Rating], hidden_role: str, mid_anchor_role: str) -> dict[str, str]:
    """Listeners to exclude under BS.1534-3's post-screening, with the reason for each."""
    failed: dict[tuple[str, str], set[str]] = defaultdict(set)  # (listener, rule) -> trials failing it
    rated: dict[tuple[str, str], set[str]] = defaultdict(set)  # (listener, rule) -> trials rating it
    for r in ratings:
        if r.role == hidden_role:
            rated[r.listener, "hidden"].add(r.trial)
            if r.score < HIDDEN_REFERENCE_MIN_SCORE:
                failed[r.listener, "hidden"].add(r.trial)
        elif r.role == mid_anchor_role:
            rated[r.listener, "anchor"].add(r.trial)
            if r.score > MID_ANCHOR_MAX_SCORE:
                failed[r.listener, "anchor"].add(r.trial)
    excluded: dict[str, str] = {}
    for (listener, rule), trials in sorted(rated.items()):
        share = len(failed[listener, rule]) / len(trials)
        if share > SCREENING_MAX_FRACTION and listener not in excluded:
            what = (
                f"hidden reference rated below {HIDDEN_REFERENCE_MIN_SCORE:g}"
                if rule == "hidden"
                else f"mid-range anchor rated above {MID_ANCHOR_MAX_SCORE:g}"
            )
            excluded[listener] = (
                f"{what} in {len(failed[listener, rule])} of {len(trials)} trials "
                f"({share:.0%} > {SCREENING_MAX_FRACTION:.0%}, ITU-R BS.1534-3)"
            )
    return excluded


def mean_interval(values: Sequence[float], confidence: float, scale: tuple[float, float] | None = None) -> Interval:
    """Mean and its two-sided Student-t confidence interval, clipped to ``scale`` (low, high)
    when given: the mean of ratings on a bounded scale cannot leave it, and a t-interval of few
    ratings near an end would (e.g. 2.5 [-0.26, 5.26] on the 1-5 ACR scale)."""
    from scipy import stats

    n = len(values)
    if n == 0:
        return Interval(0, math.nan, math.nan, math.nan)
    mean = math.fsum(values) / n
    if n < 2:
        return Interval(n, mean, math.nan, math.nan)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    if scale is not None:
        low, high = max(low, scale[0]), min(high, scale[1])
    return Interval(n, mean, low, high)


def proportion_interval(successes: int, n: int, confidence: float) -> Interval:
    """Proportion with its exact (Clopper-Pearson) binomial confidence interval."""
    from scipy import stats

    if n == 0:
        return Interval(0, math.nan, math.nan, math.nan)
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="exact")
    return Interval(n, successes / n, float(ci.low), float(ci.high))


def binomial_p(successes: int, n: int, alternative: str) -> float:
    """p-value of ``successes`` in ``n`` against chance (0.5): 'greater' (ABX: better than
    guessing) or 'two-sided' (AB: a preference either way)."""
    from scipy import stats

    return float(stats.binomtest(successes, n, CHANCE, alternative=alternative).pvalue) if n else math.nan
