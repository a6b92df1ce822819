"""`audio-vq sample`: speech from the prior (the paper's "samples from the prior"), and
prompted continuation, rendered by the VQ-VAE's WaveNet decoder.

    prior + VQ-VAE (K, frame rate and model checksum must match)
      [prompt audio -> the VQ-VAE's units (as extract gives them) | a unit file] -> first prompt_seconds
      -> the prior samples units (speaker's start token; temperature, top_k, top_p) past its
         max_len in a sliding window; a prior with a duration head samples run lengths too
      -> <out>/units.<format> (+ meta.json), samples.csv (name, speaker, prompt, where the
         continuation starts), <out>/<name>.wav (rendered with Renderer.write: seeded per file,
         resumable, fingerprinted)

With a hierarchical model (VQ-VAE-2's two levels) sampling takes two priors, as the paper's:
``prior=`` over the top level (train-prior level=0) and ``bottom_prior=`` over the bottom level
given the top (train-prior level=1 condition_level=0). The top is sampled first, at its own
rate; its codes, held over their frames, condition the bottom's; both levels are rendered.

With a pitch model (model.decoder.pitch != none) sampling also takes ``pitch_prior=``, a prior
over the pitch stream given the content (train-prior on a unit file extracted with
``pitch_bins=N``: level=<its last level> condition_level=0): the content is drawn first, then
each frame's pitch code given the content, and the contour those codes give in the speaker's
register renders with the content. A prompt is continued on both (its audio's pitch stream, or
a unit file's last level).

Sample i is drawn from uniforms seeded by (seed, its name), so a rerun draws the same units
and the audio of a finished file is kept.
"""

from __future__ import annotations

import csv
import io
import logging
import zlib
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, open_dict

from .. import contours
from ..atomic import atomic_write_text
from ..checkpoint import load_prior, model_checksum
from ..config import ConfigError
from ..models.prior import UnitPrior
from ..options import validate
from ..rendering import Renderer, read_sources
from ..units.extraction import deduplicate, expand
from ..units.formats import (
    META_SUFFIX,
    WRITERS,
    Record,
    UnitFormatError,
    UnitsMeta,
    detect_format,
    read_units,
    write_units,
)

log = logging.getLogger(__name__)

SAMPLES_NAME = "samples.csv"
UNIT_FILE_SUFFIXES = (".txt", ".jsonl", ".npz", ".units")
PITCH_STREAM_KEY = 1  # the pitch prior's uniforms: (seed, name, 1), beside the content's (seed, name)


