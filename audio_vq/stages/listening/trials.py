"""The trials of a listening test: each utterance's stimuli, at one rate, mono, fitted to the
reference's length, then levelled (loudness, clipping).

Trials: mushra, abx and mos have one trial per utterance; ab has one per pair of the
utterance's stimuli (each pair gets its own copies of the two files, so a file name never
reveals that two pairs share a stimulus, and every file belongs to exactly one trial).
"""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ... import audio
from ...config import ConfigError
from ...manifest import Utterance
from . import plan, signals, webmushra
from .key import ANCHOR35, ANCHOR70, CONDITION, CONVERSION, HIDDEN_REFERENCE, ORIGINAL, RECONSTRUCTION, REFERENCE
from .options import Options

log = logging.getLogger(__name__)

MIN_SIDES = 2  # an AB trial compares two stimuli
UNMEASURABLE = "silent or below BS.1770's -70 LUFS gate: loudness not measurable, level left as it is"


@dataclass
class Stimulus:
    """One file of a trial before blinding."""

    role: str
    system: str
    target_speaker: str
    audio: np.ndarray
    notes: list[str] = field(default_factory=list)


@dataclass
class Trial:
    """The stimuli one page of the test plays; ``id`` (t01, ...) is given at blinding."""

    utterance: Utterance
    stimuli: list[Stimulus]
    gain_db: float = 0.0
    id: str = ""


ANCHORS = ((ANCHOR35, signals.ANCHOR35_HZ), (ANCHOR70, signals.ANCHOR70_HZ))  # ITU-R BS.1534-3


def anchor_cutoffs(rate: int) -> list[tuple[str, float]]:
    """The BS.1534-3 anchors possible at ``rate`` (a cutoff at or above Nyquist is no anchor)."""
    return [(role, hz) for role, hz in ANCHORS if hz < rate / 2]


def check_trial_sizes(opts: Options, planned: list[plan.PlannedTrial], rate: int) -> None:
    """With strict, a MUSHRA trial may hold at most 12 graded stimuli: refuse before generating."""
    if opts.kind.page_type not in webmushra.STRICT_PAGE_TYPES or not opts.strict:
        return
    fixed = 1 + len(anchor_cutoffs(rate)) + 1 + len(opts.systems)  # hidden ref, anchors, reconstruction, systems
    worst = max(planned, key=lambda p: len(p.targets))
    size = fixed + len(worst.targets)
    if size > webmushra.MUSHRA_MAX_STIMULI:
        raise ConfigError(
            f"strict=true: utterance {worst.utterance.id} would have {size} stimuli in its MUSHRA "
            f"trial (at most {webmushra.MUSHRA_MAX_STIMULI}, ITU-R BS.1534-3): use fewer targets or "
            f"systems, or strict=false"
        )


def safe_name(text: str) -> str:
    """``text`` usable as a file name (ids of some corpora hold '/'), kept unique by a crc."""
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", text)
    return clean if clean == text else f"{clean}_{zlib.crc32(text.encode('utf-8')):08x}"


def decoded_name(utt: Utterance, speaker: str) -> str:
    """The generated file of ``utt`` decoded as ``speaker`` (convert's <id>__<target> naming)."""
    return f"{safe_name(utt.id)}__{safe_name(speaker)}"


def excerpt(path: str, rate: int, max_seconds: float | None) -> np.ndarray:
    x = audio.load(path, rate)
    return x[: int(round(max_seconds * rate))] if max_seconds else x


def build_trials(
    opts: Options, planned: list[plan.PlannedTrial], decoded: Path, rate: int, skipped: list
) -> list[Trial]:
    """Every trial's stimuli at ``rate``, mono, fitted to the reference's length (not yet levelled)."""
    trials = []
    for p in tqdm(planned, desc="trials", unit="utt", dynamic_ncols=True):
        u = p.utterance
        try:
            ref = excerpt(u.path, rate, opts.max_seconds)
        except audio.AudioError as e:
            skipped.append((u.path, e.reason))
            continue
        conditions = _conditions(opts, p, decoded, rate, len(ref), skipped)
        trials += _arrange(opts, u, ref, conditions, rate, skipped)
    return trials


def _conditions(
    opts: Options, p: plan.PlannedTrial, decoded: Path, rate: int, length: int, skipped: list
) -> list[Stimulus]:
    u = p.utterance
    sources = [(RECONSTRUCTION, u.speaker, decoded / f"{decoded_name(u, u.speaker)}.wav")] if p.reconstruct else []
    sources += [(CONVERSION, t, decoded / f"{decoded_name(u, t)}.wav") for t in p.targets]
    sources += [(name, "", folder / f"{u.id}.wav") for name, folder in opts.systems.items()]
    out = []
    for system, target, path in sources:
        if not path.exists():
            skipped.append((str(path), f"system {system}: no file for utterance {u.id}"))
            continue
        try:
            fitted = signals.fit_length(audio.load(path, rate), length)
        except audio.AudioError as e:
            skipped.append((str(path), f"system {system}: {e.reason}"))
            continue
        notes = [f"padded with {fitted.padded} zero samples to the reference's length"] if fitted.padded else []
        out.append(Stimulus(CONDITION, system, target, fitted.audio, notes))
    return out


def _arrange(
    opts: Options, u: Utterance, ref: np.ndarray, conditions: list[Stimulus], rate: int, skipped: list
) -> list[Trial]:
    """The trial(s) of one utterance for the test's kind."""
    kind = opts.kind
    if kind.reference:
        if not conditions:
            skipped.append((u.path, "no system output for this utterance: trial left out"))
            return []
        blind = []
        if kind.anchors:  # the original again, rated blind, and the low-passed anchors (BS.1534-3)
            blind = [
                Stimulus(HIDDEN_REFERENCE, ORIGINAL, "", ref.copy()),
                *(Stimulus(role, role, "", signals.lowpass(ref, rate, hz)) for role, hz in anchor_cutoffs(rate)),
            ]
        return [Trial(u, [Stimulus(REFERENCE, ORIGINAL, "", ref), *blind, *conditions])]
    rated = ([Stimulus(CONDITION, ORIGINAL, "", ref)] if opts.include_reference else []) + conditions
    if not kind.preference:
        return [Trial(u, rated)] if rated else []
    if len(rated) < MIN_SIDES:
        skipped.append((u.path, f"{kind.name}: {len(rated)} stimulus for this utterance, a pair needs {MIN_SIDES}"))
        return []
    return [Trial(u, [_copy(a), _copy(b)]) for a, b in combinations(rated, MIN_SIDES)]


def _copy(s: Stimulus) -> Stimulus:
    return Stimulus(s.role, s.system, s.target_speaker, s.audio.copy(), list(s.notes))


def level_trials(trials: list[Trial], rate: int, opts: Options) -> None:
    """Every stimulus to the target loudness; then, per trial, one gain that keeps its largest
    peak under the ceiling (so the trial's files stay equally loud) when any would clip."""
    for t in tqdm(trials, desc="loudness", unit="trial", dynamic_ncols=True):
        for s in t.stimuli:
            s.audio, ok = signals.normalize(s.audio, rate, opts.loudness)
            if not ok:
                s.notes.append(UNMEASURABLE)
        gain = signals.headroom_gain([s.audio for s in t.stimuli], opts.peak_ceiling)
        if gain < 1.0:
            t.gain_db = signals.gain_db(gain)
            log.warning("utterance %s: turned down %.1f dB so that no file clips", t.utterance.id, -t.gain_db)
            for s in t.stimuli:
                s.audio = (s.audio * gain).astype(np.float32)
