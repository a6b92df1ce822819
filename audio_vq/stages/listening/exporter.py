"""`audio-vq export-listening-test`: a self-contained, blinded listening test in one folder.

model + manifest -> N utterances spread over speakers (seeded; plan.py)
  -> excerpts (first max_seconds) -> codes -> reconstruction (own speaker) and conversions
     (target speakers), generated once into <out>/generated/<settings hash>/ (a rerun resumes)
  -> per trial: the reference, [MUSHRA: hidden reference + 3.5/7 kHz anchors], the systems,
     [other systems' <id>.wav files]; all at one rate, mono, the reference's length (trials.py)
  -> every file to `loudness` LUFS; a trial that would clip is turned down as a whole
  -> two folders:
     <out>/serve/    what listeners may fetch, the only folder to copy into webMUSHRA or
                     BeaqleJS: stimuli/t03_5f2a1.wav (anonymised names, seeded order),
                     webmushra.yaml (checked with webMUSHRA's rules), beaqlejs_config.js
     <out>/private/  what they must not: key.csv, export.json, generated/ (the cache, files
                     named by speaker), index.html (a page naming the systems), skipped.tsv
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from ... import audio
from ...atomic import atomic_write_text
from ...checkpoint import model_checksum
from ...codec import Job
from ...config import ConfigError
from ...manifest import SKIPPED_NAME, read_manifest, write_skipped
from ...rendering import Renderer, Source, check_decode_options
from . import beaqle, html, plan, webmushra
from .key import (
    EXPORT_NAME,
    HIDDEN_REFERENCE,
    HIDDEN_REFERENCE_STIMULUS,
    PRIVATE_DIR,
    REFERENCE,
    SERVE_DIR,
    KeyRow,
    write_key,
)
from .options import Options, check_options
from .trials import (
    ANCHORS,
    Trial,
    anchor_cutoffs,
    build_trials,
    check_trial_sizes,
    decoded_name,
    excerpt,
    level_trials,
    safe_name,
)

log = logging.getLogger(__name__)

STIMULI_DIR = "stimuli"
CACHE_DIR = "generated"
TOKEN_HEX_DIGITS = 5  # 16^5 = 1M anonymous names
PCM_SUBTYPE = "PCM_16"
CACHE_SUBTYPE = "FLOAT"  # excerpts fed to the encoder: no requantisation


def export(cfg: DictConfig) -> int:
    """`audio-vq export-listening-test`."""
    opts = check_options(cfg)
    check_decode_options(cfg)
    utterances = read_manifest(opts.data)
    dec = Renderer(cfg)
    for name in opts.targets.names:
        dec.speaker_index(name, "targets")
    rate = opts.sample_rate or dec.sample_rate
    speakers = dec.model.speaker_index
    pool, split = plan.usable_utterances(utterances, opts.split, speakers)
    planned = plan.plan_trials(
        plan.choose_utterances(pool, opts.num_utterances, opts.seed), opts.targets, list(speakers), opts.seed
    )
    check_trial_sizes(opts, planned, rate)
    if opts.kind.anchors and len(anchor_cutoffs(rate)) < len(ANCHORS):
        log.warning(
            "sample_rate %d: anchors above its Nyquist frequency are left out (kept: %s)",
            rate,
            ", ".join(role for role, _ in anchor_cutoffs(rate)) or "none",
        )

    root = opts.out
    serve, out = root / SERVE_DIR, root / PRIVATE_DIR
    skipped: list[tuple[str, str]] = []
    cache = cache_folder(out, opts, dec)
    excerpts = write_excerpts(planned, dec, cache, opts, skipped)
    planned = [p for p in planned if p.utterance.id in excerpts]
    generate(dec, planned, excerpts)
    trials = build_trials(opts, planned, dec.out, rate, skipped)
    if not trials:
        _write_skipped(out, skipped)
        raise ConfigError(f"data={opts.data}: no usable trial; the reasons are in {out / SKIPPED_NAME}")
    level_trials(trials, rate, opts)
    rows = write_stimuli(serve, trials, rate, opts.seed)
    write_outputs(root, opts, trials, rows, rate, split, skipped, speakers)
    print(
        f"wrote the {opts.kind.name} test to {root}: {len(trials)} trial(s) of "
        f"{len({t.utterance.id for t in trials})} utterance(s), {len(rows)} stimulus file(s); "
        f"{SERVE_DIR}/ (copy it into the app: stimuli, "
        f"{webmushra.WEBMUSHRA_NAME}"
        + (f", {beaqle.BEAQLEJS_NAME}" if beaqle.supported(opts.kind) else "")
        + f"), {PRIVATE_DIR}/ (keep it from listeners: key.csv, {EXPORT_NAME}, {html.HTML_NAME}"
        + (f", {SKIPPED_NAME}" if skipped else "")
        + ")"
        + (f"; skipped {len(skipped)}" if skipped else "")
    )
    return 0


# ---------------------------------------------------------------------------------------------
# Generation (cached)


def cache_folder(out: Path, opts: Options, dec: Renderer) -> Path:
    """``<out>/generated/<hash>``: the hash covers everything the generated audio depends on,
    so a rerun with the same settings reuses the files and changed settings never do."""
    try:
        weights = model_checksum(opts.model)
    except Exception:  # an older model directory without checksum.sha256: its path stands in
        weights = str(Path(opts.model).resolve())
    settings = {"model": weights, "max_seconds": opts.max_seconds, "rate": dec.sample_rate, **dec.sampling()}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    folder = out / CACHE_DIR / digest
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "settings.json", json.dumps(settings, indent=1) + "\n")
    dec.out = folder / "decoded"
    return folder


def write_excerpts(
    planned: list[plan.PlannedTrial], dec: Renderer, cache: Path, opts: Options, skipped: list
) -> dict[str, Path]:
    """The excerpt each utterance's codes come from, at the model's rate (cached). Utterances
    that fail to load or are shorter than min_seconds are reported and left out."""
    out = {}
    for p in tqdm(planned, desc="excerpts", unit="utt", dynamic_ncols=True):
        u = p.utterance
        path = cache / "excerpts" / f"{safe_name(u.id)}.wav"
        try:
            cached = path.exists()
            x = audio.load(path, dec.sample_rate) if cached else excerpt(u.path, dec.sample_rate, opts.max_seconds)
        except audio.AudioError as e:
            skipped.append((u.path, e.reason))
            continue
        if len(x) < opts.min_seconds * dec.sample_rate:
            skipped.append(
                (
                    u.path,
                    f"too short for a listening test: {len(x) / dec.sample_rate:.3f} s "
                    f"< min_seconds={opts.min_seconds:g}",
                )
            )
            continue
        if not cached:
            audio.save(path, x, dec.sample_rate, subtype=CACHE_SUBTYPE)
        out[u.id] = path
    return out


def generate(dec: Renderer, planned: list[plan.PlannedTrial], excerpts: dict[str, Path]) -> None:
    """Reconstructions and conversions of every excerpt into ``dec.out`` (kept on a rerun)."""
    jobs = []
    for p in tqdm(planned, desc="encode", unit="utt", dynamic_ncols=True):
        u = p.utterance
        names = [(decoded_name(u, s), s) for s in ((u.speaker,) if p.reconstruct else ()) + p.targets]
        if all((dec.out / f"{n}.wav").exists() for n, _ in names):
            continue  # a rerun: nothing of this utterance left to generate, no need to encode
        src = Source(u.id, str(excerpts[u.id]), u.speaker)
        x = dec.codec.load(src.path)  # read once, for its codes and its contour
        codes = dec.codec.encode(x).codes
        f0 = dec.codec.contour(x, codes.shape[-1])
        for n, s in names:
            target = dec.speaker_index(s, "targets")
            jobs.append(Job(n, codes, target, dec.in_register(f0, target, src)))
    dec.write(jobs, "generate", inputs=[*excerpts.values(), *(p.utterance.path for p in planned)])


# ---------------------------------------------------------------------------------------------
# Blinding and writing


def write_stimuli(out: Path, trials: list[Trial], rate: int, seed: int) -> list[KeyRow]:
    """Trials in a seeded order, numbered t01..; each trial's rated stimuli in a seeded order,
    every file under an anonymous name; returns the key rows. Old stimulus files of an
    earlier export into the same folder are removed, so the folder matches its key."""
    r = plan.rng(seed, plan.STREAM_BLIND)
    order = [trials[i] for i in r.permutation(len(trials))]
    width = max(2, len(str(len(order))))
    tokens: set[str] = set()
    rows: list[KeyRow] = []
    folder = out / STIMULI_DIR
    for number, t in enumerate(tqdm(order, desc="write", unit="trial", dynamic_ncols=True), 1):
        t.id = f"t{number:0{width}d}"
        fixed = [s for s in t.stimuli if s.role in (REFERENCE, HIDDEN_REFERENCE)]
        rated = [s for s in t.stimuli if s.role not in (REFERENCE, HIDDEN_REFERENCE)]
        for s in fixed + [rated[i] for i in r.permutation(len(rated))]:
            stem = f"{t.id}_{_token(r, tokens)}"
            audio.save(folder / f"{stem}.wav", s.audio, rate, subtype=PCM_SUBTYPE)
            s.notes = [f"{STIMULI_DIR}/{stem}.wav: {n}" for n in s.notes]
            stimulus = HIDDEN_REFERENCE_STIMULUS if s.role == HIDDEN_REFERENCE else stem
            rows.append(
                KeyRow(
                    f"{STIMULI_DIR}/{stem}.wav",
                    t.id,
                    stimulus,
                    s.role,
                    s.system,
                    t.utterance.id,
                    t.utterance.speaker,
                    s.target_speaker,
                )
            )
    keep = {Path(row.file).name for row in rows}
    for old in folder.glob("*.wav"):
        if old.name not in keep:
            old.unlink()
    return rows


def _token(r: np.random.Generator, taken: set[str]) -> str:
    while True:
        token = f"{int(r.integers(16**TOKEN_HEX_DIGITS)):0{TOKEN_HEX_DIGITS}x}"
        if token not in taken:
            taken.add(token)
            return token


def write_outputs(
    root: Path,
    opts: Options,
    trials: list[Trial],
    rows: list[KeyRow],
    rate: int,
    split: str,
    skipped: list,
    known: dict[str, int],
) -> None:
    """serve/: the webMUSHRA and BeaqleJS configs (the former checked); private/: key.csv,
    index.html, export.json."""
    serve, out = root / SERVE_DIR, root / PRIVATE_DIR
    write_key(out, rows)
    name = opts.test_name or root.resolve().name
    test_id = re.sub(r"[^\w-]+", "-", name).strip("-").lower() or "listening-test"
    grouped = webmushra.group_trials(rows)
    prefix = opts.webmushra_prefix if opts.webmushra_prefix is not None else webmushra.default_prefix(root)
    config = webmushra.build_config(opts.kind, grouped, prefix.rstrip("/"), _plain(name), test_id, opts.strict)
    webmushra.write_config(serve, config)
    problems = webmushra.check_config(config, serve, prefix.rstrip("/"))
    if problems:  # the export's own bug if it ever happens: say what, do not leave a broken test
        raise RuntimeError(f"{serve / webmushra.WEBMUSHRA_NAME} fails webMUSHRA's checks: {'; '.join(problems)}")
    if beaqle.supported(opts.kind):
        bprefix = opts.beaqlejs_prefix if opts.beaqlejs_prefix is not None else beaqle.default_prefix(root)
        beaqle.write_config(serve, opts.kind, beaqle.build_config(opts.kind, grouped, bprefix.rstrip("/"), name))
    html.write_page(out, rows, name, opts.kind.name, base=f"../{SERVE_DIR}/")
    _write_skipped(out, skipped)
    summary = {
        "kind": opts.kind.name,
        "test_name": name,
        "test_id": test_id,
        "model": opts.model,
        "data": str(opts.data),
        "split": split,
        "seed": opts.seed,
        "sample_rate": rate,
        "channels": 1,
        "subtype": PCM_SUBTYPE,
        "max_seconds": opts.max_seconds,
        "loudness_lufs": opts.loudness,
        "peak_ceiling_dbfs": opts.peak_ceiling,
        "strict": opts.strict,
        "webmushra_prefix": prefix,
        "anchors": [role for role, _ in anchor_cutoffs(rate)] if opts.kind.anchors else [],
        "utterances": sorted({t.utterance.id for t in trials}),
        "trials": len(trials),
        "files": len(rows),
        "trial_gain_db": {t.id: round(t.gain_db, 2) for t in trials if t.gain_db < 0},
        "notes": [n for t in trials for s in t.stimuli for n in s.notes],
        "skipped": len(skipped),
        # any-to-many: utterances of speakers the model never saw are converted, not reconstructed
        "unseen_speaker_utterances": sorted({t.utterance.id for t in trials if t.utterance.speaker not in known}),
        "unseen_speakers_note": "utterances of speakers the model never saw have no reconstruction: the decoder "
        "has no embedding for their voice; their trials hold conversions to known voices",
    }
    atomic_write_text(out / EXPORT_NAME, json.dumps(summary, indent=1) + "\n")


def _plain(name: str) -> str:
    """A test name safe in webMUSHRA's results POST, which it does not URL-encode: '&' would cut
    the request (no results written), '+' and '%' would be decoded."""
    return re.sub(r"[&+%]", "-", name)


def _write_skipped(out: Path, skipped: list) -> None:
    """skipped.tsv when anything was left out; an older one from an earlier export is removed."""
    if skipped:
        write_skipped(out, skipped)
    else:
        (out / SKIPPED_NAME).unlink(missing_ok=True)
