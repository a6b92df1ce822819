"""report.json -> report.md: the same numbers as tables, with the plots beside them."""

from __future__ import annotations

from pathlib import Path

from . import skip_reason


def _f(v, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return lines + [""]


def render(r: dict) -> str:
    """report.json (a dict) as markdown: every section under its heading, a skipped one as a line
    with its reason."""
    out = [
        f"# Evaluation report: {Path(r['model']).name}",
        "",
        f"- model: `{r['model']}` (weights sha256 `{r['model_checksum'][:16]}…`)",
        f"- data: `{r['data']}`, splits {', '.join(r['splits'])}: {r['utterances']} utterances"
        + (f" ({r['skipped']} skipped, see skipped.tsv)" if r["skipped"] else ""),
        "",
    ]
    for key, heading, body in _SECTIONS:
        out += [f"## {heading}", ""]
        reason = skip_reason(r.get(key))
        out += [f"Skipped: {reason}", ""] if reason is not None else body(r[key], r)
    return "\n".join(out)


def _codebook(c: dict, r: dict) -> list[str]:
    out = _table(
        ["metric", "value"],
        [
            ["frames (seconds)", f"{c['frames']} ({c['seconds']:.1f} s)"],
            ["codebook size K" + (f" (x {c['num_codebooks']} levels)" if c.get("levels") else ""), c["codebook_size"]],
            ["frame rate (Hz)", _f(c["frame_rate"], 2)],
            ["perplexity", _f(c["perplexity"], 1)],
            ["codes used", c["codes_used"]],
            ["dead codes", c["dead_codes"]],
            [
                "bitrate, nominal: "
                + ("sum of level rates" if c.get("levels") else "frame rate")
                + " x log2 K (bit/s)",
                _f(c["bitrate_nominal"], 1),
            ],
            [
                "bitrate, entropy (N/D) x H, frames"
                + (" (each level at its rate, given the ones before)" if c.get("levels") else "")
                + " (bit/s)",
                _f(c["bitrate_entropy"], 1),
            ],
            ["bitrate, entropy (N/D) x H, runs collapsed (bit/s)", _f(c["bitrate_entropy_deduplicated"], 1)],
            ["mean run length (frames)", _f(c["mean_run_frames"], 2)],
        ],
    )
    if c.get("levels"):
        phonetic = r.get("phonetic") if skip_reason(r.get("phonetic")) is None else None
        rates = ", ".join(_f(rate, 2) for rate in c["frame_rates"])
        out += [
            f"{c['num_codebooks']} codebooks (levels at {rates} Hz): the rows above are the combined stream, one "
            f"symbol per frame ({c['joint_symbols']} distinct level tuples; codes used and dead codes summed "
            "over levels). Each level alone, at its own rate"
            + (", with its PNMI and code-to-phone accuracy:" if (phonetic or {}).get("levels") else ":"),
            "",
        ]
        phon = (phonetic or {}).get("levels") or [None] * len(c["levels"])
        out += _table(
            [
                "level",
                "perplexity",
                "codes used",
                "dead codes",
                "bitrate, entropy (bit/s)",
                "PNMI",
                "code-to-phone accuracy",
            ],
            [
                [
                    i,
                    _f(lv["perplexity"], 1),
                    lv["codes_used"],
                    lv["dead_codes"],
                    _f(lv["bitrate_entropy"], 1),
                    "n/a" if ph is None else ph["pnmi"],
                    "n/a" if ph is None else ph["code_to_phone_accuracy"],
                ]
                for i, (lv, ph) in enumerate(zip(c["levels"], phon))
            ],
        )
    return out + ["![codebook usage](codebook_usage.png)", ""]


def _phonetic(p: dict, r: dict) -> list[str]:
    c = r["codebook"]
    levels = skip_reason(c) is None and c.get("levels")
    out = [
        f"{p['labelled_frames']} labelled frames, {p['phones']} phones, alignment coverage "
        f"{100 * p['alignment_coverage']:.0f}%. Baselines have the same "
        + (
            f"number of symbols ({c['joint_symbols']} level tuples: with this many, even random units score high) "
            if levels
            else "K "
        )
        + "and frame rate.",
        "",
    ]
    rows = [
        [name, s["phone_purity"], s["cluster_purity"], s["pnmi"], s["code_to_phone_accuracy"]]
        for name, s in p["systems"].items()
    ]
    e = p["random_expectation"]
    rows.append(["random (expected)", e["phone_purity"], e["cluster_purity"], e["pnmi"], "n/a"])
    out += _table(["units", "phone purity", "cluster purity", "PNMI", "code-to-phone accuracy"], rows)
    chance = next(iter(p["systems"].values()))["accuracy_chance"]
    return out + [
        f"Code-to-phone accuracy: each code mapped to its most frequent phone on half of the utterances, "
        f"scored on the other half (most-frequent-phone chance: {chance:.3f}).",
        "",
        "![PNMI](pnmi.png) ![code-to-phone accuracy](code_to_phone_accuracy.png)",
        "",
    ]


def _abx(a: dict, r: dict) -> list[str]:
    out = _table(
        [
            "features",
            "within speaker, ours",
            "within, ZeroSpeech averaging",
            "across speakers, ours",
            "across, ZeroSpeech averaging",
            "triples (within / across)",
        ],
        [
            [
                name,
                v["within"],
                v["within_zerospeech"],
                v["across"],
                v["across_zerospeech"],
                f"{v['within_triples']} / {v['across_triples']}",
            ]
            for name, v in a.items()
        ],
    )
    return out + [
        "The same scored cells, averaged two ways: ours over contexts, speakers, both orders of a "
        "phone pair, then unordered pairs; ZeroSpeech's (libri-light, fastabx) over contexts (and X "
        "speakers, across), A/B speakers, then ordered pairs.",
        "",
    ]


def _reconstruction(rec: dict, r: dict) -> list[str]:
    m = rec["mean"]
    out = _table(
        ["metric", "mean", "direction"],
        [
            ["MCD, filterbank cepstra (dB; not comparable with papers)", m["mcd_filterbank_db"], "lower is better"],
            ["multi-resolution STFT distance", m["mr_stft"], "lower"],
            ["log-mel L1 (nepers)", m["log_mel_l1"], "lower"],
            ["SI-SNR (dB)", m["si_snr_db"], "higher"],
            ["STOI", m["stoi"], "higher"],
            ["PESQ (wideband)", m["pesq"], "higher (needs the pesq extra)"],
        ],
    )
    return out + [
        f"{rec['utterances']} excerpts; the audio is in `audio/`.",
        "",
        "![spectrograms](spectrograms.png)",
        "",
    ]


def _conversion(cv: dict, r: dict) -> list[str]:
    cp = cv["code_probe"]
    out = _table(
        ["measure", "value", "chance"],
        [
            ["speaker-ID probe on held-out real audio", cv["probe_real_accuracy"], cv["probe_chance"]],
            [
                "reconstructions classified as their own speaker (control)",
                cv["probe_reconstruction_accuracy"],
                cv["probe_chance"],
            ],
            ["conversions classified as their target speaker", cv["classified_as_target"], cv["probe_chance"]],
            ["conversions classified as their source speaker", cv["classified_as_source"], cv["probe_chance"]],
            ["speaker from code histograms (lower: fewer speaker cues in the units)", cp["accuracy"], cp["chance"]],
        ]
        + (
            [
                [
                    f"conversions from {un['source_speakers']} speaker(s) the model never saw, classified as their "
                    f"target ({un['conversions']} conversions)",
                    un["classified_as_target"],
                    cv["probe_chance"],
                ]
            ]
            if (un := cv.get("unseen_sources"))
            else []
        ),
    )
    su = cv.get("decoder_speaker_use")
    if su:
        out += [
            f"Does the decoder use the speaker? Teacher-forced loss with the own speaker "
            f"{su['own_loss']:.3f} vs other speakers {su['other_loss']:.3f} nats/sample (gain "
            f"{su['gain_nats']:.4f}); the own speaker gives the lowest loss for "
            f"{100 * su['own_is_best']:.0f}% of {su['utterances']} excerpts (chance "
            f"{100 * su['chance']:.0f}%). A gain near 0 means conversion cannot change the voice.",
            "",
        ]
    par = cv.get("parallel")
    if par:
        return out + _table(
            [
                "parallel pairs",
                "filterbank MCD-DTW conversion vs target (dB)",
                "filterbank MCD-DTW source vs target (dB)",
            ],
            [[par["pairs"], par["mcd_filterbank_conversion_vs_target"], par["mcd_filterbank_source_vs_target"]]],
        )
    return out + ["No parallel utterances (the same text read by the target speaker): no MCD-DTW.", ""]


def _f0(f0: dict, r: dict) -> list[str]:
    rows = []
    for label, sec in (("seen speakers", f0.get("seen")), ("sources the model never saw", f0.get("unseen_sources"))):
        if not sec:
            continue
        if sec["reconstructions"]:
            rows.append(
                [
                    f"{label}: reconstructions, median F0 within {100 * sec['tolerance']:.0f}% of the source's",
                    sec["reconstruction_within"],
                    f"{sec['reconstruction_voiced']:.2f} (source {sec['source_voiced']:.2f})",
                ]
            )
        if sec["conversions"]:
            rows.append(
                [
                    f"{label}: conversions, median F0 within {100 * sec['tolerance']:.0f}% of the target speaker's",
                    sec["conversion_within"],
                    f"{sec['conversion_voiced']:.2f}",
                ]
            )
    out = _table(["check", "share", "voiced fraction"], rows) + [
        "Noise has almost no voiced frames; audio without harmonics fails the check.",
        "",
    ]
    seen = f0.get("seen") or {}
    rmse, err = seen.get("reconstruction_f0_rmse_semitones"), seen.get("conversion_median_f0_error")
    if rmse is not None or err is not None:
        out += [
            f"Seen speakers: reconstructions' F0 RMSE on frames voiced in both "
            f"{'n/a' if rmse is None else f'{rmse:.2f} semitones'}; conversions' median F0 off the target "
            f"speaker's by {'n/a' if err is None else f'{100 * err:.1f}%'} (median over conversions with an F0).",
            "",
        ]
    return out


def _training_curves(path: str, r: dict) -> list[str]:
    return [f"From `{path}`.", "", "![training curves](training_curves.png)", ""]


def _voice(v: dict, r: dict) -> list[str]:
    """The field's instruments: SECS, WORLD/SPTK MCD, F0 agreement and pitch offsets."""
    ins = v["instruments"]
    out = [
        f"- speaker similarity (SECS): {ins['speaker_similarity']}",
        f"- MCD: {ins['mcd']}",
        f"- F0: {ins['f0']}",
        "",
    ]
    secs = v.get("secs")
    if secs:
        rows = [
            ["real held-out utterances vs their own speaker (ceiling)", secs["real_vs_own"]],
            ["reconstructions vs their own speaker", secs["reconstruction_vs_own"]],
        ]
        for label, c in (("", secs.get("seen")), ("sources the model never saw: ", secs.get("unseen_sources"))):
            if c:
                rows += [
                    [f"{label}conversions vs their target speaker", c["conversion_vs_target"]],
                    [f"{label}conversions vs their source speaker", c["conversion_vs_source"]],
                    [f"{label}source excerpts vs the target speaker (control)", c["source_vs_target"]],
                    [
                        f"{label}share of conversions closer to the target than to the source speaker",
                        c["closer_to_target"],
                    ],
                ]
        out += [
            "SECS: cosine between an excerpt's embedding and a speaker's mean embedding over the real "
            "held-out utterances (the excerpt's own utterance left out); higher is more similar.",
            "",
        ]
        out += _table(["SECS", "mean"], rows)
    w = v.get("world")
    if w:
        rows = []
        rec = w.get("reconstruction")
        if rec:
            rows += [
                ["reconstructions: MCD vs source (dB), frame by frame", rec["mcd_db"]],
                [
                    "reconstructions: log-F0 RMSE vs source (semitones, frames voiced in both)",
                    rec["log_f0_rmse_semitones"],
                ],
                ["reconstructions: log-F0 correlation with source", rec["log_f0_correlation"]],
                ["reconstructions: voiced/unvoiced error", rec["vuv_error"]],
            ]
        for label, o in (("", w.get("seen")), ("sources the model never saw: ", w.get("unseen_sources"))):
            if o:
                rows += [
                    [
                        f"{label}conversions: mean pitch offset from the target speaker (semitones)",
                        o["offset_semitones"],
                    ],
                    [
                        f"{label}their sources' offset from the target speaker (control, semitones)",
                        o["source_offset_semitones"],
                    ],
                    [
                        f"{label}conversions: mean absolute offset (semitones; source's: "
                        f"{_f(o['source_abs_offset_semitones'], 2)})",
                        o["abs_offset_semitones"],
                    ],
                ]
        par = w.get("parallel")
        if par:
            rows += [
                [f"parallel pairs ({par['pairs']}): MCD-DTW conversion vs target (dB)", par["conversion_vs_target_db"]],
                ["parallel pairs: MCD-DTW source vs target (dB)", par["source_vs_target_db"]],
            ]
        out += _table(["WORLD / SPTK", "mean"], rows)
        out += [
            "A conversion that kept the source's pitch shows the source's offset; one that took the "
            "target's shows about 0.",
            "",
            "![F0 contours](f0_contours.png)",
            "",
        ]
    return out


# report.json key, heading, renderer of a computed section: the order of report.md
_SECTIONS = (
    ("codebook", "Codebook health and bitrate", _codebook),
    ("phonetic", "Phonetic quality", _phonetic),
    ("abx", "ABX phone discrimination (error %, lower is better)", _abx),
    ("reconstruction", "Reconstruction (generated excerpts vs originals)", _reconstruction),
    ("conversion", "Voice conversion", _conversion),
    ("f0", "Pitch of generated audio (pYIN, voiced frames)", _f0),
    ("voice", "Voice, measured with the field's instruments", _voice),
    ("training_curves", "Training curves", _training_curves),
)
