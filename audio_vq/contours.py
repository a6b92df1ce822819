"""F0 contours of a manifest's utterances for a pitch-conditioned model: tracked once
(:func:`audio_vq.pitch.track`) at the model's sample rate and hop, kept as ``.f0`` files in a
cache folder whose name holds the settings (``<tracker>-<rate>hz-hop<hop>``, so contours of
other settings are never reused), and pooled into per-speaker log-F0 statistics.

Tracking runs in worker processes (Harvest is the slow part of a pitch model's first run,
about 3x real time per core); each contour is written atomically, so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import audio, pitch
from .atomic import atomic_write_text
from .manifest import Utterance
from .outputs import inside
from .processes import die_with_parent

log = logging.getLogger(__name__)


def cache_folder(root: str | os.PathLike, tracker: str, sample_rate: int, hop: int) -> Path:
    """Where the contours of these settings live under ``root``."""
    return Path(root) / f"{tracker}-{sample_rate}hz-hop{hop}"


def _track_one(path: str, sample_rate: int, hop: int, tracker: str, out: str) -> None:
    f0 = pitch.track(audio.load(path, sample_rate), sample_rate, hop, tracker)
    atomic_write_text(out, pitch.format_f0(f0, hop, sample_rate))


def contours(
    utterances: Sequence[Utterance],
    sample_rate: int,
    hop: int,
    tracker: str,
    root: str | os.PathLike,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """id -> F0 (frames,) Hz of every utterance, from the cache under ``root`` or tracked
    (``workers`` processes) and cached. Errors name the utterance's file."""
    files = track(utterances, sample_rate, hop, tracker, root, workers, progress)
    return {u.id: pitch.read_f0(files[u.id])[1] for u in utterances}


def track(
    utterances: Sequence[Utterance],
    sample_rate: int,
    hop: int,
    tracker: str,
    root: str | os.PathLike,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Path]:
    """Track and cache the contours of the utterances not cached under ``root`` yet (each rank of
    a job can track its share, then all read them); id -> its ``.f0`` file."""
    problem = pitch.unavailable(tracker)
    if problem:
        raise ValueError(problem)
    folder = cache_folder(root, tracker, sample_rate, hop)
    folder.mkdir(parents=True, exist_ok=True)
    files = {u.id: inside(folder, u.id + pitch.F0_FILE_SUFFIX) for u in utterances}
    todo = [u for u in utterances if not files[u.id].is_file()]
    if todo:
        log.info("tracking F0 (%s) of %d utterances into %s", tracker, len(todo), folder)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), unit="utt", desc=f"F0 ({tracker})", dynamic_ncols=True)
        try:
            if workers <= 1:
                for u in todo:
                    _track_one(u.path, sample_rate, hop, tracker, str(files[u.id]))
                    if bar is not None:
                        bar.update()
            else:
                with concurrent.futures.ProcessPoolExecutor(workers, initializer=die_with_parent) as pool:
                    jobs = {
                        pool.submit(_track_one, u.path, sample_rate, hop, tracker, str(files[u.id])): u for u in todo
                    }
                    for job in concurrent.futures.as_completed(jobs):
                        job.result()
                        if bar is not None:
                            bar.update()
        finally:
            if bar is not None:
                bar.close()
    return files


def speaker_stats(
    utterances: Sequence[Utterance], f0: Mapping[str, np.ndarray], speakers: Mapping[str, int]
) -> dict[int, pitch.PitchStats]:
    """Speaker index -> log-F0 statistics over the voiced frames of its ``train``-split
    utterances only (held-out utterances never shape the model). ValueError naming a speaker of
    the table without a voiced training frame."""
    pooled: dict[str, list[np.ndarray]] = {}
    for u in utterances:
        if u.split == "train" and u.speaker in speakers:
            pooled.setdefault(u.speaker, []).append(f0[u.id])
    out = {}
    for name, index in speakers.items():
        try:
            out[index] = pitch.log_f0_stats(pooled.get(name, []))
        except ValueError:
            raise ValueError(
                f"speaker {name}: no voiced frame in its training utterances "
                "(a pitch model needs each speaker's register)"
            ) from None
    return out


# --- contours for decoding -----------------------------------------------------------------------
def tracker_of(model) -> str:
    """The tracker a model's contours come from: its run's ``data.pitch_tracker``."""
    return ((model.config or {}).get("data") or {}).get("pitch_tracker", pitch.DEFAULT_TRACKER)


def track_for(model, x: np.ndarray, frames: int | None = None) -> np.ndarray:
    """F0 (frames,) Hz of audio ``x`` (T,) at ``model``'s rate, hop and tracker (its run's
    ``data.pitch_tracker``), cut or zero-padded to ``frames`` (default ceil(T / hop))."""
    f0 = pitch.track(np.asarray(x, dtype=np.float64), model.sample_rate, model.hop, tracker_of(model))
    if frames is None:
        return f0
    out = np.zeros(frames)
    out[: min(frames, len(f0))] = f0[:frames]
    return out


def in_register(model, f0: np.ndarray, target: int, source: int | None) -> np.ndarray:
    """A contour of a speaker moved into the register of the model's speaker ``target``: its
    intonation (log F0 normalised by the source speaker's statistics: the table's row
    ``source``, or for a speaker the model never saw (None) the contour's own) de-normalised
    with the target's. A contour without voiced frames stays unvoiced."""
    f0 = np.asarray(f0, dtype=np.float64)
    if not (f0 > 0).any():
        return np.zeros_like(f0)
    return pitch.denormalise(
        pitch.normalise(f0, _register(model, f0, source)), f0 > 0, model.speaker_pitch_stats(target)
    )


def _register(model, f0: np.ndarray, speaker: int | None) -> pitch.PitchStats:
    """The statistics a voiced contour is normalised by: a pitch model's table row ``speaker``,
    or the contour's own (a speaker the model never saw, or a model without a table)."""
    if model.uses_pitch and speaker is not None:
        return model.speaker_pitch_stats(speaker)
    return pitch.log_f0_stats([f0])


def pitch_codes(model, x: np.ndarray, frames: int, speaker: int | None, bins: int) -> np.ndarray:
    """The pitch stream of audio ``x`` as unit codes (frames,) int64: its contour's log F0
    normalised by the speaker's register (the table's row ``speaker`` of a pitch model, else
    the contour's own) and quantised to ``bins`` bins, UNVOICED_CODE on unvoiced frames."""
    f0 = track_for(model, x, frames)
    voiced = f0 > 0
    if not voiced.any():
        return np.full(frames, pitch.UNVOICED_CODE, dtype=np.int64)
    return pitch.quantise(pitch.normalise(f0, _register(model, f0, speaker)), voiced, bins)


def contour_of_codes(model, codes: np.ndarray, bins: int, speaker: int) -> np.ndarray:
    """A pitch stream's codes (frames,) back to a contour (frames,) Hz in the register of the
    model's speaker ``speaker`` (bin centres; ValueError naming a code out of range)."""
    z, voiced = pitch.dequantise(codes, bins)
    return pitch.denormalise(z, voiced, model.speaker_pitch_stats(speaker))
