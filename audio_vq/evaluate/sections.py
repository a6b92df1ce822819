"""The report's sections, one function each: numbers in, a JSON-ready dict out.

    codebook_health   usage counts -> perplexity, used / dead codes, nominal and entropy bitrate
    phonetic_quality  codes + frame phones -> purity, PNMI, code-to-phone accuracy, vs baselines
    abx_section       per-frame features + alignments -> within / across-speaker ABX error
    reconstruction    original vs generated audio -> MCD, MR-STFT, log-mel L1, SI-SNR, STOI, PESQ
    conversion        speaker probes on converted audio and on code histograms, parallel MCD
    f0_check          median F0 of generated audio vs its source (reconstructions) or its
                      target speaker (conversions): does generated speech have harmonics?
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np

from ..units import deduplicate
from .abx import EDGE_CONTEXT, abx, abx_items
from .audio_metrics import F0_TOLERANCE, f0_within, mcd, median_f0, reconstruction_metrics
from .phonetic import code_to_phone_accuracy, contingency, entropy_bits, purity_pnmi, random_code_expectation
from .speaker import SpeakerProbe, code_speaker_probe


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
        "frames": int(len(frames)), "seconds": seconds, "codebook_size": codebook_size,
        "frame_rate": frame_rate, "perplexity": 2.0 ** h, "entropy_bits": h,
        "codes_used": int((counts > 0).sum()), "dead_codes": int((counts == 0).sum()),
        "bitrate_nominal": frame_rate * math.log2(codebook_size),
        "bitrate_entropy": len(frames) / seconds * h,
        "bitrate_entropy_deduplicated": len(dedup) / seconds * h_dedup,
        "mean_run_frames": len(frames) / len(dedup),
        "counts": counts.tolist(),
    }


def phonetic_quality(phones_by_utt: Mapping[str, list], systems: Mapping[str, Mapping[str, np.ndarray]],
                     codebook_size: int, seed: int) -> dict:
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
        out["systems"][name] = {**purity_pnmi(counts), "code_to_phone_accuracy": acc["accuracy"],
                                "accuracy_chance": acc["chance"]}
        out["phones"] = len(phone_set)
        out["labelled_frames"] = int(counts.sum())
        out["phone_counts"] = counts.sum(1)
    expectation = random_code_expectation(out.pop("phone_counts"), codebook_size)
    out["random_expectation"] = {k: float(v) for k, v in expectation.items()}
    return out


def abx_section(alignments: Mapping, speakers: Mapping[str, str], features: Mapping[str, Mapping[str, np.ndarray]],
                frame_rate: float, max_triples: int, seed: int) -> dict:
    """ABX error (%) for each feature set (utterance id -> (frames, D)) on the same items, in
    two variants: ZeroSpeech's "by context" (A, B, X share the neighbouring phones) and "phone
    only" (contexts ignored), which has far more triples on a small test set."""
    out = {}
    for name, feats in features.items():
        num_frames = {u: len(f) for u, f in feats.items()}
        items = abx_items(alignments, speakers, num_frames, frame_rate)
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
    return {"utterances": len(own), "own_loss": float(np.mean(own)),
            "other_loss": float(np.mean([np.mean(o) for o in others])),
            "gain_nats": float(np.mean(gains)),
            "own_is_best": float(np.mean([w < min(o) for w, o in zip(own, others)])),
            "chance": 1 / (1 + len(others[0])) if others else None}


