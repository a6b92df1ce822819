"""`audio-vq evaluate`: one report on a model's units and audio.

    manifest (held-out splits) -> audio -> units (UnitExtractor)
      -> codebook health and bitrate
      -> phonetic quality (with alignments): the model vs random codes vs MFCC k-means, same K
      -> ABX on codebook vectors (and on MFCCs for reference)
      -> reconstruction of excerpts through the generator: MCD, MR-STFT, log-mel L1, SI-SNR, STOI
      -> voice conversion (several speakers): speaker probes, parallel MCD when texts repeat;
         sources of speakers the model never saw are converted to known voices, reported apart
      -> F0 of generated audio (pYIN) vs its source's or its target speaker's
      -> the field's voice instruments: SECS (resemblyzer), WORLD/SPTK MCD, F0 agreement and
         pitch offsets (WORLD Harvest), F0 contours of one utterance
    -> <out>/report.json, report.md, *.png, audio/ (the generated excerpts)
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from .. import audio
from ..atomic import atomic_write_text
from ..config import ConfigError, is_int, is_number, require, resolve_device
from ..generate import Generator
from ..inference import check_decode_options
from ..manifest import Utterance, read_manifest, spread_over_speakers, write_skipped
from ..units import UnitExtractor
from . import plots, sections, speaker_encoder, world
from .alignments import AlignmentError, frame_labels, load_alignments
from .markdown import render
from .phonetic import mfcc_features, mfcc_kmeans_units, random_units
from .speaker_encoder import SpeakerEncoder

log = logging.getLogger(__name__)

REPORT_JSON, REPORT_MD = "report.json", "report.md"
PROBE_UTTERANCES_PER_SPEAKER = 12  # real training utterances per speaker the speaker-ID probe is fit on
SPECTROGRAM_ROWS = 3
F0_REFERENCE_UTTERANCES = 4  # real utterances per speaker whose pooled median F0 is a target's pitch
MAX_OTHER_SPEAKERS = 7  # speakers each excerpt is also decoded with (teacher-forced) for speaker use
F0_PLOT = "f0_contours.png"


def evaluate(cfg: DictConfig) -> int:
    _check(cfg)
    out = Path(cfg.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    extractor = UnitExtractor.from_pretrained(cfg.model, resolve_device(cfg.device), levels=cfg.levels)
    manifest = read_manifest(cfg.data)
    utts = _select(manifest, _splits(cfg.split), cfg.max_utterances, cfg.data)
    sr, k = extractor.sample_rate, extractor.codebook_size
    waves, skipped = _load(utts, sr)
    utts = [u for u in utts if u.id in waves]
    levels = {}  # utterance -> codes (Q, frames)
    for start in tqdm(range(0, len(utts), cfg.batch_size), desc="units", unit="batch", dynamic_ncols=True):
        batch = utts[start:start + cfg.batch_size]
        for u, units in zip(batch, extractor.extract_batch([waves[u.id] for u in batch])):
            levels[u.id] = units.codes
    report: dict = {"model": str(Path(cfg.model).expanduser().resolve()), "model_checksum": extractor.checksum,
                    "data": str(cfg.data), "splits": _splits(cfg.split), "utterances": len(utts),
                    "skipped": len(skipped), "config": OmegaConf.to_container(cfg)}
    if extractor.num_quantizers == 1:
        codes = {u: c[0] for u, c in levels.items()}
        report["codebook"] = sections.codebook_health(codes, k, extractor.frame_rate)
    else:  # the units the phonetic and speaker sections score: one symbol per frame, the Q-tuple
        codes, k = sections.joint_units(levels)
        report["codebook"] = sections.levels_health(levels, codes, k, extractor.codebook_size, extractor.frame_rates)
    plots.plot_codebook_usage(np.array(report["codebook"]["counts"]), out / "codebook_usage.png")

    report["phonetic"], report["abx"] = _phonetic(cfg, utts, waves, codes, levels, k, extractor, out)
    generator = Generator(extractor.model, backend=cfg.backend, threads=cfg.threads)
    report["reconstruction"], report["conversion"], report["f0"], report["voice"] = _decode(
        cfg, manifest, utts, waves, codes, levels, k, extractor, generator, out)
    curves = Path(cfg.metrics_csv).expanduser() if cfg.metrics_csv else Path(cfg.model).expanduser().parent / "metrics.csv"
    report["training_curves"] = None
    if curves.is_file():
        try:
            plots.plot_training_curves(curves, out / "training_curves.png")
            report["training_curves"] = str(curves)
        except ValueError as e:
            log.warning("no training curves: %s", e)
    if skipped:
        write_skipped(out, skipped)
    report = _finite(report)
    atomic_write_text(out / REPORT_JSON, json.dumps(report, indent=2, allow_nan=False) + "\n")
    atomic_write_text(out / REPORT_MD, render(report))
    print(f"wrote {out / REPORT_MD} and {out / REPORT_JSON}")
    return 0


def _check(cfg: DictConfig) -> None:
    check_decode_options(cfg)
    require(cfg, "data", lambda v: isinstance(v, str) and v != "", "a manifest.jsonl or its folder")
    require(cfg, "max_utterances", lambda v: is_int(v) and v >= 2, "an integer >= 2")
    require(cfg, "reconstruct_utterances", lambda v: is_int(v) and v >= 0, "an integer >= 0")
    require(cfg, "excerpt_seconds", lambda v: is_number(v) and v > 0, "seconds > 0")
    require(cfg, "abx_max_triples", lambda v: is_int(v) and v >= 1, "an integer >= 1")
    require(cfg, "silence", lambda v: (OmegaConf.is_list(v) or isinstance(v, (list, tuple)))
            and all(isinstance(x, str) for x in v), "a list of labels (strings), e.g. [sil, sp]")
    require(cfg, "mfcc_kmeans", lambda v: isinstance(v, bool), "true or false")
    require(cfg, "voice_metrics", lambda v: isinstance(v, bool), "true or false")
    for s in _splits(cfg.split):
        if s not in ("train", "valid", "test"):
            raise ConfigError(f"split={cfg.split}: splits are train, valid, test (or a comma list of them)")


def _splits(spec) -> list[str]:
    items = list(spec) if OmegaConf.is_list(spec) or isinstance(spec, (list, tuple)) else str(spec).split(",")
    return [str(s).strip() for s in items if str(s).strip()]


def _select(manifest: list[Utterance], splits: list[str], limit: int, data: str) -> list[Utterance]:
    """Up to ``limit`` utterances of the splits, dealt round-robin over speakers (sorted), so a
    cap keeps every speaker; manifest order within a speaker."""
    pool = [u for u in manifest if u.split in splits]
    if len(pool) < 2:
        raise ConfigError(f"split={','.join(splits)}: {data} has {len(pool)} utterance(s) there; the report needs 2")
    chosen = spread_over_speakers(pool, limit)
    order = {u.id: i for i, u in enumerate(manifest)}
    return sorted(chosen, key=lambda u: order[u.id])


def _load(utts: list[Utterance], sr: int) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    waves, skipped = {}, []
    for u in utts:
        try:
            waves[u.id] = audio.load(u.path, sr)
        except audio.AudioError as e:
            log.warning("skipping %s", e)
            skipped.append((u.path, e.reason))
    return waves, skipped


def _phonetic(cfg, utts, waves, codes, levels, k: int, extractor: UnitExtractor, out: Path):
    """Phonetic quality of ``codes`` (one symbol per frame, ``k`` of them) against baselines of
    the same k and frame rate, each level's alone when there are several (``levels``: codes
    (Q, frames)), and ABX on the latents (what the decoder is conditioned on)."""
    try:
        alignments = load_alignments(cfg.alignments, utts)
    except AlignmentError as e:
        raise ConfigError(f"alignments: {e}") from None
    if not alignments:
        log.info("no alignments: the phonetic sections are left out (give alignments=<dir|file>)")
        return None, None
    fr = extractor.frame_rate
    ids = [u.id for u in utts if u.id in alignments]
    silences = frozenset(cfg.silence)  # one set for every phonetic metric: frames and ABX items alike
    phones = {u: frame_labels(alignments[u], len(codes[u]), fr, silences) for u in ids}
    systems = {"model": {u: codes[u] for u in ids},
               "random": random_units({u: len(codes[u]) for u in ids}, k, seed=cfg.seed)}
    mfcc = {u: mfcc_features(waves[u], extractor.sample_rate, extractor.hop) for u in ids}
    if cfg.mfcc_kmeans:
        systems["mfcc_kmeans"] = mfcc_kmeans_units({u: waves[u] for u in ids}, extractor.sample_rate,
                                                   extractor.hop, k, seed=cfg.seed)
    phonetic = sections.phonetic_quality(phones, systems, k, cfg.seed)
    phonetic["alignment_coverage"] = len(ids) / len(utts)
    q = extractor.num_quantizers
    phonetic["levels"] = None if q == 1 else [
        sections.phonetic_quality(phones, {"model": {u: levels[u][level] for u in ids}}, extractor.codebook_size,
                                  cfg.seed)["systems"]["model"] for level in range(q)]
    for metric, label in (("pnmi", "PNMI"), ("code_to_phone_accuracy", "code-to-phone accuracy")):
        plots.plot_metric_bars({name: s[metric] for name, s in phonetic["systems"].items()},
                               out / f"{metric}.png", f"{label}: model vs baselines (K={k})", label)
    speakers = {u.id: u.speaker for u in utts}
    latents = {u: extractor.latents(levels[u]) for u in ids}
    features = {"model codebook vectors": latents, "mfcc": mfcc}
    abx = sections.abx_section({u: alignments[u] for u in ids}, speakers, features, fr,
                               cfg.abx_max_triples, cfg.seed, silences)
    return phonetic, abx


def _decode(cfg, manifest, utts, waves, codes, levels, k: int, extractor: UnitExtractor, generator: Generator,
            out: Path):
    """Reconstructions and conversions of excerpts (the first excerpt_seconds of each chosen
    utterance), written to out/audio/ for listening; returns the reconstruction, conversion, F0
    and voice-instrument sections. Utterances of speakers the model knows are reconstructed and converted to the
    next speaker of the table; utterances of speakers it never saw (held-out speakers, folders
    without speakers) are converted to known voices (any-to-many) and reported apart: they have
    no embedding, so no reconstruction."""
    known = extractor.model.speaker_index
    seen = spread_over_speakers([u for u in utts if u.speaker in known], cfg.reconstruct_utterances)
    unseen = spread_over_speakers([u for u in utts if u.speaker not in known], cfg.reconstruct_utterances)
    names = sorted(known, key=known.get)
    if not names or not (seen or unseen):
        return None, None, None, None
    chosen = seen + unseen
    sr, hop = extractor.sample_rate, extractor.hop
    frames = max(1, int(cfg.excerpt_seconds * sr) // hop)
    excerpt = {u.id: waves[u.id][:frames * hop] for u in chosen}
    excerpt_codes = {u.id: extractor.extract(excerpt[u.id]).codes for u in chosen}
    targets = {u.id: names[(names.index(u.speaker) + 1) % len(names)] for u in seen} if len(names) > 1 else {}
    targets.update({u.id: names[i % len(names)] for i, u in enumerate(unseen)})
    jobs = [(f"{u.id}_reconstruction", u.id, known[u.speaker]) for u in seen]
    jobs += [(f"{u.id}_to_{targets[u.id]}", u.id, known[targets[u.id]]) for u in chosen if u.id in targets]
    generated = {}
    for start in tqdm(range(0, len(jobs), cfg.batch_size), desc="generate", unit="batch", dynamic_ncols=True):
        batch = jobs[start:start + cfg.batch_size]
        waves_out = generator.generate([excerpt_codes[j[1]] for j in batch], [j[2] for j in batch], seed=cfg.seed,
                                       first_index=start, temperature=cfg.temperature, argmax=cfg.argmax)
        generated.update({j[0]: np.clip(w, -1, 1) for j, w in zip(batch, waves_out)})
    (out / "audio").mkdir(exist_ok=True)
    for u in chosen:
        audio.save(out / "audio" / f"{u.id}_original.wav", excerpt[u.id], sr)
    for name, w in generated.items():
        audio.save(out / "audio" / f"{name}.wav", w, sr)
    pairs = [(u.id, excerpt[u.id], generated[f"{u.id}_reconstruction"][:len(excerpt[u.id])]) for u in seen]
    recon = None
    if pairs:
        recon = sections.reconstruction(pairs, sr)
        plots.plot_spectrograms([(uid, ref, deg) for uid, ref, deg in pairs[:SPECTROGRAM_ROWS]], sr,
                                out / "spectrograms.png")
    converted = [(generated[f"{u.id}_to_{targets[u.id]}"], u.speaker, targets[u.id]) for u in seen if u.id in targets]
    converted_unseen = [(generated[f"{u.id}_to_{targets[u.id]}"], u.speaker, targets[u.id]) for u in unseen]
    probe_train = _probe_training_audio(manifest, {u.id for u in utts}, known, sr)
    by_speaker: dict[str, list[np.ndarray]] = {}
    for a, spk in zip(*probe_train):
        if len(by_speaker.setdefault(spk, [])) < F0_REFERENCE_UTTERANCES:
            by_speaker[spk].append(a)
    f0 = {"seen": sections.f0_check([(p[1], p[2]) for p in pairs], [(c[0], c[2]) for c in converted], by_speaker, sr),
          "unseen_sources": sections.f0_check([], [(c[0], c[2]) for c in converted_unseen], by_speaker, sr)
          if unseen else None}
    parallel = _parallel(manifest, seen, targets, waves, levels, generator, extractor, cfg) if converted else []
    items = [sections.Generated(u.id, u.speaker, u.speaker, excerpt[u.id], generated[f"{u.id}_reconstruction"])
             for u in seen]
    items += [sections.Generated(u.id, u.speaker, targets[u.id], excerpt[u.id],
                                 generated[f"{u.id}_to_{targets[u.id]}"], seen=u.speaker in known)
              for u in chosen if u.id in targets]
    analyses = world.Analyses(sr)  # the plot below reuses the section's analyses of the same signals
    voice = sections.voice(items, {u.id: (u.speaker, waves[u.id]) for u in utts}, by_speaker, parallel, sr,
                           _speaker_encoder(cfg), analyses)
    _plot_f0(voice, items, analyses, out)
    if not (converted or converted_unseen):
        return recon, None, f0, voice
    real_eval = ([waves[u.id] for u in utts], [u.speaker for u in utts])
    histograms = np.stack([np.bincount(codes[u.id], minlength=k) / len(codes[u.id])
                           for u in utts])
    reconstructed = ([generated[f"{u.id}_reconstruction"] for u in seen], [u.speaker for u in seen])
    conv = sections.conversion(probe_train, real_eval, reconstructed, converted, histograms, [u.speaker for u in utts],
                               parallel, sr, cfg.seed, unseen_converted=converted_unseen)
    conv["decoder_speaker_use"] = _speaker_use(extractor, seen, excerpt, excerpt_codes, names) if seen and len(names) > 1 else None
    return recon, conv, f0, voice


def _speaker_encoder(cfg) -> SpeakerEncoder | None:
    """The pretrained speaker encoder, or None (switched off, or not installed: the report says
    which in its instruments)."""
    if not cfg.voice_metrics:
        return None
    reason = speaker_encoder.unavailable()
    if reason:
        log.warning("no SECS: %s", reason)
        return None
    return SpeakerEncoder(device=str(resolve_device(cfg.device)))


def _plot_f0(voice: dict, items: list, analyses: world.Analyses, out: Path) -> None:
    """F0 contours of one utterance's source, reconstruction and conversion (the first
    utterance that has both), with the target speaker's mean pitch."""
    if voice["world"] is None:
        return
    by_utt: dict[str, dict] = {}
    for g in items:
        by_utt.setdefault(g.utterance, {})["reconstruction" if g.is_reconstruction else "conversion"] = g
    both = [d for d in by_utt.values() if len(d) == 2] or list(by_utt.values())
    if not both:
        return
    chosen = both[0]
    first = next(iter(chosen.values()))
    contours = [("source", first.source)] + [(f"{kind} ({g.target})" if kind == "conversion" else kind, g.audio)
                                             for kind, g in chosen.items()]
    analysed = [(label, analyses(x)) for label, x in contours]
    conv = chosen.get("conversion")
    pitch = voice["world"]["target_pitch_semitones"].get(conv.target) if conv else None
    reference = (f"{conv.target} mean pitch", 2.0 ** (pitch / world.SEMITONES_PER_OCTAVE)) if pitch is not None else None
    plots.plot_f0_contours([(label, world.frame_times(a), a.f0) for label, a in analysed], out / F0_PLOT,
                           f"F0 (WORLD Harvest): {first.utterance}", reference)


