"""Which utterances a listening test uses and which speakers each is converted to.

Everything here is a function of the manifest, the model's speakers and the seed, so the same
command picks the same stimuli on any machine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...config import ConfigError
from ...manifest import Utterance, spread_over_speakers

log = logging.getLogger(__name__)

SPLIT_PREFERENCE = ("test", "valid")  # split=auto: the first of these with usable utterances

# Independent random streams drawn from the one `seed` key, so that e.g. asking for more
# utterances does not change the blinding tokens of the ones already there.
STREAM_SELECT, STREAM_TARGETS, STREAM_BLIND = 1, 2, 3


@dataclass(frozen=True)
class TargetSpec:
    """The `targets` key, parsed: conversions per utterance to ``names``, to ``count`` other
    speakers picked with the seed, or to every other speaker (``everyone``)."""

    names: tuple[str, ...] = ()
    count: int = 0
    everyone: bool = False


@dataclass(frozen=True)
class PlannedTrial:
    """One utterance of the test, the speakers its conversions go to, and whether it is
    reconstructed (only when the model knows its speaker: a held-out speaker has no embedding)."""

    utterance: Utterance
    targets: tuple[str, ...]
    reconstruct: bool = True


def rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def usable_utterances(
    utterances: Sequence[Utterance], split: str, speakers: dict[str, int]
) -> tuple[list[Utterance], str]:
    """The utterances of ``split`` and the split actually used: split=auto takes test, else
    valid, else train (with a warning). Utterances of speakers the model never saw (held-out
    speakers, folders without speakers) are kept: they are converted to known voices
    (any-to-many), and only their reconstruction is impossible."""
    if split == "all":
        chosen = list(utterances)
    elif split != "auto":
        chosen = [u for u in utterances if u.split == split]
    else:
        for name in (*SPLIT_PREFERENCE, "train"):
            chosen = [u for u in utterances if u.split == name]
            if chosen:
                if name == "train":
                    log.warning("no test or valid utterance: using the train split")
                split = name
                break
        else:
            chosen = []
    if not chosen:
        raise ConfigError(f"split={split}: no utterance in that split ({len(utterances)} in the manifest)")
    unseen = sorted({u.speaker for u in chosen if u.speaker not in speakers})
    if unseen:
        log.info(
            "%d utterance(s) of %d speaker(s) the model never saw (%s): conversions only, no reconstruction",
            sum(u.speaker not in speakers for u in chosen),
            len(unseen),
            ", ".join(unseen[:5]),
        )
    return chosen, split


def choose_utterances(utterances: Sequence[Utterance], n: int, seed: int) -> list[Utterance]:
    """``n`` utterances spread over speakers: speakers in sorted order take turns (round robin),
    each giving its next utterance of a seeded shuffle of its ids. Fewer when fewer exist."""
    return spread_over_speakers(sorted(utterances, key=lambda u: u.id), n, rng(seed, STREAM_SELECT))


def parse_targets(value, default_count: int) -> TargetSpec:
    """The `targets` key: null (the kind's default count), all, a number of speakers, or names
    (a list, or a comma-separated string). ConfigError otherwise."""
    from omegaconf import OmegaConf

    if value is None:
        return TargetSpec(count=default_count)
    if value == "all":
        return TargetSpec(everyone=True)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"targets={value}: expected a number >= 0, all, or speaker names")
        return TargetSpec(count=value)
    items = list(value) if OmegaConf.is_list(value) or isinstance(value, (list, tuple)) else str(value).split(",")
    names = tuple(str(s).strip() for s in items if str(s).strip())
    if not names:
        raise ConfigError(f"targets={value!r}: expected a number >= 0, all, or speaker names")
    return TargetSpec(names=names)


def plan_trials(
    chosen: Sequence[Utterance], spec: TargetSpec, speakers: Sequence[str], seed: int
) -> list[PlannedTrial]:
    """Each utterance with its conversion targets among the model's ``speakers``: never its own
    speaker (that is the reconstruction); with a count, that many other speakers drawn per
    utterance with the seed. An utterance of a speaker outside ``speakers`` is not
    reconstructed, and a count of targets for it is at least one (else it has no stimulus)."""
    r = rng(seed, STREAM_TARGETS)
    known = set(speakers)
    out = []
    for u in chosen:
        others = [s for s in sorted(speakers) if s != u.speaker]
        if spec.everyone:
            targets = others
        elif spec.names:
            targets = [s for s in spec.names if s != u.speaker]
        else:
            k = min(spec.count if u.speaker in known else max(1, spec.count), len(others))
            targets = [others[i] for i in sorted(r.choice(len(others), size=k, replace=False))] if k else []
        out.append(PlannedTrial(u, tuple(targets), reconstruct=u.speaker in known))
    return out
