"""The report's sections, one function each: numbers in, a JSON-ready dict out.

codebook_health   usage counts -> perplexity, used / dead codes, nominal and entropy bitrate
phonetic_quality  codes + frame phones -> purity, PNMI, code-to-phone accuracy, vs baselines
abx_section       per-frame features + alignments -> within / across-speaker ABX error
reconstruction    original vs generated audio -> MCD, MR-STFT, log-mel L1, SI-SNR, STOI, PESQ
conversion        speaker probes on converted audio and on code histograms, parallel MCD
f0_check          median F0 of generated audio vs its source (reconstructions) or its
                  target speaker (conversions): does generated speech have harmonics?
voice             the field's instruments on generated audio: SECS (resemblyzer), WORLD/SPTK
                  MCD, F0 agreement and pitch offsets (WORLD Harvest)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Sequence

import numpy as np

from ...units.extraction import deduplicate
from . import speaker_encoder, world
from .abx import EDGE_CONTEXT, abx, abx_items
from .alignments import DEFAULT_SILENCES
from .audio_metrics import (
    F0_MAX_HZ,
    F0_MIN_HZ,
    F0_TOLERANCE,
    f0_rmse_semitones,
    f0_within,
    mcd,
    median_f0,
    reconstruction_metrics,
)
from .phonetic import code_to_phone_accuracy, contingency, entropy_bits, purity_pnmi, random_code_expectation
from .speaker import SpeakerProbe, code_speaker_probe
from .speaker_encoder import SpeakerEncoder


def joint_units(levels_by_utt: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """Codes (Q, frames) per utterance as one symbol per frame: (utterance -> (frames,) joint
    ids, number of distinct symbols). Ids number the distinct Q-tuples in sorted order, so they
    depend only on the codes."""
    ids = list(levels_by_utt)
    stacked = np.concatenate([levels_by_utt[u] for u in ids], axis=1)  # (Q, total)
    symbols, joint = np.unique(stacked.T, axis=0, return_inverse=True)
    joint = joint.reshape(-1)
    bounds = np.cumsum([0] + [levels_by_utt[u].shape[1] for u in ids])
    return {u: joint[bounds[i] : bounds[i + 1]].astype(np.int64) for i, u in enumerate(ids)}, len(symbols)


def levels_health(
    levels_by_utt: Mapping[str, np.ndarray],
    joint: Mapping[str, np.ndarray],
    symbols: int,
    codebook_size: int,
    frame_rates: Sequence[float],
) -> dict:
    """Codebook health of Q levels, ``frame_rates`` their own rates (the first the finest
    stream's, a coarser level's code held over its frames): the combined stream (``joint``,
    ``symbols``: what :func:`joint_units` made of ``levels_by_utt``) and each level's own
    health in ``levels`` (a coarser level's codes at its own rate).

    Nominal bitrate: sum over levels of rate x log2 K. Entropy bitrate by the chain rule, each
    level at its own rate: sum over l of rate_l x H(level l | levels < l), the conditional
    entropies of the frame-level tuples (with equal rates this is H(joint) x rate; a held top
    level is counted once per code, not once per frame it spans)."""
    q = next(iter(levels_by_utt.values())).shape[0]
    finest = max(frame_rates)
    spans = [int(round(finest / rate)) for rate in frame_rates]
    out = codebook_health(joint, symbols, finest)
    per_level = [
        codebook_health(
            {u: c[level, :: spans[level]] for u, c in levels_by_utt.items()}, codebook_size, frame_rates[level]
        )
        for level in range(q)
    ]
    prefix_bits = (
        [0.0]
        + [
            entropy_bits(
                np.bincount(np.concatenate(list(joint_units({u: c[:n] for u, c in levels_by_utt.items()})[0].values())))
            )
            for n in range(1, q)
        ]
        + [out["entropy_bits"]]
    )
    out.update(
        num_codebooks=q,
        codebook_size=codebook_size,
        joint_symbols=symbols,
        frame_rates=list(frame_rates),
        codes_used=sum(lv["codes_used"] for lv in per_level),
        dead_codes=sum(lv["dead_codes"] for lv in per_level),
        bitrate_nominal=sum(rate * math.log2(codebook_size) for rate in frame_rates),
        bitrate_entropy=sum(
            rate * (prefix_bits[level + 1] - prefix_bits[level]) for level, rate in enumerate(frame_rates)
        ),
        levels=per_level,
    )
    return out


def codebook_health(codes_by_utt: Mapping[str, np.ndarray], codebook_size: int, frame_rate: float) -> dict:
    """Usage over every frame; bitrates in bit/s.

    nominal: frame_rate x log2 K, what the code stream costs without entropy coding.
    entropy (ZeroSpeech 2019): (N / D) x H with N symbols over D seconds and H the entropy in
    bits of their unigram distribution; given for the frame-level stream and for the stream
    with runs of one code collapsed (the form unit language models usually consume)."""
    frames = np.concatenate(list(codes_by_utt.values()))
    counts = np.bincount(frames, minlength=codebook_size)
    seconds = len(frames) / frame_rate
    dedup = np.concatenate([deduplicate(c)[0] for c in codes_by_utt.values()])
    h = entropy_bits(counts)
    h_dedup = entropy_bits(np.bincount(dedup, minlength=codebook_size))
    return {
        "frames": int(len(frames)),
        "seconds": seconds,
        "codebook_size": codebook_size,
        "frame_rate": frame_rate,
        "perplexity": 2.0**h,
        "entropy_bits": h,
        "codes_used": int((counts > 0).sum()),
        "dead_codes": int((counts == 0).sum()),
        "bitrate_nominal": frame_rate * math.log2(codebook_size),
        "bitrate_entropy": len(frames) / seconds * h,
        "bitrate_entropy_deduplicated": len(dedup) / seconds * h_dedup,
        "mean_run_frames": len(frames) / len(dedup),
        "counts": counts.tolist(),
    }


def phonetic_quality(
    phones_by_utt: Mapping[str, list], systems: Mapping[str, Mapping[str, np.ndarray]], codebook_size: int, seed: int
) -> dict:
    """Per system (the model and the baselines, same K and frame rate): phone purity, cluster
    purity, PNMI and many-to-one code-to-phone accuracy; plus what random codes score in
    expectation, for reading the random baseline."""
    out: dict = {"utterances": len(phones_by_utt), "systems": {}}
    for name, units in systems.items():
        ids = [u for u in phones_by_utt if u in units]
        phones = [p for u in ids for p in phones_by_utt[u]]
        codes = np.concatenate([units[u] for u in ids])
        counts, phone_set = contingency(phones, codes, codebook_size)
        acc = code_to_phone_accuracy({u: phones_by_utt[u] for u in ids}, {u: units[u] for u in ids}, seed=seed)
        out["systems"][name] = {
            **purity_pnmi(counts),
            "code_to_phone_accuracy": acc["accuracy"],
            "accuracy_chance": acc["chance"],
        }
        out["phones"] = len(phone_set)
        out["labelled_frames"] = int(counts.sum())
        out["phone_counts"] = counts.sum(1)
    expectation = random_code_expectation(out.pop("phone_counts"), codebook_size)
    out["random_expectation"] = {k: float(v) for k, v in expectation.items()}
    return out


def abx_section(
    alignments: Mapping,
    speakers: Mapping[str, str],
    features: Mapping[str, Mapping[str, np.ndarray]],
    frame_rate: float,
    max_triples: int,
    seed: int,
    silences: Iterable[str] = DEFAULT_SILENCES,
) -> dict:
    """ABX error (%) for each feature set (utterance id -> (frames, D)) on the same items (the
    non-``silences`` segments), in two variants: ZeroSpeech's "by context" (A, B, X share the
    neighbouring phones) and "phone only" (contexts ignored), which has far more triples on a
    small test set. Each holds our averaging and the ZeroSpeech one (:func:`.abx.abx`)."""
    out = {}
    for name, feats in features.items():
        num_frames = {u: len(f) for u, f in feats.items()}
        items = abx_items(alignments, speakers, num_frames, frame_rate, silences)
        out[f"{name}, by context"] = abx(items, feats, max_triples=max_triples, seed=seed)
        no_context = [replace(i, prev=EDGE_CONTEXT, next=EDGE_CONTEXT) for i in items]
        out[f"{name}, phone only"] = abx(no_context, feats, max_triples=max_triples, seed=seed)
    return out


def reconstruction(pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], sample_rate: int) -> dict:
    """Mean (and per utterance) metrics of generated reconstructions against the originals."""
    per = {uid: reconstruction_metrics(ref, deg, sample_rate) for uid, ref, deg in pairs}
    keys = next(iter(per.values())).keys() if per else []
    mean = {}
    for k in keys:
        values = [v[k] for v in per.values() if v[k] is not None and np.isfinite(v[k])]
        mean[k] = float(np.mean(values)) if values else None
    return {"utterances": len(per), "mean": mean, "per_utterance": per}


def speaker_use(own: Sequence[float], others: Sequence[Sequence[float]]) -> dict:
    """How much the decoder uses its speaker input: teacher-forced reconstruction loss (nats per
    sample) of each utterance with its own speaker's embedding and with other speakers'. A
    decoder that ignores the speaker scores the same with any (gain ~0, own best ~ 1/speakers)."""
    gains = [float(np.mean(o)) - w for w, o in zip(own, others)]
    return {
        "utterances": len(own),
        "own_loss": float(np.mean(own)),
        "other_loss": float(np.mean([np.mean(o) for o in others])),
        "gain_nats": float(np.mean(gains)),
        "own_is_best": float(np.mean([w < min(o) for w, o in zip(own, others)])),
        "chance": 1 / (1 + len(others[0])) if others else None,
    }


def conversion(
    probe_train: tuple[list[np.ndarray], list[str]],
    real_eval: tuple[list[np.ndarray], list[str]],
    reconstructed: tuple[list[np.ndarray], list[str]],
    converted: Sequence[tuple[np.ndarray, str, str]],
    histograms: np.ndarray,
    hist_speakers: list[str],
    parallel: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    sample_rate: int,
    seed: int,
    unseen_converted: Sequence[tuple[np.ndarray, str, str]] = (),
) -> dict:
    """Speaker-ID probe (fit on real audio of other utterances): accuracy on held-out real audio,
    and how often conversions (audio, source, target) are classified as their target or source.
    Code-histogram probe: speaker information left in the units (lower is better). Parallel
    (conversion, source real, target real) triples: MCD after DTW of conversion vs target,
    against source vs target. ``unseen_converted``: conversions whose source speaker the model
    (and the probe) never saw, scored apart as ``unseen_sources`` (target rate only)."""
    probe = SpeakerProbe(seed=seed).fit(*probe_train, sr=sample_rate)
    audio, targets = [c[0] for c in converted], [c[2] for c in converted]
    predicted = probe.predict(audio, sr=sample_rate) if converted else []
    known = set(probe.speakers)

    def accuracy(audios: Sequence[np.ndarray], speakers: Sequence[str]) -> float | None:
        """The probe's accuracy on the utterances of speakers it was fit on (None: there are none;
        e.g. every utterance of a speaker is evaluated, none is left to fit on)."""
        scored = [(a, s) for a, s in zip(audios, speakers) if s in known]
        return probe.score([a for a, _ in scored], [s for _, s in scored], sr=sample_rate) if scored else None

    out = {
        "probe_real_accuracy": accuracy(*real_eval),
        "probe_reconstruction_accuracy": accuracy(*reconstructed),
        "probe_speakers": len(known),
        "probe_chance": 1 / len(known),
        "conversions": len(converted),
        "classified_as_target": float(np.mean([p == t for p, t in zip(predicted, targets)])) if converted else None,
        "classified_as_source": float(np.mean([p == c[1] for p, c in zip(predicted, converted)]))
        if converted
        else None,
    }
    out["unseen_sources"] = None
    if unseen_converted:
        hits = [
            p == c[2] for p, c in zip(probe.predict([c[0] for c in unseen_converted], sr=sample_rate), unseen_converted)
        ]
        out["unseen_sources"] = {
            "conversions": len(unseen_converted),
            "classified_as_target": float(np.mean(hits)),
            "source_speakers": len({c[1] for c in unseen_converted}),
        }
    codes = code_speaker_probe(histograms, hist_speakers, seed=seed)
    out["code_probe"] = {
        "accuracy": codes.accuracy,
        "chance": codes.chance,
        "majority": codes.majority,
        "folds": codes.folds,
        "utterances": codes.num_utterances,
        "reason": codes.reason,
    }
    if parallel:
        out["parallel"] = {
            "pairs": len(parallel),
            "mcd_filterbank_conversion_vs_target": float(
                np.mean([mcd(t, c, sample_rate, align="dtw") for c, _, t in parallel])
            ),
            "mcd_filterbank_source_vs_target": float(
                np.mean([mcd(t, s, sample_rate, align="dtw") for _, s, t in parallel])
            ),
        }
    else:
        out["parallel"] = None
    return out


def f0_check(
    reconstructions: Sequence[tuple[np.ndarray, np.ndarray]],
    conversions: Sequence[tuple[np.ndarray, str]],
    speaker_audio: Mapping[str, Sequence[np.ndarray]],
    sample_rate: int,
) -> dict:
    """Pitch of generated audio (pYIN, voiced frames only). ``reconstructions`` are (source,
    reconstruction) pairs: the reconstruction's median F0 should be within F0_TOLERANCE of its
    source's. ``conversions`` are (conversion, target speaker): its median F0 should be within
    F0_TOLERANCE of the target speaker's median over ``speaker_audio`` (real utterances of each
    speaker). Shares count only items whose reference has an F0; generated audio with no
    voiced frames (noise) counts as a miss. Also: the voiced-frame shares of sources and
    reconstructions, the reconstructions' F0 RMSE in semitones on frames voiced in both (mean
    over those that have such frames), and the conversions' median relative error of their
    median F0 from the target's (over conversions with an F0)."""

    def median_of(waves) -> float | None:
        f0 = [median_f0(w, sample_rate)[0] for w in waves]
        f0 = [v for v in f0 if v is not None]
        return float(np.median(f0)) if f0 else None

    def share(hits: list) -> float | None:
        scored = [h for h in hits if h is not None]
        return float(np.mean(scored)) if scored else None

    rec_rows = []
    for src, gen in reconstructions:
        (ref_f0, ref_voiced), (gen_f0, gen_voiced) = median_f0(src, sample_rate), median_f0(gen, sample_rate)
        rec_rows.append(
            {
                "source_f0": ref_f0,
                "generated_f0": gen_f0,
                "source_voiced": ref_voiced,
                "generated_voiced": gen_voiced,
                "within": f0_within(gen_f0, ref_f0),
                "f0_rmse_semitones": f0_rmse_semitones(src, gen, sample_rate),
            }
        )
    targets = {t for _, t in conversions}
    speaker_f0 = {t: median_of(speaker_audio.get(t, [])) for t in sorted(targets)}
    conv_rows = []
    for gen, target in conversions:
        gen_f0, gen_voiced = median_f0(gen, sample_rate)
        ref = speaker_f0[target]
        conv_rows.append(
            {
                "target": target,
                "target_f0": ref,
                "generated_f0": gen_f0,
                "generated_voiced": gen_voiced,
                "within": f0_within(gen_f0, ref),
                "error": abs(gen_f0 - ref) / ref if gen_f0 is not None and ref else None,
            }
        )
    return {
        "tolerance": F0_TOLERANCE,
        "reconstructions": len(rec_rows),
        "conversions": len(conv_rows),
        "reconstruction_within": share([r["within"] for r in rec_rows]),
        "conversion_within": share([r["within"] for r in conv_rows]),
        "reconstruction_voiced": float(np.mean([r["generated_voiced"] for r in rec_rows])) if rec_rows else None,
        "source_voiced": float(np.mean([r["source_voiced"] for r in rec_rows])) if rec_rows else None,
        "conversion_voiced": float(np.mean([r["generated_voiced"] for r in conv_rows])) if conv_rows else None,
        "reconstruction_f0_rmse_semitones": _mean(r["f0_rmse_semitones"] for r in rec_rows),
        "conversion_median_f0_error": _median(r["error"] for r in conv_rows),
        "speaker_f0": speaker_f0,
        "per_reconstruction": rec_rows,
        "per_conversion": conv_rows,
    }


