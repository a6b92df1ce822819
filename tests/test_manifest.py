"""Tests for audio_vq.manifest: jsonl, speakers.json and fairseq tsv round trips and errors."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from audio_vq import manifest
from audio_vq.atomic import atomic_write_text
from audio_vq.manifest import (
    ManifestError,
    Utterance,
    iter_split,
    read_fairseq_tsv,
    read_manifest,
    read_speakers,
    write_fairseq_tsv,
    write_manifest,
    write_speakers,
)

TEXT = 'Ünïcödé | pipes || "quotes" \\ 日本語 – tab\there'


def _utts(inside: Path, outside: Path) -> list[Utterance]:
    return [
        Utterance(
            "a",
            str(inside / "wav" / "a.wav"),
            "p225",
            48_000,
            48_000,
            "train",
            TEXT,
            str(inside / "align" / "a.TextGrid"),
        ),
        Utterance("b 1", str(inside / "wav" / "sub" / "b.flac"), "p226", 16_000, 16_000, "valid"),
        Utterance("ç", str(outside / "c.wav"), "p225", 123, 22_050, "test", "", None),
    ]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_round_trip_relative_inside_absolute_outside(tmp_path):
    inside, outside = tmp_path / "data", tmp_path / "elsewhere"
    utts = _utts(inside, outside)
    path = write_manifest(inside, utts)
    assert path == inside / "manifest.jsonl"
    raw = _records(path)
    assert raw[0]["path"] == os.path.join("wav", "a.wav")
    assert raw[0]["alignment"] == os.path.join("align", "a.TextGrid")
    assert raw[1]["path"] == os.path.join("wav", "sub", "b.flac")
    assert raw[2]["path"] == str((outside / "c.wav").resolve())  # outside the folder: stays absolute
    assert "alignment" not in raw[1] and raw[0]["text"] == TEXT
    assert 'Ünïcödé | pipes || \\"quotes\\"' in path.read_text(encoding="utf-8")  # not \u-escaped
    back = read_manifest(path)
    assert [asdict(u) for u in back] == [asdict(u) for u in _resolved(utts)]
    assert read_manifest(inside) == back  # the folder works as well as the file
    unresolved = read_manifest(path, resolve_paths=False)
    assert unresolved[0].path == os.path.join("wav", "a.wav")


def _resolved(utts):
    return [
        Utterance(
            **{
                **asdict(u),
                "path": str(Path(u.path).resolve()),
                "alignment": str(Path(u.alignment).resolve()) if u.alignment else u.alignment,
            }
        )
        for u in utts
    ]


def test_the_folder_can_move_as_a_whole(tmp_path):
    inside = tmp_path / "data"
    write_manifest(inside, _utts(inside, tmp_path / "elsewhere"))
    shutil.move(str(inside), str(tmp_path / "moved"))
    back = read_manifest(tmp_path / "moved")
    assert back[0].path == str((tmp_path / "moved" / "wav" / "a.wav").resolve())
    assert back[0].alignment == str((tmp_path / "moved" / "align" / "a.TextGrid").resolve())


def test_rewriting_an_unresolved_manifest_keeps_paths_relative_to_its_folder(tmp_path, monkeypatch):
    inside = tmp_path / "data"
    write_manifest(inside, _utts(inside, tmp_path / "elsewhere"))
    monkeypatch.chdir(tmp_path)  # relative paths must not be taken relative to the cwd
    write_manifest(inside, read_manifest(inside, resolve_paths=False))
    assert _records(inside / "manifest.jsonl")[0]["path"] == os.path.join("wav", "a.wav")
    assert read_manifest(inside)[0].path == str((inside / "wav" / "a.wav").resolve())


def test_absolute_paths_kept_when_not_relative(tmp_path):
    inside = tmp_path / "data"
    write_manifest(inside / "m.jsonl", _utts(inside, tmp_path), relative=False)
    assert _records(inside / "m.jsonl")[0]["path"] == str(inside / "wav" / "a.wav")


def test_unknown_keys_are_dropped_and_optional_ones_default(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text(
        json.dumps(
            {
                "id": "x",
                "path": "/abs/x.wav",
                "speaker": "s",
                "num_samples": 10,
                "sample_rate": 16000,
                "split": "train",
                "extra": 1,
            }
        )
        + "\n\n",
        encoding="utf-8",
    )
    (u,) = read_manifest(path)
    assert u == Utterance("x", "/abs/x.wav", "s", 10, 16000, "train") and u.duration == 10 / 16000


GOOD = json.dumps(
    {"id": "x", "path": "x.wav", "speaker": "s", "num_samples": 1, "sample_rate": 16000, "split": "train"}
)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", "not JSON"),
        ('["a list"]', "expected a JSON object"),
        (
            json.dumps({"id": "y", "path": "y.wav", "speaker": "s", "sample_rate": 16000, "split": "train"}),
            "missing key(s) num_samples",
        ),
        (GOOD.replace('"train"', '"dev"'), "split must be one of train/valid/test, got 'dev'"),
        (GOOD, "duplicate id 'x' (first on line 1)"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path, bad, message):
    path = tmp_path / "manifest.jsonl"
    path.write_text(GOOD + "\n" + bad + "\n", encoding="utf-8")
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path}:2: ") and message in str(err.value)


def test_missing_manifest_and_incomplete_utterance(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path)
    with pytest.raises(ManifestError, match="u1: .*num_samples, sample_rate"):
        write_manifest(tmp_path, [Utterance("u1", "/a.wav", "s", split="train")])
    assert not (tmp_path / "manifest.jsonl").exists()
    with pytest.raises(ValueError, match="u1"):
        Utterance("u1", "/a.wav", "s").duration


def test_speakers_round_trip(tmp_path):
    mapping = write_speakers(tmp_path, ["p226", "p225", "p226", "é"])
    assert mapping == {"p225": 0, "p226": 1, "é": 2}
    assert read_speakers(tmp_path) == mapping
    assert read_speakers(tmp_path / "speakers.json") == mapping
    write_speakers(tmp_path / "other.json", [])
    assert read_speakers(tmp_path / "other.json") == {}


@pytest.mark.parametrize(
    "content", ['{"a": 0, "b": 2}', '{"a": 1}', '["a"]', '{"a": 0, "b": "1"}', '{"a": 0, "b": true}', "{oops"]
)
def test_speakers_validation_names_the_file(tmp_path, content):
    path = tmp_path / "speakers.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ManifestError, match=str(path).replace("\\", "\\\\")):
        read_speakers(path)


def test_missing_speakers_file(tmp_path):
    with pytest.raises(ManifestError, match="speakers file not found"):
        read_speakers(tmp_path)


def test_fairseq_tsv_round_trip(tmp_path):
    root = tmp_path / "audio"
    utts = [
        Utterance("a", str(root / "x" / "a.wav"), "s", 16_000, 16_000, "train"),
        Utterance("b", str(root / "y" / "b.wav"), "s", 321, 16_000, "train"),
    ]
    path = write_fairseq_tsv(tmp_path / "train.tsv", utts)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == [str(root.resolve()), f"{os.path.join('x', 'a.wav')}\t16000", f"{os.path.join('y', 'b.wav')}\t321"]
    assert read_fairseq_tsv(path) == [(root.resolve() / "x" / "a.wav", 16000), (root.resolve() / "y" / "b.wav", 321)]
    write_fairseq_tsv(path, utts, root=tmp_path)
    assert path.read_text(encoding="utf-8").splitlines()[:2] == [
        str(tmp_path.resolve()),
        f"{os.path.join('audio', 'x', 'a.wav')}\t16000",
    ]
    assert read_fairseq_tsv(path)[1] == (tmp_path.resolve() / "audio" / "y" / "b.wav", 321)


def test_fairseq_tsv_errors(tmp_path):
    path = tmp_path / "bad.tsv"
    with pytest.raises(ManifestError, match="not found"):
        read_fairseq_tsv(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(ManifestError, match="empty"):
        read_fairseq_tsv(path)
    path.write_text("/root\na.wav\t10\nb.wav 20\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=f"{path}:3: expected"):
        read_fairseq_tsv(path)


def _stray_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path, monkeypatch):
    utts = [Utterance("a", str(tmp_path / "a.wav"), "s", 1, 16_000, "train")]
    write_manifest(tmp_path, utts)
    write_speakers(tmp_path, ["s"])
    write_fairseq_tsv(tmp_path / "train.tsv", utts)
    assert _stray_files(tmp_path) == []
    before = (tmp_path / "manifest.jsonl").read_text(encoding="utf-8")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(manifest.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_manifest(tmp_path, utts + [Utterance("b", str(tmp_path / "b.wav"), "s", 1, 16_000, "train")])
    assert (tmp_path / "manifest.jsonl").read_text(encoding="utf-8") == before  # the old file is intact
    assert _stray_files(tmp_path) == []
    monkeypatch.undo()
    atomic_write_text(tmp_path / "new" / "deep.txt", "x")  # creates missing folders
    assert (tmp_path / "new" / "deep.txt").read_text() == "x" and _stray_files(tmp_path / "new") == []


def test_iter_split(tmp_path):
    utts = _utts(tmp_path, tmp_path)
    assert [u.id for u in iter_split(utts, "valid")] == ["b 1"]
    assert len(list(iter_split(utts, None))) == 3
    with pytest.raises(ValueError, match="'dev'"):
        iter_split(utts, "dev")


def test_spread_over_speakers_deals_round_robin():
    import numpy as np

    from audio_vq.manifest import Utterance, spread_over_speakers

    utts = [Utterance(f"{s}_{i}", f"{s}_{i}.wav", s, 10, 16000, "test") for s in ("b", "a") for i in range(3)]
    assert [u.id for u in spread_over_speakers(utts, 4)] == ["a_0", "b_0", "a_1", "b_1"]
    assert len(spread_over_speakers(utts, 99)) == 6
    first = [u.id for u in spread_over_speakers(utts, 6, np.random.default_rng(1))]
    assert first == [u.id for u in spread_over_speakers(utts, 6, np.random.default_rng(1))]  # seeded
    assert sorted(first) == sorted(u.id for u in utts) and first[0].startswith("a") and first[1].startswith("b")


@pytest.mark.parametrize("uid", ["../../x", "/abs/x", "a|b", "a\tb", "a\nb", ".."])
def test_ids_that_cannot_be_file_names_are_refused_with_their_line(tmp_path, uid):
    path = tmp_path / "manifest.jsonl"
    bad = json.dumps(
        {"id": uid, "path": "y.wav", "speaker": "s", "num_samples": 1, "sample_rate": 16000, "split": "train"}
    )
    path.write_text(GOOD + "\n" + bad + "\n", encoding="utf-8")
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path}:2: id {uid!r} ")
    with pytest.raises(ManifestError, match="cannot write a manifest entry whose id"):
        write_manifest(tmp_path / "out", [Utterance(uid, "y.wav", "s", 1, 16000, "train")])
    speaker = GOOD.replace('"speaker": "s"', json.dumps({"speaker": "../s"})[1:-1])
    path.write_text(speaker + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r":1: speaker '../s' holds '/'"):
        read_manifest(path)
