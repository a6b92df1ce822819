"""recipes/*/run.sh: stage selection, options, and a real prepare stage per recipe."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_vq.manifest import read_manifest, read_speakers

REPO = Path(__file__).resolve().parents[1]


def recipe(name, *args):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        ["bash", str(REPO / "recipes" / name / "run.sh"), *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_demo_recipe_prepares_the_synthetic_corpus(tmp_path):
    r = recipe("demo", "--exp", str(tmp_path), "--stop-stage", "prepare", "corpus.minutes=0.5")
    assert r.returncode == 0, r.stderr
    assert "stage 1" not in r.stdout
    assert "=== stage 0: prepare ===" in r.stdout
    utts = read_manifest(tmp_path / "data")
    assert len({u.speaker for u in utts}) == 8 and all(u.alignment for u in utts)
    # each speaker's share (3.75 s) is met to within half an utterance, so the total is near 30 s
    assert sum(u.duration for u in utts) == pytest.approx(30, rel=0.25)
    by_text = {}
    for u in utts:
        by_text.setdefault(u.text, set()).add(u.speaker)
    assert max(len(s) for s in by_text.values()) >= 4  # the demo's speakers read shared sentences


def test_stage_selection_and_bad_arguments(tmp_path):
    r = recipe("demo", "--exp", str(tmp_path), "--stage", "extract", "--stop-stage", "train")  # an empty range
    assert r.returncode == 0 and "stage" not in r.stdout and not (tmp_path / "data").exists()
    r = recipe("demo", "--stage", "frobnicate")
    assert r.returncode == 2 and "unknown stage 'frobnicate'" in r.stderr
    r = recipe("demo", "--bogus")
    assert r.returncode == 2 and "unknown argument '--bogus'" in r.stderr
    r = recipe("vctk", "--exp", str(tmp_path))
    assert r.returncode == 2 and "--root" in r.stderr
    r = recipe("librispeech", "--help")
    assert r.returncode == 0 and "--root" in r.stdout and "Stages:" in r.stdout


def test_vctk_recipe_on_a_092_tree(tmp_path):
    root = tmp_path / "VCTK-Corpus-0.92"
    for spk in ("p225", "p226", "p227", "p228"):
        for i in range(1, 4):
            for mic in ("mic1", "mic2"):
                path = root / "wav48_silence_trimmed" / spk / f"{spk}_{i:03d}_{mic}.flac"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, np.full(4800, 0.1, np.float32), 48_000, subtype="PCM_24")
            txt = root / "txt" / spk / f"{spk}_{i:03d}.txt"
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text(f"Sentence {i}.\n")
    r = recipe("vctk", "--root", str(root), "--exp", str(tmp_path / "exp"), "--stop-stage", "prepare", "num_workers=0")
    assert r.returncode == 0, r.stderr
    utts = read_manifest(tmp_path / "exp" / "data")
    assert len(utts) == 12 and all(u.sample_rate == 16_000 and u.num_samples == 1600 for u in utts)
    held = {u.speaker for u in utts} - set(read_speakers(tmp_path / "exp" / "data"))
    assert len(held) == 2 and all(u.split == "test" for u in utts if u.speaker in held)
    assert {u.text for u in utts} == {"Sentence 1.", "Sentence 2.", "Sentence 3."}


TINY_MODEL = [
    "model.encoder.channels=16",
    "model.quantizer.dim=8",
    "model.quantizer.codebook_size=16",
    "model.decoder.stacks=1",
    "model.decoder.layers_per_stack=4",
    "model.decoder.residual_channels=16",
    "model.decoder.gate_channels=32",
    "model.decoder.skip_channels=32",
    "model.decoder.speaker_dim=4",
    "model.decoder.pitch=none",
]


def test_demo_recipe_trains_and_a_rerun_resumes(tmp_path):
    args = [
        "--exp",
        str(tmp_path),
        "--stop-stage",
        "train",
        "corpus.minutes=1.0",
        "split.valid=0.2",
        "train.batch_size=4",
        "data.num_workers=0",
        *TINY_MODEL,
    ]
    r = recipe("demo", *args, "train.max_steps=3")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "=== stage 1: train ===" in r.stdout
    assert (tmp_path / "train" / "model" / "checksum.sha256").exists()
    # the split keys went to prepare, the model keys to train
    assert "codebook_size: 16" in (tmp_path / "train" / "config.yaml").read_text()
    r = recipe("demo", *args, "train.max_steps=5")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resuming at step 3" in (tmp_path / "train" / "train.log").read_text()
    assert (tmp_path / "train" / "checkpoints" / "step_00000005.pt").exists()


def test_model_stages_extract_evaluate_export_with_routed_overrides(tiny_trained, tmp_path):
    exp = tmp_path / "exp"
    (exp / "train").mkdir(parents=True)
    (exp / "data").symlink_to(tiny_trained / "data")
    (exp / "train" / "model").symlink_to(tiny_trained / "run" / "model")
    r = recipe(
        "demo",
        "--exp",
        str(exp),
        "--stage",
        "extract",
        "device=cpu",
        "extract.format=jsonl",
        "evaluate.split=[train,valid,test]",
        "evaluate.max_utterances=6",
        "evaluate.reconstruct_utterances=2",
        "evaluate.excerpt_seconds=0.2",
        "export.num_utterances=2",
        "export.max_seconds=0.3",
        "prior.dim=16",
        "prior.layers=1",
        "prior.heads=2",
        "prior.max_len=24",
        "train_prior.train.max_steps=2",
        "train_prior.train.batch_size=2",
        "train_prior.train.threads=1",
        "prior_eval.num_samples=1",
        "sample.seconds=0.03",
        "sample.chunk_seconds=0.5",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    for n, name in enumerate(("extract", "prior", "evaluate", "export"), 2):
        assert f"=== stage {n}: {name} ===" in r.stdout
    assert (exp / "prior" / "prior" / "checksum.sha256").exists() and (exp / "prior" / "eval" / "report.md").exists()
    assert len(list((exp / "samples" / "unconditional").glob("*.wav"))) == 4
    assert len(list((exp / "samples" / "prompted").glob("*__cont00.wav"))) == 4
    assert "max_steps: 2" in (exp / "prior" / "config.yaml").read_text()  # train_prior.K=V arrived
    assert (exp / "units" / "units.txt").read_text().startswith('{"id": ')  # extract.format=jsonl arrived
    assert (exp / "units" / "units.txt.meta.json").exists()
    assert "## Phonetic quality" in (exp / "eval" / "report.md").read_text()
    assert (exp / "listening" / "mushra" / "serve" / "webmushra.yaml").exists()
    assert (exp / "listening" / "mushra" / "private" / "key.csv").read_text().count("\n") > 2


def test_model_stages_carry_a_pitch_models_stream_through_units_priors_and_samples(tiny_trained, tiny_pitch, tmp_path):
    """A pitch model's recipe: units with the pitch stream, a content prior and a pitch prior
    given the content, and samples rendered from both."""
    from audio_vq.units.formats import read_meta

    exp = tmp_path / "exp"
    (exp / "train").mkdir(parents=True)
    (exp / "data").symlink_to(tiny_trained / "data")
    (exp / "train" / "model").symlink_to(tiny_pitch / "model")
    r = recipe(
        "demo",
        "--exp",
        str(exp),
        "--stage",
        "extract",
        "--stop-stage",
        "prior",
        "device=cpu",
        "prior.dim=16",
        "prior.layers=1",
        "prior.heads=2",
        "prior.max_len=24",
        "train_prior.train.max_steps=2",
        "train_prior.train.batch_size=2",
        "train_prior.train.threads=1",
        "prior_eval.num_samples=1",
        "sample.seconds=0.03",
        "sample.chunk_seconds=0.5",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    meta = read_meta(exp / "units" / "units.txt.meta.json")
    assert meta.pitch_bins == 32 and meta.num_codebooks == 2
    assert "level: 1" in (exp / "pitch_prior" / "config.yaml").read_text()
    assert len(list((exp / "samples" / "unconditional").glob("*.wav"))) == 4
    assert read_meta(exp / "samples" / "prompted" / "units.txt.meta.json").pitch_bins == 32