@dataclass(frozen=True)
class Generated:
    """One generated excerpt for :func:`voice`: ``source`` is the original excerpt (T,) of
    ``utterance`` by ``source_speaker``; ``audio`` the reconstruction (``target`` is the source
    speaker) or the conversion to ``target``; ``seen``: the model knows the source speaker."""

    utterance: str
    source_speaker: str
    target: str
    source: np.ndarray
    audio: np.ndarray
    seen: bool = True

    @property
    def is_reconstruction(self) -> bool:
        return self.seen and self.target == self.source_speaker


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def voice(
    generated: Sequence[Generated],
    real: Mapping[str, tuple[str, np.ndarray]],
    pitch_references: Mapping[str, Sequence[np.ndarray]],
    parallel: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    sample_rate: int,
    encoder: SpeakerEncoder | None,
    analyses: world.Analyses | None = None,
) -> dict:
    """The field's voice instruments on generated excerpts (see world.py, speaker_encoder.py).

    SECS (when ``encoder`` is given): each excerpt's embedding against speaker embeddings made
    from ``real`` (utterance id -> (speaker, audio), the held-out real utterances; the excerpt's
    own utterance left out): reconstructions against their own speaker, conversions against
    their target and their source speaker, the source excerpts against the target (the control a
    conversion must beat), real utterances against their own speaker (the ceiling), and the share
    of conversions closer to the target than to the source speaker. WORLD/SPTK: MCD of
    reconstructions (frame by frame) and of ``parallel`` (conversion, source, target) triples
    after DTW; F0 agreement of reconstructions with their sources; each conversion's (and, as a
    control, its source's) pitch offset from the target speaker's mean pitch over
    ``pitch_references`` (real utterances per speaker), in semitones. ``instruments`` names what
    gave each number, or why it is missing. ``analyses``: a WORLD analysis cache the caller
    reuses (e.g. for a plot of the same signals); a fresh one by default."""
    world_missing = world.unavailable()
    instruments = {
        "speaker_similarity": speaker_encoder.INSTRUMENT
        if encoder is not None
        else speaker_encoder.unavailable() or "speaker encoder switched off (voice_metrics=false)",
        "mcd": world_missing
        or (
            f"WORLD CheapTrick envelope (pyworld) -> SPTK mel-cepstrum (pysptk sp2mc), order "
            f"{world.MCEP_ORDER}, alpha {world.all_pass_constant(sample_rate)}, c0 excluded, "
            f"{world.FRAME_PERIOD_MS:g} ms frames"
        ),
        "f0": world_missing
        or (
            f"WORLD Harvest (pyworld), {F0_MIN_HZ:g}-{F0_MAX_HZ:g} Hz, "
            f"{world.FRAME_PERIOD_MS:g} ms frames, voiced frames only"
        ),
    }
    out: dict = {"instruments": instruments, "secs": None, "world": None}
    recon = [g for g in generated if g.is_reconstruction]
    conv = [g for g in generated if not g.is_reconstruction]
    if encoder is not None:
        out["secs"] = _secs(encoder, recon, conv, real, sample_rate)
    if world_missing is None:
        out["world"] = _world(recon, conv, pitch_references, parallel, analyses or world.Analyses(sample_rate))
    return out