def conversion(probe_train: tuple[list[np.ndarray], list[str]], real_eval: tuple[list[np.ndarray], list[str]],
               reconstructed: tuple[list[np.ndarray], list[str]], converted: Sequence[tuple[np.ndarray, str, str]], histograms: np.ndarray, hist_speakers: list[str],
               parallel: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], sample_rate: int, seed: int,
               unseen_converted: Sequence[tuple[np.ndarray, str, str]] = ()) -> dict:
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
    real_ok = [(a, s) for a, s in zip(*real_eval) if s in known]
    out = {
        "probe_real_accuracy": probe.score([a for a, _ in real_ok], [s for _, s in real_ok], sr=sample_rate)
        if real_ok else None,
        "probe_reconstruction_accuracy": probe.score(*reconstructed, sr=sample_rate) if reconstructed[0] else None,
        "probe_speakers": len(known), "probe_chance": 1 / len(known),
        "conversions": len(converted),
        "classified_as_target": float(np.mean([p == t for p, t in zip(predicted, targets)])) if converted else None,
        "classified_as_source": float(np.mean([p == c[1] for p, c in zip(predicted, converted)])) if converted else None,
    }
    out["unseen_sources"] = None
    if unseen_converted:
        hits = [p == c[2] for p, c in zip(probe.predict([c[0] for c in unseen_converted], sr=sample_rate),
                                          unseen_converted)]
        out["unseen_sources"] = {"conversions": len(unseen_converted), "classified_as_target": float(np.mean(hits)),
                                 "source_speakers": len({c[1] for c in unseen_converted})}
    codes = code_speaker_probe(histograms, hist_speakers, seed=seed)
    out["code_probe"] = {"accuracy": codes.accuracy, "chance": codes.chance, "majority": codes.majority,
                         "folds": codes.folds, "utterances": codes.num_utterances, "reason": codes.reason}
    if parallel:
        out["parallel"] = {
            "pairs": len(parallel),
            "mcd_conversion_vs_target": float(np.mean([mcd(t, c, sample_rate, align="dtw") for c, _, t in parallel])),
            "mcd_source_vs_target": float(np.mean([mcd(t, s, sample_rate, align="dtw") for _, s, t in parallel])),
        }
    else:
        out["parallel"] = None
    return out


def f0_check(reconstructions: Sequence[tuple[np.ndarray, np.ndarray]], conversions: Sequence[tuple[np.ndarray, str]],
             speaker_audio: Mapping[str, Sequence[np.ndarray]], sample_rate: int) -> dict:
    """Pitch of generated audio (pYIN, voiced frames only). ``reconstructions`` are (source,
    reconstruction) pairs: the reconstruction's median F0 should be within F0_TOLERANCE of its
    source's. ``conversions`` are (conversion, target speaker): its median F0 should be within
    F0_TOLERANCE of the target speaker's median over ``speaker_audio`` (real utterances of each
    speaker). Shares count only items whose reference has an F0; generated audio with no
    voiced frames (noise) counts as a miss."""
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
        rec_rows.append({"source_f0": ref_f0, "generated_f0": gen_f0, "source_voiced": ref_voiced,
                         "generated_voiced": gen_voiced, "within": f0_within(gen_f0, ref_f0)})
    targets = {t for _, t in conversions}
    speaker_f0 = {t: median_of(speaker_audio.get(t, [])) for t in sorted(targets)}
    conv_rows = []
    for gen, target in conversions:
        gen_f0, gen_voiced = median_f0(gen, sample_rate)
        conv_rows.append({"target": target, "target_f0": speaker_f0[target], "generated_f0": gen_f0,
                          "generated_voiced": gen_voiced, "within": f0_within(gen_f0, speaker_f0[target])})
    return {"tolerance": F0_TOLERANCE,
            "reconstructions": len(rec_rows), "conversions": len(conv_rows),
            "reconstruction_within": share([r["within"] for r in rec_rows]),
            "conversion_within": share([r["within"] for r in conv_rows]),
            "reconstruction_voiced": float(np.mean([r["generated_voiced"] for r in rec_rows])) if rec_rows else None,
            "source_voiced": float(np.mean([r["source_voiced"] for r in rec_rows])) if rec_rows else None,
            "conversion_voiced": float(np.mean([r["generated_voiced"] for r in conv_rows])) if conv_rows else None,
            "speaker_f0": speaker_f0, "per_reconstruction": rec_rows, "per_conversion": conv_rows}