def sample(cfg: DictConfig) -> int:
    """`audio-vq sample`."""
    _check(cfg)
    prior, pcfg, prior_speakers = load_prior(cfg.prior)
    decoding = cfg.copy()
    with open_dict(decoding):
        decoding.temperature = cfg.decoder_temperature  # the Renderer's key is the WaveNet's temperature
    dec = Renderer(decoding)
    if dec.model.uses_pitch != (cfg.pitch_prior is not None):
        raise ConfigError(
            f"pitch_prior={cfg.pitch_prior}: "
            + (
                f"model={cfg.model} is a pitch model (model.decoder.pitch={dec.model.decoder.pitch}): sampling needs "
                "pitch_prior= over the pitch stream given the content (extract pitch_bins=N, then train-prior "
                "level=<the last level> condition_level=0)"
                if dec.model.uses_pitch
                else f"model={cfg.model} has no pitch input: give pitch_prior=null"
            )
        )
    hierarchy = dec.model.min_levels > 1
    if hierarchy != (cfg.bottom_prior is not None):
        raise ConfigError(
            f"bottom_prior={cfg.bottom_prior}: "
            + (
                f"model={cfg.model} is a hierarchy: sampling needs prior= over its top level (train-prior level=0) and "
                "bottom_prior= over its bottom level given the top (train-prior level=1 condition_level=0)"
                if hierarchy
                else f"model={cfg.model} has no hierarchy: give bottom_prior=null"
            )
        )
    _check_match(cfg, "prior", pcfg, dec, level=0, condition_level=None)
    speaker = dec.speaker_index(cfg.speaker, "speaker")
    start = _start_token(cfg, "prior", prior_speakers)
    bottom = pitch_stream = None
    if dec.model.uses_pitch:
        if hierarchy:
            raise ConfigError(f"model={cfg.model}: sampling a hierarchy with a pitch stream is not supported")
        pitch_prior, pitch_cfg, pitch_speakers = load_prior(cfg.pitch_prior)
        levels = dec.model.num_quantizers
        _check_match(
            cfg,
            "pitch_prior",
            pitch_cfg,
            dec,
            level=levels,
            condition_level=0,
            codebook_size=int(pitch_cfg["units"]["codebook_size"]),
        )
        pitch_stream = (
            pitch_prior,
            _start_token(cfg, "pitch_prior", pitch_speakers),
            int(pitch_cfg["units"]["codebook_size"]) - 1,
        )  # bins: codes 0 (unvoiced) .. bins
    if hierarchy:
        if prior.duration_head is not None:
            raise ConfigError(
                f"prior={cfg.prior}: models deduplicated units; a hierarchy's top level is sampled "
                "frame by frame (train-prior level=0 deduplicate=false)"
            )
        bottom_prior, bottom_cfg, bottom_speakers = load_prior(cfg.bottom_prior)
        _check_match(cfg, "bottom_prior", bottom_cfg, dec, level=1, condition_level=0)
        bottom = (bottom_prior, _start_token(cfg, "bottom_prior", bottom_speakers))
    frames = max(1, round(cfg.seconds * dec.frame_rate))
    bins = None if pitch_stream is None else pitch_stream[2]
    prompts = _prompts(cfg, dec, bins)[: cfg.max_prompts] if cfg.prompt is not None else [(None, None)]
    rows, records = [], []
    for prompt_id, prompt in prompts:
        names = [f"{prompt_id}__cont{j:02d}" if prompt_id else f"sample_{j:04d}" for j in range(cfg.num_samples)]
        if bottom is None:
            codes = [c[None] for c in _sample(prior, names, frames, None if prompt is None else prompt[0], start, cfg)]
            if pitch_stream is not None:
                codes = _sample_pitch(pitch_stream, codes, names, frames, None if prompt is None else prompt[-1], cfg)
        else:
            codes = _sample_hierarchy(
                (prior, start), bottom, dec.model.quantizer.level_ratios[0], names, frames, prompt, cfg
            )
        for name, c in zip(names, codes):  # c: (levels, frames)
            wav = str((dec.out / f"{name}.wav").resolve())  # rendered below: lhotse and parquet point to it
            records.append(
                Record(
                    name, c[0] if len(c) == 1 else c, None, c.shape[1] * dec.model.hop, speaker=cfg.speaker, path=wav
                )
            )
            p = 0 if prompt is None else prompt.shape[1]
            rows.append(
                {
                    "name": name,
                    "speaker": cfg.speaker,
                    "prompt": prompt_id or "",
                    "prompt_frames": p,
                    "continuation_starts_s": round(p / dec.frame_rate, 4),
                    "frames": c.shape[1],
                }
            )
    units_path = dec.out / f"units{WRITERS[cfg.format].suffix}"
    # codes (levels, frames): a one-level prior's are level 0, which decodes alone (a prefix); a
    # pitch stream (the last level) becomes a contour in the speaker's register
    bins = None if pitch_stream is None else pitch_stream[2]
    jobs = [dec.codec.synthesis_job(r.id, r.units, speaker, bins) for r in records]
    dec.write(
        jobs,
        "render",
        inputs=[] if cfg.prompt is None else [cfg.prompt],
        others=[units_path.name, units_path.name + META_SUFFIX, SAMPLES_NAME],
    )
    levels = 2 if hierarchy or pitch_stream is not None else 1
    meta = UnitsMeta(
        cfg.format,
        dec.frame_rate,
        int(pcfg["units"]["codebook_size"]),
        dec.sample_rate,
        model_checksum(cfg.model),
        False,
        num_codebooks=levels,
        frame_rates=dec.extractor.frame_rates
        if hierarchy
        else [dec.frame_rate] * 2
        if pitch_stream is not None
        else None,
        pitch_bins=None if pitch_stream is None else pitch_stream[2],
        extra={
            "prior": str(Path(cfg.prior).expanduser().resolve()),
            "seed": cfg.seed,
            "temperature": cfg.temperature,
            "top_k": cfg.top_k,
            "top_p": cfg.top_p,
            "speaker": cfg.speaker,
            "prompt": cfg.prompt,
            "prompt_seconds": cfg.prompt_seconds,
            **({"bottom_prior": str(Path(cfg.bottom_prior).expanduser().resolve())} if hierarchy else {}),
            **({"pitch_prior": str(Path(cfg.pitch_prior).expanduser().resolve())} if pitch_stream is not None else {}),
        },
    )
    write_units(units_path, records, meta)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(dec.out / SAMPLES_NAME, buf.getvalue())
    print(
        f"wrote {len(records)} sample(s) of {cfg.seconds:g} s to {dec.out} (units in {units_path.name}, "
        f"where each continuation starts in {SAMPLES_NAME})"
    )
    return 0


