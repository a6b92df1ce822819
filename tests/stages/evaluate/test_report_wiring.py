"""The report's model numbers are the section functions' on the model's own units: evaluate must
score what UnitExtractor extracts (codebook, phonetic "model" row) and the latents the decoder is
conditioned on (ABX of the model), not some other codes or features of the same shapes."""

import json

import pytest

from audio_vq import audio
from audio_vq.config import compose
from audio_vq.manifest import read_manifest, spread_over_speakers, write_manifest
from audio_vq.stages.evaluate import report, sections
from audio_vq.stages.evaluate.alignments import frame_labels, load_alignments
from audio_vq.units import UnitExtractor

from tiny import INFERENCE

MODEL_ABX = ("model codebook vectors, by context", "model codebook vectors, phone only")


def test_the_model_rows_are_the_section_functions_on_the_models_own_units(tiny_trained, tmp_path):
    # Catches: the "model" row fed random (or baseline) codes, and the model's ABX computed on MFCCs
    # (or on anything but UnitExtractor.latents of its codes): ranges alone pass with either.
    model, data = tiny_trained / "run" / "model", tmp_path / "data"
    utts = spread_over_speakers(read_manifest(tiny_trained / "data"), 8)  # 2 of each of the 4 speakers
    write_manifest(data / "manifest.jsonl", utts, relative=False)
    cfg = compose(
        "evaluate",
        [
            f"model={model}",
            f"data={data}",
            f"out={tmp_path / 'out'}",
            "split=[train,valid,test]",
            f"max_utterances={len(utts)}",
            "reconstruct_utterances=0",
            "mfcc_kmeans=false",
            "abx_max_triples=5",
        ],
        package=INFERENCE,
    )
    report.evaluate(cfg)
    r = json.loads((tmp_path / "out" / "report.json").read_text())
    assert r["utterances"] == len(utts)  # every utterance, in manifest order: what is recomputed below

    extractor = UnitExtractor.from_pretrained(model)
    fr, k = extractor.frame_rate, extractor.codebook_size
    codes = {u.id: extractor.extract(audio.load(u.path, extractor.sample_rate)).codes for u in utts}  # (1, frames)
    health = sections.codebook_health({u: c[0] for u, c in codes.items()}, k, fr)
    assert r["codebook"]["counts"] == health["counts"]
    for key in ("perplexity", "bitrate_entropy", "bitrate_entropy_deduplicated", "mean_run_frames"):
        assert r["codebook"][key] == pytest.approx(health[key], rel=1e-9), key

    alignments = load_alignments(None, utts)
    silences = frozenset(cfg.silence)
    phones = {u: frame_labels(a, codes[u].shape[1], fr, silences) for u, a in alignments.items()}
    model_row = sections.phonetic_quality(phones, {"model": {u: codes[u][0] for u in alignments}}, k, cfg.seed)[
        "systems"
    ]["model"]
    assert r["phonetic"]["systems"]["model"] == pytest.approx(model_row, rel=1e-9)
    assert r["phonetic"]["systems"]["model"] != pytest.approx(r["phonetic"]["systems"]["random"])

    latents = {u: extractor.latents(codes[u]) for u in alignments}  # (frames, D): what the decoder hears
    abx = sections.abx_section(
        alignments,
        {u.id: u.speaker for u in utts},
        {"model codebook vectors": latents},
        fr,
        cfg.abx_max_triples,
        cfg.seed,
        silences,
    )
    # scored triples to compare (by context, 8 utterances give few cells if any)
    assert abx["model codebook vectors, phone only"]["within_triples"] > 0
    for key in MODEL_ABX:
        assert r["abx"][key] == pytest.approx(abx[key], rel=1e-6), key
