"""`audio-vq sample`: speech from the prior (the paper's "samples from the prior"), and
prompted continuation, rendered by the VQ-VAE's WaveNet decoder.

    prior + VQ-VAE (K, frame rate and model checksum must match)
      [prompt audio -> the VQ-VAE's units (as extract gives them) | a unit file] -> first prompt_seconds
      -> the prior samples units (speaker's start token; temperature, top_k, top_p) past its
         max_len in a sliding window; a prior with a duration head samples run lengths too
      -> <out>/units.<format> (+ meta.json), samples.csv (name, speaker, prompt, where the
         continuation starts), <out>/<name>.wav (rendered with Decoder.write: seeded per file,
         resumable, fingerprinted)

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
from omegaconf import DictConfig, OmegaConf, open_dict

from .atomic import atomic_write_text
from .checkpoint import load_prior, model_checksum
from .config import ConfigError, is_int, is_number, require
from .inference import Decoder, read_sources
from .models.prior import UnitPrior
from .unit_formats import FORMATS, META_SUFFIX, Record, UnitFormatError, UnitsMeta, detect_format, read_units, write_units
from .units import deduplicate, expand

log = logging.getLogger(__name__)

SAMPLES_NAME = "samples.csv"
UNIT_SUFFIX = {"gslm": ".txt", "textless": "", "jsonl": ".jsonl", "npz": ".npz"}
UNIT_FILE_SUFFIXES = (".txt", ".jsonl", ".npz", ".units")


def sample(cfg: DictConfig) -> int:
    """`audio-vq sample`."""
    _check(cfg)
    prior, pcfg, prior_speakers = load_prior(cfg.prior)
    decoding = cfg.copy()
    with open_dict(decoding):
        decoding.temperature = cfg.decoder_temperature  # the Decoder's key is the WaveNet's temperature
    dec = Decoder(decoding)
    _check_match(cfg, pcfg, dec)
    speaker = dec.speaker_index(cfg.speaker, "speaker")
    start = None
    if prior_speakers:
        if cfg.speaker not in prior_speakers:
            raise ConfigError(f"speaker={cfg.speaker}: the prior has no start token for it; it knows: "
                              f"{', '.join(sorted(prior_speakers))}")
        start = prior_speakers[cfg.speaker]
    frames = max(1, round(cfg.seconds * dec.frame_rate))
    prompts = _prompts(cfg, dec)[: cfg.max_prompts] if cfg.prompt is not None else [(None, None)]
    rows, records = [], []
    for prompt_id, prompt in prompts:
        names = [f"{prompt_id}__cont{j:02d}" if prompt_id else f"sample_{j:04d}" for j in range(cfg.num_samples)]
        codes = _sample(prior, names, frames, prompt, start, cfg)
        for name, c in zip(names, codes):
            records.append(Record(name, c, None, len(c) * dec.model.hop))
            p = 0 if prompt is None else len(prompt)
            rows.append({"name": name, "speaker": cfg.speaker, "prompt": prompt_id or "", "prompt_frames": p,
                         "continuation_starts_s": round(p / dec.frame_rate, 4), "frames": len(c)})
    units_path = dec.out / f"units{UNIT_SUFFIX[cfg.format]}"
    jobs = [(r.id, r.units[None], speaker) for r in records]  # the prior's codes: level 0 (a prefix decodes)
    dec.write(jobs, "render", inputs=[] if cfg.prompt is None else [cfg.prompt],
              others=[units_path.name, units_path.name + META_SUFFIX, SAMPLES_NAME])
    meta = UnitsMeta(cfg.format, dec.frame_rate, int(pcfg["units"]["codebook_size"]), dec.sample_rate,
                     model_checksum(cfg.model), False,
                     extra={"prior": str(Path(cfg.prior).expanduser().resolve()), "seed": cfg.seed,
                            "temperature": cfg.temperature, "top_k": cfg.top_k, "top_p": cfg.top_p,
                            "speaker": cfg.speaker, "prompt": cfg.prompt, "prompt_seconds": cfg.prompt_seconds})
    write_units(units_path, records, meta)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(dec.out / SAMPLES_NAME, buf.getvalue())
    print(f"wrote {len(records)} sample(s) of {cfg.seconds:g} s to {dec.out} (units in {units_path.name}, "
          f"where each continuation starts in {SAMPLES_NAME})")
    return 0


def _check(cfg: DictConfig) -> None:
    require(cfg, "prior", lambda v: isinstance(v, str) and Path(v).expanduser().is_dir(), "a prior directory")
    require(cfg, "num_samples", lambda v: is_int(v) and v >= 1, "an integer >= 1")
    require(cfg, "seconds", lambda v: is_number(v) and v > 0, "seconds > 0")
    require(cfg, "prompt_seconds", lambda v: is_number(v) and v > 0, "seconds > 0")
    require(cfg, "speaker", lambda v: isinstance(v, str) and v != "", "a speaker name")
    require(cfg, "top_k", lambda v: v is None or (is_int(v) and v >= 1), "null or an integer >= 1")
    require(cfg, "top_p", lambda v: v is None or (is_number(v) and 0 < v <= 1), "null or a number in (0, 1]")
    require(cfg, "decoder_temperature", lambda v: is_number(v) and v > 0, "a number > 0")
    require(cfg, "max_prompts", lambda v: v is None or (is_int(v) and v >= 1), "null or an integer >= 1")
    require(cfg, "format", lambda v: v in UNIT_SUFFIX, " | ".join(UNIT_SUFFIX))


def _check_match(cfg: DictConfig, pcfg: dict, dec: Decoder) -> None:
    """A prior and a VQ-VAE that do not share their units are a one-line error."""
    units = pcfg["units"]
    k = dec.model.quantizer.codebook_size
    if int(units["codebook_size"]) != k:
        raise ConfigError(f"prior={cfg.prior}: trained on K = {units['codebook_size']} units, model={cfg.model} "
                          f"has K = {k}")
    if units.get("frame_rate") and abs(float(units["frame_rate"]) - dec.frame_rate) > 1e-6:
        raise ConfigError(f"prior={cfg.prior}: trained on units at {units['frame_rate']:g} frames/s, model={cfg.model} "
                          f"decodes {dec.frame_rate:g}")
    mine = model_checksum(cfg.model)
    if units.get("model_checksum") and units["model_checksum"] != mine:
        raise ConfigError(f"prior={cfg.prior}: trained on the units of another model (checksum "
                          f"{units['model_checksum'][:12]}..., model={cfg.model} is {mine[:12]}...)")
    if not units.get("model_checksum"):
        log.warning("the prior's units do not say which model made them: K and frame rate match, the codes may not")


def _prompts(cfg: DictConfig, dec: Decoder) -> list[tuple[str, np.ndarray]]:
    """(id, the first prompt_seconds of frame-level codes) of every prompt."""
    keep = max(1, round(cfg.prompt_seconds * dec.frame_rate))
    path = Path(cfg.prompt).expanduser()
    is_units = path.suffix in UNIT_FILE_SUFFIXES and (Path(f"{path}{META_SUFFIX}").is_file() or path.suffix != ".txt"
                                                      or _looks_like_units(path))
    if is_units:
        try:
            _, records = read_units(path, detect_format(path))
            # the prior models one codebook: of a file of several, the first level
            return [(r.id, np.atleast_2d(r.frames())[0][:keep]) for r in records]
        except UnitFormatError as e:
            raise ConfigError(f"prompt={cfg.prompt}: {e}") from None
    return [(src.id, dec.encode(src)[0, :keep]) for src in read_sources(cfg.prompt)]


def _looks_like_units(path: Path) -> bool:
    """A .txt of ``id|units`` lines rather than a file list."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = next((line for line in f if line.strip()), "")
    head, _, tail = first.partition("|")
    return bool(tail) and all(t.isdigit() for t in tail.split())