def _start_token(cfg: DictConfig, key: str, prior_speakers: dict[str, int]) -> int | None:
    """The speaker's start-token index of a prior with speakers (None: a prior without)."""
    if not prior_speakers:
        return None
    if cfg.speaker not in prior_speakers:
        raise ConfigError(
            f"speaker={cfg.speaker}: the {key} has no start token for it; it knows: {', '.join(sorted(prior_speakers))}"
        )
    return prior_speakers[cfg.speaker]


def _check(cfg: DictConfig) -> None:
    """The keys' own checks (SampleOptions), then that each prior directory exists."""
    validate(cfg)
    WRITERS[cfg.format].check_available()
    for key in ("prior", "bottom_prior", "pitch_prior"):
        folder = cfg[key]
        if (folder is not None or key == "prior") and not Path(folder).expanduser().is_dir():
            raise ConfigError(f"{key}={folder!r}: expected {'a' if key == 'prior' else 'null or a'} prior directory")


def _check_match(
    cfg: DictConfig,
    key: str,
    pcfg: dict,
    dec: Renderer,
    level: int,
    condition_level: int | None,
    codebook_size: int | None = None,
) -> None:
    """A prior (``key``: prior, bottom_prior or pitch_prior) and a VQ-VAE that do not share
    their units, or a prior of another level than ``level`` (conditioned on
    ``condition_level``), are a one-line error. ``codebook_size``: the level's symbols when they
    are not the model's K (the pitch stream's)."""
    units, where = pcfg["units"], f"{key}={cfg[key]}"
    k = dec.model.quantizer.codebook_size if codebook_size is None else codebook_size
    if int(units["codebook_size"]) != k:
        raise ConfigError(f"{where}: trained on K = {units['codebook_size']} units, model={cfg.model} has K = {k}")
    mine = (units.get("level") or 0, units.get("condition_level"))  # (0, None): a one-codebook file's prior
    if mine != (level, condition_level):
        given = "" if condition_level is None else f" given level {condition_level}"
        raise ConfigError(
            f"{where}: models level {mine[0]}"
            + ("" if mine[1] is None else f" given level {mine[1]}")
            + f"; sampling model={cfg.model} needs {key}= over level {level}{given} "
            f"(train-prior level={level}"
            + ("" if condition_level is None else f" condition_level={condition_level}")
            + ")"
        )
    rate = dec.extractor.frame_rates[level] if dec.model.num_quantizers > level else dec.frame_rate
    if units.get("frame_rate") and abs(float(units["frame_rate"]) - rate) > 1e-6:
        raise ConfigError(
            f"{where}: trained on units at {units['frame_rate']:g} frames/s, model={cfg.model} decodes {rate:g}"
        )
    mine = model_checksum(cfg.model)
    if units.get("model_checksum") and units["model_checksum"] != mine:
        raise ConfigError(
            f"{where}: trained on the units of another model (checksum "
            f"{units['model_checksum'][:12]}..., model={cfg.model} is {mine[:12]}...)"
        )
    if not units.get("model_checksum"):
        log.warning("the prior's units do not say which model made them: K and frame rate match, the codes may not")