def _secs(
    encoder: SpeakerEncoder,
    recon: Sequence[Generated],
    conv: Sequence[Generated],
    real: Mapping[str, tuple[str, np.ndarray]],
    sr: int,
) -> dict:
    real_emb = {uid: encoder.embed(a, sr) for uid, (_, a) in real.items()}
    speakers = {uid: s for uid, (s, _) in real.items()}

    def against(g: Generated, emb: np.ndarray, speaker: str) -> float | None:
        ref = speaker_encoder.speaker_embeddings(real_emb, speakers, exclude=g.utterance).get(speaker)
        return None if ref is None else speaker_encoder.cosine(emb, ref)

    def conversions(items: Sequence[Generated]) -> dict | None:
        if not items:
            return None
        rows = []
        for g in items:
            emb, src = encoder.embed(g.audio, sr), encoder.embed(g.source, sr)
            to_target, to_source = against(g, emb, g.target), against(g, emb, g.source_speaker)
            rows.append(
                {
                    "utterance": g.utterance,
                    "target": g.target,
                    "to_target": to_target,
                    "to_source": to_source,
                    "source_to_target": against(g, src, g.target),
                    "closer_to_target": None if to_target is None or to_source is None else to_target > to_source,
                }
            )
        return {
            "conversions": len(rows),
            "conversion_vs_target": _mean(r["to_target"] for r in rows),
            "conversion_vs_source": _mean(r["to_source"] for r in rows),
            "source_vs_target": _mean(r["source_to_target"] for r in rows),
            "closer_to_target": _mean(
                None if r["closer_to_target"] is None else float(r["closer_to_target"]) for r in rows
            ),
            "per_conversion": rows,
        }

    own = {
        uid: speaker_encoder.speaker_embeddings(real_emb, speakers, exclude=uid).get(speakers[uid]) for uid in real_emb
    }
    return {
        "real_vs_own": _mean(speaker_encoder.cosine(real_emb[u], e) for u, e in own.items() if e is not None),
        "real_utterances": len(real_emb),
        "reconstructions": len(recon),
        "reconstruction_vs_own": _mean(against(g, encoder.embed(g.audio, sr), g.source_speaker) for g in recon),
        "seen": conversions([g for g in conv if g.seen]),
        "unseen_sources": conversions([g for g in conv if not g.seen]),
    }


