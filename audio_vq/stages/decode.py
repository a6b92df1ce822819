"""Reconstruction, voice conversion and units-to-speech: codes decoded by the WaveNet generator.

    reconstruct: audio -> codes -> generate with the source speaker   -> <out>/<id>.wav
    convert:     audio -> codes -> generate with each target speaker  -> <out>/<id>__<target>.wav + index.csv
    synthesize:  unit file (any unit format) -> codes -> generate with one speaker -> <out>/<id>.wav

A pitch model (model.decoder.pitch != none) also decodes the source's F0 contour: its own for a
reconstruction, moved into the target speaker's register for a conversion (the target's mean
and std of log F0, the source's intonation; contours.in_register).

Inputs are a manifest (``manifest.jsonl`` or its folder), a folder of audio files, or one file.
Every output is written atomically; an utterance that fails to load is reported and skipped.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Iterator

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from .. import audio
from ..atomic import atomic_write_text
from ..codec import Job
from ..config import ConfigError
from ..manifest import SKIPPED_NAME, write_skipped
from ..rendering import Renderer, Source, read_sources
from ..units.formats import UnitFormatError, read_units

log = logging.getLogger(__name__)

INDEX_NAME = "index.csv"


def reconstruct(cfg: DictConfig) -> int:
    """`audio-vq reconstruct`: encode each input and decode it with its own speaker."""
    dec = Renderer(cfg)
    sources = read_sources(cfg.input)
    if cfg.speaker is not None:
        dec.speaker_index(cfg.speaker, "speaker")
    elif any(src.speaker is None for src in sources):
        raise ConfigError(
            f"input={cfg.input}: the input names no speakers; give speaker=<name> "
            f"(one of: {', '.join(sorted(dec.model.speaker_index))})"
        )
    jobs, skipped = [], []
    for src, x, codes in _encode_all(dec, sources, skipped):
        name = cfg.speaker or src.speaker
        if name not in dec.model.speaker_index:  # a held-out speaker: report, go on with the rest
            skipped.append((src.path, f"speaker {name} is not in the model (held out?); give speaker=<name>"))
            continue
        index = dec.model.speaker_index[name]
        # the speaker decoded is the source's own (speaker= says who it is): its contour as it is
        jobs.append(Job(src.id, codes, index, dec.codec.contour(x, codes.shape[-1])))
    dec.write(jobs, "reconstruct", inputs=_paths(cfg.input, sources), others=[SKIPPED_NAME])
    if skipped:
        write_skipped(dec.out, skipped)
    print(f"wrote {len(jobs)} reconstruction(s) to {dec.out}" + (f"; skipped {len(skipped)}" if skipped else ""))
    return 0


def convert(cfg: DictConfig) -> int:
    """`audio-vq convert`: decode each input's codes with each target speaker's identity."""
    dec = Renderer(cfg)
    targets = _targets(dec, cfg.target_speaker)
    sources = read_sources(cfg.input)
    jobs, rows, skipped = [], [], []
    for src, x, codes in _encode_all(dec, sources, skipped):
        f0 = dec.codec.contour(x, codes.shape[-1])  # tracked once, moved into each target's register
        for target in targets:
            name = f"{src.id}__{target}"
            index = dec.speaker_index(target, "target_speaker")
            jobs.append(Job(name, codes, index, dec.in_register(f0, index, src)))
            rows.append(
                {
                    "source_id": src.id,
                    "source_speaker": src.speaker or "",
                    "target_speaker": target,
                    "path": f"{name}.wav",
                    "source_path": src.path,
                }
            )
    dec.write(jobs, "convert", inputs=_paths(cfg.input, sources), others=[INDEX_NAME, SKIPPED_NAME])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["source_id"])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(dec.out / INDEX_NAME, buf.getvalue())
    if skipped:
        write_skipped(dec.out, skipped)
    print(
        f"wrote {len(jobs)} conversion(s) ({len(jobs) // max(1, len(targets))} source(s) x {len(targets)} "
        f"target(s)) to {dec.out}, index in {dec.out / INDEX_NAME}"
    )
    return 0


def synthesize(cfg: DictConfig) -> int:
    """`audio-vq synthesize`: units to audio with one speaker."""
    dec = Renderer(cfg)
    speaker = dec.speaker_index(cfg.speaker, "speaker")
    k = dec.model.quantizer.codebook_size
    units_path = Path(cfg.units).expanduser()
    try:
        meta, records = read_units(units_path, codebook=dec.codebook)  # used by zerospeech only
        bins = meta.pitch_bins if meta is not None else None
        if dec.model.uses_pitch and bins is None:
            raise ConfigError(
                f"units={cfg.units}: model={cfg.model} is a pitch model (model.decoder.pitch="
                f"{dec.model.decoder.pitch}) and this unit file has no pitch stream; extract it with "
                "pitch_bins=N"
            )
        jobs = [dec.codec.synthesis_job(r.id, r.frames(), speaker, bins) for r in records]
    except UnitFormatError as e:
        raise ConfigError(f"units={cfg.units}: {e}") from None
    except ValueError as e:  # a pitch code out of range
        raise ConfigError(f"units={cfg.units}: {e}") from None
    if not jobs:
        raise ConfigError(f"units={cfg.units}: no utterances in this unit file")
    if meta is not None and meta.frame_rate is not None and meta.frame_rate != dec.frame_rate:
        raise ConfigError(
            f"units={cfg.units}: units at {meta.frame_rate:g} frames/s, this model decodes {dec.frame_rate:g} frames/s"
        )
    for uid, codes, *_ in jobs:
        if codes.size == 0:
            raise ConfigError(f"units={cfg.units}: utterance {uid} has no units")
        bad = codes[(codes < 0) | (codes >= k)]
        if bad.size:
            raise ConfigError(f"units={cfg.units}: utterance {uid} has unit {int(bad[0])} outside 0..{k - 1}")
    dec.write(jobs, "synthesize", inputs=[units_path, *units_path.parent.glob(f"{units_path.stem}.*")])
    print(f"wrote {len(jobs)} utterance(s) to {dec.out}")
    return 0


def _paths(input_path: str, sources: list[Source]) -> list[str]:
    """Every file an inference command reads: the input itself and each source's audio."""
    return [str(Path(input_path).expanduser()), *(s.path for s in sources)]


def _encode_all(dec: Renderer, sources: list[Source], skipped: list) -> Iterator[tuple[Source, np.ndarray, np.ndarray]]:
    """(source, its audio (T,) at the model's rate, its codes (Q, frames)) of each readable
    source; the others go to ``skipped``. Each file is read once, for its codes and its contour."""
    for src in tqdm(sources, desc="encode", unit="utt", dynamic_ncols=True):
        try:
            x = dec.codec.load(src.path)
            yield src, x, dec.codec.encode(x).codes
        except audio.AudioError as e:
            log.warning("skipping %s", e)
            skipped.append((src.path, e.reason))


def _targets(dec: Renderer, spec) -> list[str]:
    if spec == "all":
        return sorted(dec.model.speaker_index, key=dec.model.speaker_index.get)
    items = list(spec) if OmegaConf.is_list(spec) else str(spec).split(",")  # a,b arrives as a list
    names = [str(s).strip() for s in items if str(s).strip()]
    if not names:
        raise ConfigError("target_speaker: give a name, a,b,c or all")
    for n in names:
        dec.speaker_index(n, "target_speaker")
    return names
