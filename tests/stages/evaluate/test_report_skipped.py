"""`audio-vq evaluate` on data the full report cannot be made from: speakers the model never saw,
one speaker, no alignments, a model of one speaker, an error in a section. What can be computed
is; every other section is {"skipped": reason} in report.json and a line in report.md."""

import dataclasses
import json

import pytest

from audio_vq.config import ConfigError, compose, compose_run
from audio_vq.manifest import read_manifest, read_speakers, write_manifest, write_speakers
from audio_vq.stages import train
from audio_vq.stages.evaluate import report, sections, skip_reason

from tiny import INFERENCE, TINY

FAST = [
    "split=[train,valid,test]",
    "excerpt_seconds=0.2",
    "abx_max_triples=5",
    "mfcc_kmeans=false",
    "voice_metrics=false",
]


def evaluate(model, data, out, *overrides):
    """(exit status, report.json, report.md) of evaluate on the manifest folder ``data``."""
    cfg = compose("evaluate", [f"model={model}", f"data={data}", f"out={out}", *FAST, *overrides], package=INFERENCE)
    status = report.evaluate(cfg)
    return status, json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


def manifest(tmp_path, utterances, name="data"):
    write_manifest(tmp_path / name / "manifest.jsonl", utterances, relative=False)
    return tmp_path / name


def section_text(md: str, heading: str) -> str:
    """The body of one report.md section (up to the next heading)."""
    return md.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


@pytest.fixture
def one_pitch_reference(monkeypatch):
    """Each target speaker's pitch from one real utterance, not four: the same code, faster."""
    monkeypatch.setattr(report, "F0_REFERENCE_UTTERANCES", 1)


def test_speakers_the_model_never_saw_are_converted_to_its_own(tiny_trained, tmp_path, one_pitch_reference):
    # Catches: the crash (a speaker probe fit on no audio: "at least 2 speakers, got []") that lost
    # the report; and a probe fit only on the evaluated manifest (conversion skipped although the
    # model's training manifest has its speakers' audio).
    model = tiny_trained / "run" / "model"
    utts = [dataclasses.replace(u, speaker=f"new-{u.speaker}") for u in read_manifest(tiny_trained / "data")]
    status, r, md = evaluate(
        model, manifest(tmp_path, utts), tmp_path / "out", "max_utterances=8", "reconstruct_utterances=2"
    )
    assert status == 0
    for computed in ("codebook", "phonetic", "abx", "conversion", "f0", "voice", "training_curves"):
        assert skip_reason(r[computed]) is None, (computed, r[computed])
    assert r["phonetic"]["systems"]["model"]["pnmi"] >= 0 and r["abx"]["model codebook vectors, phone only"]["items"]
    assert "speaker the model knows" in skip_reason(r["reconstruction"])
    trained = set(read_speakers(model / "speakers.json"))
    cv = r["conversion"]
    # the probe knows the model's 4 speakers (from its training manifest); every conversion is any-to-many
    assert cv["probe_speakers"] == 4 and cv["conversions"] == 0
    assert cv["unseen_sources"]["conversions"] == 2 and cv["unseen_sources"]["source_speakers"] == 2
    targets = {p.stem.split("_to_")[1] for p in (tmp_path / "out" / "audio").glob("*_to_*.wav")}
    assert len(targets) == 2 and targets <= trained
    pitch = r["f0"]["unseen_sources"]["speaker_f0"]  # each target's pitch, from its real (training) audio
    assert set(pitch) == targets and all(f0 > 0 for f0 in pitch.values())
    assert "Skipped: no evaluated utterance is of a speaker the model knows" in section_text(md, "Reconstruction")
    assert "never saw, classified as their target (2 conversions)" in section_text(md, "Voice conversion")


def test_a_manifest_of_one_speaker(tiny_trained, tmp_path, one_pitch_reference):
    # Catches: the probe crash (every utterance of the one speaker is evaluated, so the probe has
    # none of it: "speakers unknown to the probe" when scoring its reconstructions), and the
    # section-level crash of a probe with fewer than 2 speakers.
    utts = [u for u in read_manifest(tiny_trained / "data") if u.speaker == "spk00"]
    status, r, _ = evaluate(
        tiny_trained / "run" / "model",
        manifest(tmp_path, utts),
        tmp_path / "out",
        "max_utterances=8",
        "reconstruct_utterances=2",
    )
    assert status == 0 and r["utterances"] == len(utts)
    for computed in ("codebook", "phonetic", "abx", "reconstruction", "conversion", "f0", "voice"):
        assert skip_reason(r[computed]) is None, (computed, r[computed])
    assert r["abx"]["model codebook vectors, phone only"]["across"] is None  # one speaker: no across cell
    cv = r["conversion"]
    assert cv["probe_speakers"] == 3  # spk00's utterances are all evaluated: the probe is fit on the others'
    assert cv["probe_reconstruction_accuracy"] is None and cv["conversions"] == 2
    assert cv["code_probe"]["accuracy"] is None and "at least 2 speakers" in cv["code_probe"]["reason"]