def _world(
    recon: Sequence[Generated],
    conv: Sequence[Generated],
    pitch_references: Mapping[str, Sequence[np.ndarray]],
    parallel: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    analyse: world.Analyses,
) -> dict:
    rec_rows = []
    for g in recon:
        src, gen = analyse(g.source), analyse(g.audio)
        rec_rows.append({"utterance": g.utterance, "mcd_db": world.mcd(src, gen), **world.f0_agreement(src, gen)})
    targets = sorted({g.target for g in conv})
    target_pitch = {t: world.mean_pitch([analyse(a) for a in pitch_references.get(t, [])]) for t in targets}

    def offsets(items: Sequence[Generated]) -> dict | None:
        if not items:
            return None
        rows = [
            {
                "utterance": g.utterance,
                "target": g.target,
                "offset_semitones": world.pitch_offset(analyse(g.audio), target_pitch[g.target]),
                "source_offset_semitones": world.pitch_offset(analyse(g.source), target_pitch[g.target]),
            }
            for g in items
        ]
        return {
            "conversions": len(rows),
            "offset_semitones": _mean(r["offset_semitones"] for r in rows),
            "source_offset_semitones": _mean(r["source_offset_semitones"] for r in rows),
            "abs_offset_semitones": _mean(
                None if r["offset_semitones"] is None else abs(r["offset_semitones"]) for r in rows
            ),
            "source_abs_offset_semitones": _mean(
                None if r["source_offset_semitones"] is None else abs(r["source_offset_semitones"]) for r in rows
            ),
            "per_conversion": rows,
        }

    par = None
    if parallel:
        pairs = [(analyse(c), analyse(s), analyse(t)) for c, s, t in parallel]
        par = {
            "pairs": len(pairs),
            "conversion_vs_target_db": _mean(world.mcd(t, c, "dtw") for c, _, t in pairs),
            "source_vs_target_db": _mean(world.mcd(t, s, "dtw") for _, s, t in pairs),
        }
    return {
        "reconstruction": {
            "utterances": len(rec_rows),
            "mcd_db": _mean(r["mcd_db"] for r in rec_rows),
            "log_f0_rmse_semitones": _mean(r["log_f0_rmse_semitones"] for r in rec_rows),
            "log_f0_correlation": _mean(r["log_f0_correlation"] for r in rec_rows),
            "vuv_error": _mean(r["vuv_error"] for r in rec_rows),
            "per_utterance": rec_rows,
        }
        if rec_rows
        else None,
        "target_pitch_semitones": target_pitch,
        "seen": offsets([g for g in conv if g.seen]),
        "unseen_sources": offsets([g for g in conv if not g.seen]),
        "parallel": par,
    }
