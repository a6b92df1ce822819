"""The kinds of listening test, MUSHRA, AB, ABX and MOS: one table of what each one is, which the
export, the apps' configs and the results analysis all read.

A kind's ``name`` is the `kind` config value and what export.json and the results say; the
modules ask a :class:`Kind` for its facts instead of testing its name, so a kind is described
here and nowhere else. This module imports nothing heavy: `audio-vq listening-results` reads it
and must not load torch.
"""

from __future__ import annotations

from dataclasses import dataclass

STUDENT_T = "Student-t interval of the mean, clipped to the {:g}-{:g} scale"
CLOPPER_PEARSON = "exact (Clopper-Pearson) binomial interval"


@dataclass(frozen=True)
class Kind:
    """One kind of listening test: how its trials are made, how the apps run them and how its
    answers are summarised."""

    name: str  # the config value, and the kind export.json and the results files name
    title: str  # the name of its webMUSHRA pages
    instructions: str  # what listeners are told, on the instructions page and on every trial's page
    page_type: str  # the webMUSHRA page type a trial is
    beaqle_class: str | None  # the BeaqleJS test class, None where BeaqleJS has none
    reference: bool  # the original is played as an open reference and the systems are judged against it
    anchors: bool  # a trial also holds the hidden reference and the ITU-R BS.1534-3 low-pass anchors
    preference: bool  # a trial is a pair of stimuli, and the answer is the one the listener prefers
    default_targets: int  # conversions per utterance with targets=null
    measure: str  # what the results estimate, as the report labels it
    proportion: bool  # the estimates are proportions of answers, not means of ratings
    scale: tuple[float, float]  # the estimates' range: the rating scale, or 0-1 for a proportion
    interval_method: str  # how the confidence intervals are computed, as the report says


# MUSHRA and ABX judge closeness to the original utterance, which a conversion (another voice)
# fails by design, so by default they test reconstructions only; AB and MOS judge quality.
MUSHRA = Kind(
    name="mushra",
    title="MUSHRA",
    instructions="Listen to the reference, then rate how close each condition is to it, from 0 (bad) to 100 "
    "(excellent). One of the conditions is the reference itself: give it 100.",
    page_type="mushra",
    beaqle_class="MushraTest",
    reference=True,
    anchors=True,
    preference=False,
    default_targets=0,
    measure="MUSHRA score (0-100)",
    proportion=False,
    scale=(0.0, 100.0),
    interval_method=STUDENT_T.format(0, 100),
)
# webMUSHRA has no preference page: both stimuli of a pair are rated on one page, the higher rated is preferred
AB = Kind(
    name="ab",
    title="Preference",
    instructions="Listen to both samples and rate each: 5 excellent, 4 good, 3 fair, 2 poor, 1 bad. Give the one "
    "you prefer the higher rating.",
    page_type="likert_multi_stimulus",
    beaqle_class="PrefTest",
    reference=False,
    anchors=False,
    preference=True,
    default_targets=1,
    measure="preference rate (AB)",
    proportion=True,
    scale=(0.0, 1.0),
    interval_method=CLOPPER_PEARSON,
)
ABX = Kind(
    name="abx",
    title="ABX",
    instructions="Listen to the reference, then to A and B. One of them is the reference: which one?",
    page_type="paired_comparison",
    beaqle_class="AbxTest",
    reference=True,
    anchors=False,
    preference=False,
    default_targets=0,
    measure="proportion correct (ABX)",
    proportion=True,
    scale=(0.0, 1.0),
    interval_method=CLOPPER_PEARSON,
)
# BeaqleJS has no single-stimulus rating class; the scale is ITU-T P.800's Absolute Category Rating
MOS = Kind(
    name="mos",
    title="Quality",
    instructions="Rate the overall quality of each speech sample: 5 excellent, 4 good, 3 fair, 2 poor, 1 bad.",
    page_type="likert_single_stimulus",
    beaqle_class=None,
    reference=False,
    anchors=False,
    preference=False,
    default_targets=1,
    measure="MOS (ACR 1-5)",
    proportion=False,
    scale=(1.0, 5.0),
    interval_method=STUDENT_T.format(1, 5),
)

KINDS: dict[str, Kind] = {k.name: k for k in (MUSHRA, AB, ABX, MOS)}