def test_without_alignments_or_excerpts_those_sections_say_why(tiny_trained, tmp_path):
    # Catches: a section left null (the old convention) or dropped instead of {"skipped": reason},
    # and report.md without the reason under each heading.
    utts = [dataclasses.replace(u, alignment=None) for u in read_manifest(tiny_trained / "data")]
    status, r, md = evaluate(
        tiny_trained / "run" / "model",
        manifest(tmp_path, utts),
        tmp_path / "out",
        "max_utterances=4",
        "reconstruct_utterances=0",
    )
    assert status == 0 and skip_reason(r["codebook"]) is None and skip_reason(r["training_curves"]) is None
    for section, heading in (("phonetic", "Phonetic quality"), ("abx", "ABX")):
        assert r[section] == {"skipped": skip_reason(r[section])} and "no alignments" in r[section]["skipped"]
        assert f"Skipped: {r[section]['skipped']}" in section_text(md, heading)
    for section, heading in (
        ("reconstruction", "Reconstruction"),
        ("conversion", "Voice conversion"),
        ("f0", "Pitch"),
        ("voice", "Voice, measured"),
    ):
        assert r[section] == {"skipped": "reconstruct_utterances=0: no excerpt is generated"}
        assert "Skipped: reconstruct_utterances=0" in section_text(md, heading)
    assert not (tmp_path / "out" / "audio").exists()


def test_a_model_of_one_speaker_has_nobody_to_convert_to(tiny_trained, tmp_path):
    # Catches: conversion reported as null (or computed to nobody) rather than skipped with its
    # reason, and the reconstruction and pitch sections lost with it.
    utts = [u for u in read_manifest(tiny_trained / "data") if u.speaker == "spk00"]
    data = manifest(tmp_path, utts)
    write_speakers(data, ["spk00"])
    cfg, folder = compose_run(
        "train", [f"data.manifest={data}", f"hydra.run.dir={tmp_path / 'run'}", "train.max_steps=1", *TINY]
    )
    train.run(cfg, folder)
    status, r, md = evaluate(
        tmp_path / "run" / "model", data, tmp_path / "out", "max_utterances=2", "reconstruct_utterances=1"
    )
    assert status == 0
    assert r["conversion"] == {
        "skipped": "the model knows one speaker (spk00) and every evaluated utterance is "
        "theirs: no other voice to convert to"
    }
    assert "Skipped: the model knows one speaker (spk00)" in section_text(md, "Voice conversion")
    assert r["reconstruction"]["utterances"] == 1 and r["f0"]["seen"]["reconstructions"] == 1


class _Boom(RuntimeError):
    pass


def test_an_error_in_a_section_keeps_the_sections_before_it(tiny_trained, tmp_path, monkeypatch):
    # Catches: the report lost when a section fails after minutes of work (written only at the end).
    def boom(*args, **kwargs):
        raise _Boom("the ABX broke")

    monkeypatch.setattr(sections, "abx_section", boom)
    cfg = compose(
        "evaluate",
        [
            f"model={tiny_trained / 'run' / 'model'}",
            f"data={tiny_trained / 'data'}",
            f"out={tmp_path}",
            *FAST,
            "max_utterances=4",
            "reconstruct_utterances=0",
        ],
        package=INFERENCE,
    )
    with pytest.raises(_Boom):
        report.evaluate(cfg)
    r = json.loads((tmp_path / "report.json").read_text())
    assert skip_reason(r["codebook"]) is None and r["phonetic"]["systems"]["model"]["pnmi"] >= 0
    assert r["abx"] == {"skipped": "failed: _Boom: the ABX broke"}
    assert r["reconstruction"] == r["training_curves"] == {"skipped": report.NOT_REACHED}
    assert f"Skipped: {report.NOT_REACHED}" in section_text((tmp_path / "report.md").read_text(), "Training curves")


def test_data_with_no_readable_audio_is_one_line_naming_it(tiny_trained, tmp_path):
    # Catches: a traceback from the empty codebook (np.concatenate of nothing) instead of the
    # one-line user error naming the data and a file that could not be read.
    utts = read_manifest(tiny_trained / "data")[:2]
    for u in utts:
        u.path = str(tmp_path / f"{u.id}.wav")
        (tmp_path / f"{u.id}.wav").write_bytes(b"not audio")
    data = manifest(tmp_path, utts)
    with pytest.raises(
        ConfigError,
        match=rf"^data={data}: none of the 2 chosen utterances could be read \(e\.g\. "
        rf"{utts[0].path}: ",
    ) as err:
        evaluate(tiny_trained / "run" / "model", data, tmp_path / "out", "max_utterances=2")
    assert "\n" not in str(err.value)
