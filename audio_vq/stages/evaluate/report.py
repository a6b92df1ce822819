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

Every section goes through one guard (_compute): a section whose inputs are insufficient (no
alignments, no speaker the model knows, one speaker, too few utterances: InsufficientData) is
``{"skipped": "<reason>"}`` and the others are still computed; the report is written even when
a section fails, with the sections before it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from ... import audio, contours, pitch
from ...atomic import atomic_write_text
from ...config import ConfigError, resolve_device
from ...generate import Generator
from ...manifest import ManifestError, Utterance, read_manifest, spread_over_speakers, write_skipped
from ...rendering import check_decode_options
from ...units.extraction import UnitExtractor
from . import InsufficientData, plots, sections, skipped, speaker_encoder, world
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
NOT_REACHED = "not computed: evaluate stopped at an error in an earlier section (see its log)"


def evaluate(cfg: DictConfig) -> int:
    _check(cfg)
    out = Path(cfg.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    extractor = UnitExtractor.from_pretrained(cfg.model, resolve_device(cfg.device), levels=cfg.levels)
    manifest = read_manifest(cfg.data)
    utts = _select(manifest, _splits(cfg.split), cfg.max_utterances, cfg.data)
    waves, unreadable = _load(utts, extractor.sample_rate)
    if unreadable:
        write_skipped(out, unreadable)
    utts = [u for u in utts if u.id in waves]
    if not utts:
        raise ConfigError(
            f"data={cfg.data}: none of the {len(unreadable)} chosen utterances could be read "
            f"(e.g. {unreadable[0][0]}: {unreadable[0][1]}; see {out / 'skipped.tsv'})"
        )
    levels = {}  # utterance -> codes (Q, frames)
    for start in tqdm(range(0, len(utts), cfg.batch_size), desc="units", unit="batch", dynamic_ncols=True):
        batch = utts[start : start + cfg.batch_size]
        for u, units in zip(batch, extractor.extract_batch([waves[u.id] for u in batch])):
            levels[u.id] = units.codes
    if extractor.num_quantizers == 1:
        codes, k = {u: c[0] for u, c in levels.items()}, extractor.codebook_size
    else:  # the units the phonetic and speaker sections score: one symbol per frame, the Q-tuple
        codes, k = sections.joint_units(levels)
    run = _Inputs(cfg, out, extractor, manifest, utts, waves, levels, codes, k)
    aligned = _Once(lambda: _aligned(run))
    decoded = _Once(lambda: _decoded(run))
    references = _Once(lambda: _references(run))
    parallel = _Once(lambda: _parallel(run, decoded()))
    computed = (
        ("codebook", lambda: _codebook(run)),
        ("phonetic", lambda: _phonetic(run, aligned())),
        ("abx", lambda: _abx(run, aligned())),
        ("reconstruction", lambda: _reconstruction(run, decoded())),
        ("conversion", lambda: _conversion(run, decoded(), references(), parallel())),
        ("f0", lambda: _f0(run, decoded(), references())),
        ("voice", lambda: _voice(run, decoded(), references(), parallel())),
        ("training_curves", lambda: _training_curves(run)),
    )
    report: dict = {
        "model": str(Path(cfg.model).expanduser().resolve()),
        "model_checksum": extractor.checksum,
        "data": str(cfg.data),
        "splits": _splits(cfg.split),
        "utterances": len(utts),
        "skipped": len(unreadable),
        "config": OmegaConf.to_container(cfg),
        **{name: skipped(NOT_REACHED) for name, _ in computed},
    }
    try:
        for name, compute in computed:
            _compute(report, name, compute)
    finally:  # an error in one section still leaves the ones before it on disk
        _write(out, report)
    print(f"wrote {out / REPORT_MD} and {out / REPORT_JSON}")
    return 0


def _compute(report: dict, name: str, compute: Callable[[], object]) -> None:
    """``report[name] = compute()``, or skipped(reason) when its inputs are insufficient
    (InsufficientData); any other error marks the section failed in ``report`` and propagates."""
    try:
        report[name] = compute()
    except InsufficientData as e:
        log.warning("report section %s skipped: %s", name, e)
        report[name] = skipped(str(e))
    except Exception as e:
        report[name] = skipped(f"failed: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}")
        raise


def _write(out: Path, report: dict) -> None:
    report = _finite(report)
    atomic_write_text(out / REPORT_JSON, json.dumps(report, indent=2, allow_nan=False) + "\n")
    atomic_write_text(out / REPORT_MD, render(report))


def _check(cfg: DictConfig) -> None:
    """The keys' own checks (EvaluateOptions, through the decoding keys' check), then the splits."""
    check_decode_options(cfg)
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


@dataclass(frozen=True)
class _Inputs:
    """What every section of one run reads: ``utts`` (the evaluated utterances, all readable),
    ``waves`` and ``levels`` (codes (Q, frames)) per utterance id, ``codes`` the same as one
    symbol per frame (frames,) out of ``k`` (the Q-tuples of several levels)."""

    cfg: DictConfig
    out: Path
    extractor: UnitExtractor
    manifest: list[Utterance]
    utts: list[Utterance]
    waves: dict[str, np.ndarray]
    levels: dict[str, np.ndarray]
    codes: dict[str, np.ndarray]
    k: int


class _Once:
    """A stage several sections share (the alignments, the generated excerpts), computed on first
    use and kept; when its inputs are insufficient, every section that needs it is skipped with
    the same reason."""

    def __init__(self, compute: Callable[[], object]):
        self._compute = compute
        self._done: tuple | None = None

    def __call__(self):
        if self._done is None:
            try:
                self._done = (self._compute(), None)
            except InsufficientData as e:
                self._done = (None, str(e))
        value, reason = self._done
        if reason is not None:
            raise InsufficientData(reason)
        return value


def _codebook(run: _Inputs) -> dict:
    x = run.extractor
    if x.num_quantizers == 1:
        health = sections.codebook_health(run.codes, run.k, x.frame_rate)
    else:
        health = sections.levels_health(run.levels, run.codes, run.k, x.codebook_size, x.frame_rates)
    plots.plot_codebook_usage(np.array(health["counts"]), run.out / "codebook_usage.png")
    return health


@dataclass(frozen=True)
class _Aligned:
    """The evaluated utterances that have alignments: ``alignments`` and ``phones`` (a label or
    None, for silence, per unit frame) by utterance id, in evaluation order."""

    alignments: dict
    phones: dict[str, list]
    silences: frozenset


def _aligned(run: _Inputs) -> _Aligned:
    cfg = run.cfg
    try:
        alignments = load_alignments(cfg.alignments, run.utts)
    except AlignmentError as e:
        raise ConfigError(f"alignments: {e}") from None
    if not alignments:
        raise InsufficientData(
            "no alignments for the evaluated utterances: give alignments=<dir|file> (or a "
            "manifest with alignment paths)"
        )
    silences = frozenset(cfg.silence)  # one set for every phonetic metric: frames and ABX items alike
    ids = [u.id for u in run.utts if u.id in alignments]
    phones = {u: frame_labels(alignments[u], len(run.codes[u]), run.extractor.frame_rate, silences) for u in ids}
    return _Aligned({u: alignments[u] for u in ids}, phones, silences)


def _phonetic(run: _Inputs, a: _Aligned) -> dict:
    """Phonetic quality of the model's units (one symbol per frame, ``run.k`` of them) against
    baselines of the same k and frame rate, and each level's alone when there are several."""
    cfg, x, k = run.cfg, run.extractor, run.k
    ids = list(a.phones)
    systems = {
        "model": {u: run.codes[u] for u in ids},
        "random": random_units({u: len(run.codes[u]) for u in ids}, k, seed=cfg.seed),
    }
    if cfg.mfcc_kmeans:
        systems["mfcc_kmeans"] = mfcc_kmeans_units(
            {u: run.waves[u] for u in ids}, x.sample_rate, x.hop, k, seed=cfg.seed
        )
    phonetic = sections.phonetic_quality(a.phones, systems, k, cfg.seed)
    phonetic["alignment_coverage"] = len(ids) / len(run.utts)
    phonetic["levels"] = (
        None
        if x.num_quantizers == 1
        else [
            sections.phonetic_quality(
                a.phones, {"model": {u: run.levels[u][level] for u in ids}}, x.codebook_size, cfg.seed
            )["systems"]["model"]
            for level in range(x.num_quantizers)
        ]
    )
    for metric, label in (("pnmi", "PNMI"), ("code_to_phone_accuracy", "code-to-phone accuracy")):
        plots.plot_metric_bars(
            {name: s[metric] for name, s in phonetic["systems"].items()},
            run.out / f"{metric}.png",
            f"{label}: model vs baselines (K={k})",
            label,
        )
    return phonetic


def _abx(run: _Inputs, a: _Aligned) -> dict:
    """ABX on the latents the decoder is conditioned on, and on MFCCs for reference."""
    x = run.extractor
    features = {
        "model codebook vectors": {u: x.latents(run.levels[u]) for u in a.alignments},
        "mfcc": {u: mfcc_features(run.waves[u], x.sample_rate, x.hop) for u in a.alignments},
    }
    return sections.abx_section(
        a.alignments,
        {u.id: u.speaker for u in run.utts},
        features,
        x.frame_rate,
        run.cfg.abx_max_triples,
        run.cfg.seed,
        a.silences,
    )


@dataclass(frozen=True)
class _Decoded:
    """Excerpts (the first excerpt_seconds of each chosen utterance) through the generator:
    ``seen`` utterances (of speakers the model knows) reconstructed and converted to
    ``targets[id]`` when the model has another speaker, ``unseen`` ones converted only (they have
    no embedding). ``excerpt`` audio and ``excerpt_codes`` (Q, frames) by id; ``generated`` by
    the name its file has in audio/. ``names``: the model's speakers in table order."""

    seen: list[Utterance]
    unseen: list[Utterance]
    names: list[str]
    targets: dict[str, str]
    excerpt: dict[str, np.ndarray]
    excerpt_codes: dict[str, np.ndarray]
    generated: dict[str, np.ndarray]
    generator: Generator
    f0: dict[str, np.ndarray]  # a pitch model's excerpt contours by id (empty otherwise)

    def reconstruction(self, u: Utterance) -> np.ndarray:
        return self.generated[f"{u.id}_reconstruction"]

    def conversion(self, u: Utterance) -> np.ndarray:
        return self.generated[f"{u.id}_to_{self.targets[u.id]}"]

    def pairs(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(id, excerpt, its reconstruction cut to the excerpt's length) of the seen utterances."""
        return [(u.id, self.excerpt[u.id], self.reconstruction(u)[: len(self.excerpt[u.id])]) for u in self.seen]

    def conversions(self, seen: bool) -> list[tuple[np.ndarray, str, str]]:
        """(conversion, source speaker, target speaker) of the seen or the unseen sources."""
        return [
            (self.conversion(u), u.speaker, self.targets[u.id])
            for u in (self.seen if seen else self.unseen)
            if u.id in self.targets
        ]


def _targets(seen: list[Utterance], unseen: list[Utterance], names: list[str]) -> dict[str, str]:
    """Utterance id -> the known speaker it is converted to: a seen source to the next speaker of
    the table (none when the model has one speaker), unseen sources dealt round robin over the
    model's speakers (any-to-many), so targets spread evenly."""
    targets = {u.id: names[(names.index(u.speaker) + 1) % len(names)] for u in seen} if len(names) > 1 else {}
    targets.update({u.id: names[i % len(names)] for i, u in enumerate(unseen)})
    return targets


def _decoded(run: _Inputs) -> _Decoded:
    """Generates the excerpts (see _Decoded) and writes them, with their originals, to out/audio/."""
    cfg, x = run.cfg, run.extractor
    if cfg.reconstruct_utterances == 0:
        raise InsufficientData("reconstruct_utterances=0: no excerpt is generated")
    known = x.model.speaker_index
    seen = spread_over_speakers([u for u in run.utts if u.speaker in known], cfg.reconstruct_utterances)
    unseen = spread_over_speakers([u for u in run.utts if u.speaker not in known], cfg.reconstruct_utterances)
    names = sorted(known, key=known.get)
    chosen = seen + unseen
    sr, hop = x.sample_rate, x.hop
    frames = max(1, int(cfg.excerpt_seconds * sr) // hop)
    excerpt = {u.id: run.waves[u.id][: frames * hop] for u in chosen}
    excerpt_codes = {u.id: x.extract(excerpt[u.id]).codes for u in chosen}
    targets = _targets(seen, unseen, names)
    jobs = [(f"{u.id}_reconstruction", u.id, known[u.speaker]) for u in seen]
    jobs += [(f"{u.id}_to_{targets[u.id]}", u.id, known[targets[u.id]]) for u in chosen if u.id in targets]
    f0 = (
        {u.id: contours.track_for(x.model, excerpt[u.id], excerpt_codes[u.id].shape[-1]) for u in chosen}
        if x.model.uses_pitch
        else {}
    )
    speaker_of = {u.id: known.get(u.speaker) for u in chosen}
    generator = Generator(x.model, backend=cfg.backend, threads=cfg.threads)
    generated = {}
    for start in tqdm(range(0, len(jobs), cfg.batch_size), desc="generate", unit="batch", dynamic_ncols=True):
        batch = jobs[start : start + cfg.batch_size]
        registers = [contours.in_register(x.model, f0[j[1]], j[2], speaker_of[j[1]]) for j in batch] if f0 else None
        waves_out = generator.generate(
            [excerpt_codes[j[1]] for j in batch],
            [j[2] for j in batch],
            seed=cfg.seed,
            first_index=start,
            temperature=cfg.temperature,
            argmax=cfg.argmax,
            f0=registers,
            voiced_temperature=cfg.voiced_temperature,
        )
        generated.update({j[0]: np.clip(w, -1, 1) for j, w in zip(batch, waves_out)})
    (run.out / "audio").mkdir(exist_ok=True)
    for u in chosen:
        audio.save(run.out / "audio" / f"{u.id}_original.wav", excerpt[u.id], sr)
    for name, w in generated.items():
        audio.save(run.out / "audio" / f"{name}.wav", w, sr)
    return _Decoded(seen, unseen, names, targets, excerpt, excerpt_codes, generated, generator, f0)


def _reconstruction(run: _Inputs, d: _Decoded) -> dict:
    pairs = d.pairs()
    if not pairs:
        raise InsufficientData(
            "no evaluated utterance is of a speaker the model knows (its speakers.json): nothing to reconstruct"
        )
    plots.plot_spectrograms(pairs[:SPECTROGRAM_ROWS], run.extractor.sample_rate, run.out / "spectrograms.png")
    return sections.reconstruction(pairs, run.extractor.sample_rate)


@dataclass(frozen=True)
class _References:
    """Real audio of the model's speakers outside the evaluated utterances (speaker -> up to
    PROBE_UTTERANCES_PER_SPEAKER utterances): what the speaker-ID probe is fit on and the target
    pitch is measured on. ``looked``: where they were looked for, for a skip reason."""

    audio: dict[str, list[np.ndarray]]
    looked: str

    def probe_data(self) -> tuple[list[np.ndarray], list[str]]:
        return [a for s in sorted(self.audio) for a in self.audio[s]], [
            s for s in sorted(self.audio) for _ in self.audio[s]
        ]

    def pitch(self) -> dict[str, list[np.ndarray]]:
        return {s: a[:F0_REFERENCE_UTTERANCES] for s, a in self.audio.items()}


def _references(run: _Inputs) -> _References:
    """Real audio of the model's speakers from the evaluated manifest, then, for speakers still
    short, from the manifest the model was trained on (its config's data.manifest): data of
    speakers the model never saw has none of its own. Files of the evaluated utterances are left
    out, so the probe is never fit on what it scores."""
    known = run.extractor.model.speaker_index
    sr = run.extractor.sample_rate
    exclude = {Path(u.path).resolve() for u in run.utts}
    per: dict[str, list[np.ndarray]] = {}

    def take(utterances: list[Utterance]) -> None:
        for u in utterances:
            path = Path(u.path).resolve()
            full = len(per.get(u.speaker, [])) >= PROBE_UTTERANCES_PER_SPEAKER
            if u.speaker not in known or path in exclude or full:
                continue
            exclude.add(path)
            try:
                per.setdefault(u.speaker, []).append(audio.load(path, sr))
            except audio.AudioError:
                continue

    take(run.manifest)
    looked = f"data={run.cfg.data}"
    trained_on = ((run.extractor.model.config or {}).get("data") or {}).get("manifest")
    if trained_on is None:
        looked += " (the model's config names no training manifest)"
    elif any(len(per.get(s, [])) < PROBE_UTTERANCES_PER_SPEAKER for s in known):
        try:
            take(read_manifest(Path(trained_on).expanduser()))
            looked += f" and the model's training manifest {trained_on}"
        except ManifestError as e:
            looked += f" (the model's training manifest: {e})"
    return _References(per, looked)


def _conversion(run: _Inputs, d: _Decoded, refs: _References, parallel: list) -> dict:
    cfg, sr = run.cfg, run.extractor.sample_rate
    converted, converted_unseen = d.conversions(seen=True), d.conversions(seen=False)
    if not (converted or converted_unseen):
        raise InsufficientData(
            f"the model knows one speaker ({d.names[0]}) and every evaluated utterance is "
            "theirs: no other voice to convert to"
        )
    if len(refs.audio) < 2:
        raise InsufficientData(
            f"the speaker-ID probe needs real audio of at least 2 of the model's speakers "
            f"outside the evaluated utterances; {refs.looked} hold {len(refs.audio)} "
            f"({', '.join(sorted(refs.audio)) or 'none'})"
        )
    real_eval = ([run.waves[u.id] for u in run.utts], [u.speaker for u in run.utts])
    histograms = np.stack([np.bincount(run.codes[u.id], minlength=run.k) / len(run.codes[u.id]) for u in run.utts])
    reconstructed = ([d.reconstruction(u) for u in d.seen], [u.speaker for u in d.seen])
    conv = sections.conversion(
        refs.probe_data(),
        real_eval,
        reconstructed,
        converted,
        histograms,
        [u.speaker for u in run.utts],
        parallel,
        sr,
        cfg.seed,
        unseen_converted=converted_unseen,
    )
    conv["decoder_speaker_use"] = _speaker_use(run.extractor, d) if d.seen and len(d.names) > 1 else None
    return conv


def _f0(run: _Inputs, d: _Decoded, refs: _References) -> dict:
    sr, pitch = run.extractor.sample_rate, refs.pitch()
    return {
        "seen": sections.f0_check(
            [(p[1], p[2]) for p in d.pairs()], [(c[0], c[2]) for c in d.conversions(seen=True)], pitch, sr
        ),
        "unseen_sources": sections.f0_check([], [(c[0], c[2]) for c in d.conversions(seen=False)], pitch, sr)
        if d.unseen
        else None,
    }


def _voice(run: _Inputs, d: _Decoded, refs: _References, parallel: list) -> dict:
    known = run.extractor.model.speaker_index
    items = [sections.Generated(u.id, u.speaker, u.speaker, d.excerpt[u.id], d.reconstruction(u)) for u in d.seen]
    items += [
        sections.Generated(u.id, u.speaker, d.targets[u.id], d.excerpt[u.id], d.conversion(u), seen=u.speaker in known)
        for u in d.seen + d.unseen
        if u.id in d.targets
    ]
    analyses = world.Analyses(run.extractor.sample_rate)  # the plot below reuses the section's analyses
    voice = sections.voice(
        items,
        {u.id: (u.speaker, run.waves[u.id]) for u in run.utts},
        refs.pitch(),
        parallel,
        run.extractor.sample_rate,
        _speaker_encoder(run.cfg),
        analyses,
    )
    _plot_f0(voice, items, analyses, run.out)
    return voice


def _training_curves(run: _Inputs) -> str:
    cfg = run.cfg
    curves = (Path(cfg.metrics_csv) if cfg.metrics_csv else Path(cfg.model).parent / "metrics.csv").expanduser()
    if not curves.is_file():
        raise InsufficientData(f"no training metrics at {curves} (give metrics_csv=<run>/metrics.csv)")
    try:
        plots.plot_training_curves(curves, run.out / "training_curves.png")
    except ValueError as e:
        raise InsufficientData(f"{curves}: {e}") from None
    return str(curves)


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
    contours = [("source", first.source)] + [
        (f"{kind} ({g.target})" if kind == "conversion" else kind, g.audio) for kind, g in chosen.items()
    ]
    analysed = [(label, analyses(x)) for label, x in contours]
    conv = chosen.get("conversion")
    pitch = voice["world"]["target_pitch_semitones"].get(conv.target) if conv else None
    reference = (
        (f"{conv.target} mean pitch", 2.0 ** (pitch / world.SEMITONES_PER_OCTAVE)) if pitch is not None else None
    )
    plots.plot_f0_contours(
        [(label, world.frame_times(a), a.f0) for label, a in analysed],
        out / F0_PLOT,
        f"F0 (WORLD Harvest): {first.utterance}",
        reference,
    )


@torch.no_grad()
def _speaker_use(extractor: UnitExtractor, d: _Decoded) -> dict:
    """Teacher-forced loss of each seen excerpt with its own speaker and up to MAX_OTHER_SPEAKERS
    others (the next ones in table order): does the decoder listen to the speaker at all?"""
    model = extractor.model
    device = next(model.parameters()).device
    names = d.names
    others_n = min(MAX_OTHER_SPEAKERS, len(names) - 1)
    own, others = [], []
    for u in d.seen:
        frames = d.excerpt_codes[u.id].shape[-1]
        x = np.zeros(frames * extractor.hop, np.float32)
        x[: len(d.excerpt[u.id])] = d.excerpt[u.id]
        x = torch.from_numpy(x)[None].to(device)
        latents = model.latents(torch.from_numpy(d.excerpt_codes[u.id])[None].to(device))
        f0, excitation = _teacher_pitch(model, d.f0.get(u.id), x[0].cpu().numpy(), device)
        i = names.index(u.speaker)
        rows = [names[(i + k) % len(names)] for k in range(others_n + 1)]
        losses = [
            float(
                model.decoder.loss(
                    model.decoder_logits(
                        x, latents, torch.tensor([model.speaker_index[r]], device=device), f0, excitation
                    ),
                    x,
                    None,
                )
            )
            for r in rows
        ]
        own.append(losses[0])
        others.append(losses[1:])
    return sections.speaker_use(own, others)


def _teacher_pitch(model, f0: np.ndarray | None, x: np.ndarray, device) -> tuple:
    """(f0 (1, frames), excitation (1, E, T)) tensors that teacher-force a pitch model on audio
    ``x`` (T,) with its contour, the excitation phase-locked to ``x`` as in training; Nones for
    the parts the model does not read."""
    if not model.uses_pitch:
        return None, None
    excitation = None
    if model.uses_excitation:
        e = pitch.excitation(
            f0, model.hop, model.sample_rate, model.decoder.harmonics, np.random.default_rng(0), audio=x
        )
        excitation = torch.from_numpy(e)[None].to(device)
    return torch.from_numpy(f0)[None].float().to(device), excitation


def _parallel(run: _Inputs, d: _Decoded) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(conversion, source, target) real-audio triples where the target speaker read the same
    text as a seen source: whole utterances (already loaded and encoded), converted in full."""

    def key(text: str | None, speaker: str):
        return " ".join((text or "").lower().split()), speaker

    x, cfg = run.extractor, run.cfg
    by_text = {}
    for u in run.manifest:
        if u.text:
            by_text.setdefault(key(u.text, u.speaker), u)
    triples = []
    for u in d.seen:
        match = by_text.get(key(u.text, d.targets[u.id])) if u.text and u.id in d.targets else None
        if match is None:
            continue
        try:
            tgt = audio.load(match.path, x.sample_rate)
        except audio.AudioError:
            continue
        target = x.model.speaker_index[d.targets[u.id]]
        f0 = None
        if x.model.uses_pitch:
            own = contours.track_for(x.model, run.waves[u.id], run.levels[u.id].shape[-1])
            f0 = [contours.in_register(x.model, own, target, x.model.speaker_index[u.speaker])]
        conv = d.generator.generate(
            [run.levels[u.id]],
            [target],
            seed=cfg.seed,
            temperature=cfg.temperature,
            argmax=cfg.argmax,
            f0=f0,
            voiced_temperature=cfg.voiced_temperature,
        )[0]
        triples.append((np.clip(conv, -1, 1)[: len(run.waves[u.id])], run.waves[u.id], tgt))
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