@torch.no_grad()
def _speaker_use(extractor: UnitExtractor, chosen, excerpt, excerpt_codes, names: list[str]) -> dict:
    """Teacher-forced loss of each excerpt with its own speaker and up to MAX_OTHER_SPEAKERS
    others (the next ones in table order): does the decoder listen to the speaker at all?"""
    model = extractor.model
    device = next(model.parameters()).device
    others_n = min(MAX_OTHER_SPEAKERS, len(names) - 1)
    own, others = [], []
    for u in chosen:
        frames = excerpt_codes[u.id].shape[-1]
        x = np.zeros(frames * extractor.hop, np.float32)
        x[:len(excerpt[u.id])] = excerpt[u.id]
        x = torch.from_numpy(x)[None].to(device)
        latents = model.latents(torch.from_numpy(excerpt_codes[u.id])[None].to(device))
        i = names.index(u.speaker)
        rows = [names[(i + k) % len(names)] for k in range(others_n + 1)]
        losses = [float(model.decoder.loss(model.decoder_logits(x, latents, torch.tensor(
            [model.speaker_index[r]], device=device)), x, None)) for r in rows]
        own.append(losses[0])
        others.append(losses[1:])
    return sections.speaker_use(own, others)


def _probe_training_audio(manifest, exclude: set[str], known: dict, sr: int):
    """Real audio of the model's speakers, from utterances outside the evaluated ones."""
    per: dict[str, list[np.ndarray]] = {}
    for u in manifest:
        if u.id in exclude or u.speaker not in known or len(per.get(u.speaker, [])) >= PROBE_UTTERANCES_PER_SPEAKER:
            continue
        try:
            per.setdefault(u.speaker, []).append(audio.load(u.path, sr))
        except audio.AudioError:
            continue
    speakers = [s for s in sorted(per) for _ in per[s]]
    return [a for s in sorted(per) for a in per[s]], speakers


def _parallel(manifest, chosen, targets, waves, levels, generator: Generator, extractor: UnitExtractor, cfg):
    """(conversion, source, target) real-audio triples where the target speaker read the same
    text as the source: whole utterances (already loaded and encoded), converted in full."""
    def key(text: str | None, speaker: str):
        return " ".join((text or "").lower().split()), speaker

    by_text = {}
    for u in manifest:
        if u.text:
            by_text.setdefault(key(u.text, u.speaker), u)
    triples = []
    for u in chosen:
        match = by_text.get(key(u.text, targets[u.id])) if u.text else None
        if match is None:
            continue
        try:
            tgt = audio.load(match.path, extractor.sample_rate)
        except audio.AudioError:
            continue
        conv = generator.generate([levels[u.id]], [extractor.model.speaker_index[targets[u.id]]],
                                  seed=cfg.seed, temperature=cfg.temperature, argmax=cfg.argmax)[0]
        triples.append((np.clip(conv, -1, 1)[:len(waves[u.id])], waves[u.id], tgt))
    return triples


def _finite(o):
    """JSON-ready: numpy scalars and arrays to Python, non-finite floats to None (JSON has no NaN)."""
    if isinstance(o, dict):
        return {str(k): _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(float(o)) else None
    return o