def _prompts(cfg: DictConfig, dec: Renderer, pitch_bins: int | None = None) -> list[tuple[str, np.ndarray]]:
    """(id, the first prompt_seconds of frame-level codes (levels, frames)) of every prompt; a
    hierarchy's prompts keep whole groups of the frames a top code spans; a pitch model's hold
    the pitch stream in ``pitch_bins`` bins as their last level."""
    keep = max(1, round(cfg.prompt_seconds * dec.frame_rate))
    path = Path(cfg.prompt).expanduser()
    is_units = path.suffix in UNIT_FILE_SUFFIXES and (
        Path(f"{path}{META_SUFFIX}").is_file() or path.suffix != ".txt" or _looks_like_units(path)
    )
    if is_units:
        try:
            _, records = read_units(path, detect_format(path))
            prompts = [(r.id, np.atleast_2d(r.frames())[:, :keep]) for r in records]
        except UnitFormatError as e:
            raise ConfigError(f"prompt={cfg.prompt}: {e}") from None
    else:
        prompts = [(src.id, _prompt_codes(dec, src, pitch_bins)[:, :keep]) for src in read_sources(cfg.prompt)]
    if pitch_bins is not None:
        for uid, codes in prompts:
            if codes.shape[0] != 2 or codes[1].max(initial=0) > pitch_bins:
                raise ConfigError(
                    f"prompt={cfg.prompt}: utterance {uid} has no pitch stream of {pitch_bins} bins as "
                    "its last level (extract the prompt with the pitch prior's pitch_bins)"
                )
    if dec.model.min_levels > 1:
        span = dec.model.quantizer.level_ratios[0]
        for uid, codes in prompts:
            if codes.shape[0] != dec.model.num_quantizers:
                raise ConfigError(
                    f"prompt={cfg.prompt}: utterance {uid} holds {codes.shape[0]} level(s); "
                    f"model={cfg.model} samples {dec.model.num_quantizers}"
                )
        prompts = [(uid, codes[:, : max(span, codes.shape[1] // span * span)]) for uid, codes in prompts]
    return prompts


def _prompt_codes(dec: Renderer, src, pitch_bins: int | None) -> np.ndarray:
    """A prompt recording's codes (levels, frames), with its pitch stream in ``pitch_bins`` bins
    as the last level when given (a pitch model's)."""
    x = dec.codec.load(src.path)
    codes = dec.codec.encode(x).codes
    if pitch_bins is None:
        return codes
    stream = contours.pitch_codes(dec.model, x, codes.shape[-1], dec.model.speaker_index.get(src.speaker), pitch_bins)
    return np.vstack([codes, stream[None]])


def _looks_like_units(path: Path) -> bool:
    """A .txt of ``id|units`` lines rather than a file list."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = next((line for line in f if line.strip()), "")
    head, _, tail = first.partition("|")
    return bool(tail) and all(t.isdigit() for t in tail.split())


def _name_rngs(names: list[str], seed: int) -> list[np.random.Generator]:
    """One generator per sample, seeded by (seed, its name): a sample's draws do not depend on
    the batch it is in, and a rerun draws the same."""
    return [np.random.default_rng([seed, zlib.crc32(n.encode("utf-8"))]) for n in names]


@torch.no_grad()
def _sample(
    prior: UnitPrior, names: list[str], frames: int, prompt: np.ndarray | None, start: int | None, cfg: DictConfig
) -> list[np.ndarray]:
    """Frame-level codes of each sample: the prompt's frames, then ``frames`` sampled ones."""
    dedup = prior.duration_head is not None
    context = np.zeros(0, np.int64) if prompt is None else np.asarray(prompt, np.int64)
    context_units = deduplicate(context)[0] if dedup and len(context) else context
    rngs = _name_rngs(names, cfg.seed)
    uniforms = torch.from_numpy(np.stack([r.random((frames, 2)) for r in rngs])).float()  # a unit lasts >= 1 frame
    speakers = None if start is None else torch.full((len(names),), start)
    units, durations = prior.generate(
        frames,
        batch=len(names),
        speakers=speakers,
        prompt=torch.from_numpy(np.tile(context_units, (len(names), 1))),
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        uniforms=uniforms,
        frames=frames,
    )
    out = []
    for i in range(len(names)):
        cont = units[i].numpy()
        if dedup:
            cont = expand(cont, durations[i].numpy())[:frames]
        out.append(np.concatenate([context, cont[:frames]]).astype(np.int64))
    return out


@torch.no_grad()
def _sample_pitch(
    pitch_stream: tuple[UnitPrior, int | None, int],
    content: list[np.ndarray],
    names: list[str],
    frames: int,
    prompt: np.ndarray | None,
    cfg: DictConfig,
) -> list[np.ndarray]:
    """(2, P + frames) per sample: its content codes (1, P + frames) and a pitch stream drawn by
    the pitch prior given them, frame by frame, continuing the prompt's stream (P,)."""
    prior, start, _ = pitch_stream
    given = np.zeros(0, np.int64) if prompt is None else np.asarray(prompt, np.int64)
    batch = len(names)
    rngs = [np.random.default_rng([cfg.seed, zlib.crc32(n.encode("utf-8")), PITCH_STREAM_KEY]) for n in names]
    uniforms = torch.from_numpy(np.stack([r.random((frames, 2)) for r in rngs])).float()
    condition = torch.from_numpy(np.stack([c[0] for c in content]))  # (B, P + frames)
    new = prior.generate(
        frames,
        batch=batch,
        speakers=None if start is None else torch.full((batch,), start),
        prompt=torch.from_numpy(np.tile(given, (batch, 1))),
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        uniforms=uniforms,
        condition=condition,
    )[0]
    return [np.stack([content[i][0], np.concatenate([given, new[i].numpy()])]).astype(np.int64) for i in range(batch)]


@torch.no_grad()
def _sample_hierarchy(
    top: tuple[UnitPrior, int | None],
    bottom: tuple[UnitPrior, int | None],
    span: int,
    names: list[str],
    frames: int,
    prompt: np.ndarray | None,
    cfg: DictConfig,
) -> list[np.ndarray]:
    """Codes (2, prompt frames + ``frames``) of each sample of a hierarchy: the top level drawn
    by ``top`` (a prior and its start token) at its own rate, one code per ``span`` frames, then
    the bottom level by ``bottom`` given the top codes held over their frames; a prompt (2, P),
    P a multiple of span (or the utterance's last frames), is continued on both levels."""
    (top_prior, top_start), (bottom_prior, bottom_start) = top, bottom
    given = np.zeros((2, 0), np.int64) if prompt is None else np.asarray(prompt, np.int64)
    top_given = given[0, ::span]
    top_steps = -(-(given.shape[1] + frames) // span) - len(top_given)
    rngs = _name_rngs(names, cfg.seed)
    top_uniforms = torch.from_numpy(np.stack([r.random((top_steps, 2)) for r in rngs])).float()
    bottom_uniforms = torch.from_numpy(np.stack([r.random((frames, 2)) for r in rngs])).float()
    batch = len(names)

    def starts(start):
        return None if start is None else torch.full((batch,), start)

    def draw(prior, start, context, steps, uniforms, condition=None):
        return prior.generate(
            steps,
            batch=batch,
            speakers=starts(start),
            prompt=torch.from_numpy(np.tile(context, (batch, 1))),
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            uniforms=uniforms,
            condition=condition,
        )[0]

    new_top = draw(top_prior, top_start, top_given, top_steps, top_uniforms)
    top_codes = torch.cat([torch.from_numpy(np.tile(top_given, (batch, 1))), new_top], dim=1)
    held = top_codes.repeat_interleave(span, dim=1)[:, : given.shape[1] + frames]  # (B, P + frames)
    new_bottom = draw(bottom_prior, bottom_start, given[1], frames, bottom_uniforms, condition=held)
    bottom_codes = torch.cat([torch.from_numpy(np.tile(given[1], (batch, 1))), new_bottom], dim=1)
    return [np.stack([held[i].numpy(), bottom_codes[i].numpy()]).astype(np.int64) for i in range(batch)]