@torch.no_grad()
def _sample(prior: UnitPrior, names: list[str], frames: int, prompt: np.ndarray | None, start: int | None,
            cfg: DictConfig) -> list[np.ndarray]:
    """Frame-level codes of each sample: the prompt's frames, then ``frames`` sampled ones."""
    dedup = prior.duration_head is not None
    context = np.zeros(0, np.int64) if prompt is None else np.asarray(prompt, np.int64)
    context_units = deduplicate(context)[0] if dedup and len(context) else context
    rngs = [np.random.default_rng([cfg.seed, zlib.crc32(n.encode("utf-8"))]) for n in names]
    uniforms = torch.from_numpy(np.stack([r.random((frames, 2)) for r in rngs])).float()  # a unit lasts >= 1 frame
    speakers = None if start is None else torch.full((len(names),), start)
    units, durations = prior.generate(frames, batch=len(names), speakers=speakers,
                                      prompt=torch.from_numpy(np.tile(context_units, (len(names), 1))),
                                      temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p,
                                      uniforms=uniforms, frames=frames)
    out = []
    for i in range(len(names)):
        cont = units[i].numpy()
        if dedup:
            cont = expand(cont, durations[i].numpy())[:frames]
        out.append(np.concatenate([context, cont[:frames]]).astype(np.int64))
    return out
