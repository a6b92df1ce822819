"""LJSpeech scanner on a tiny LJSpeech-1.1/ tree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from audio_vq.corpora import CorpusError, ljspeech

RATE = 22_050
# Real metadata.csv quirks: an unbalanced quote (breaks csv-module parsing), commas, a line
# with no normalized column, one with an empty one. LJ003-0001 has no wav on disk.
METADATA = (
    "LJ001-0001|Printing, in the only sense with which we are at present concerned|"
    "Printing, in the only sense with which we are at present concerned\n"
    "LJ002-0026|in the three years between 1813 and 1816,|"
    "in the three years between eighteen thirteen and eighteen sixteen,\n"
    'LJ002-0100|"Dr. Smith said, "so it was|"Doctor Smith said, "so it was\n'
    "LJ002-0200|The raw text only on this line\n"
    "LJ003-0001|Mr. Brown, raw|\n"
)
ON_DISK = ("LJ001-0001", "LJ002-0026", "LJ002-0100", "LJ002-0200", "LJ050-0278")  # LJ050-0278: not in metadata


@pytest.fixture
def lj(tmp_path, write_audio, write_text) -> Path:
    root = tmp_path / "LJSpeech-1.1"
    for utt in ON_DISK:
        write_audio(root / "wavs" / f"{utt}.wav", RATE)
    write_text(root / "metadata.csv", METADATA)
    write_text(root / "README", "LJ Speech Dataset")
    return root


def test_normalized_text_falls_back_to_raw(lj):
    utts = list(ljspeech.scan(lj))
    assert [(u.id, u.text) for u in utts] == [
        ("LJ001-0001", "Printing, in the only sense with which we are at present concerned"),
        ("LJ002-0026", "in the three years between eighteen thirteen and eighteen sixteen,"),
        ("LJ002-0100", '"Doctor Smith said, "so it was'),
        ("LJ002-0200", "The raw text only on this line"),
        ("LJ003-0001", "Mr. Brown, raw"),
        ("LJ050-0278", None),
    ]
    assert {u.speaker for u in utts} == {"LJ"} and all(u.split is None for u in utts)
    assert all(u.path == str(lj / "wavs" / f"{u.id}.wav") for u in utts)


def test_raw_text_and_speaker_name(lj):
    texts = {u.id: u.text for u in ljspeech.scan(lj, speaker="linda", text="raw")}
    assert texts["LJ002-0026"] == "in the three years between 1813 and 1816,"
    assert texts["LJ002-0100"] == '"Dr. Smith said, "so it was'
    assert {u.speaker for u in ljspeech.scan(lj, speaker="linda")} == {"linda"}


def test_entries_without_wav_are_listed_for_prepare_to_report(lj):
    missing = [u.id for u in ljspeech.scan(lj) if not Path(u.path).exists()]
    assert missing == ["LJ003-0001"]


def test_layout_errors_name_the_root_and_what_is_missing(tmp_path, lj):
    with pytest.raises(CorpusError, match=re.escape(f"{tmp_path}: not an LJSpeech root (missing metadata.csv, wavs/)")):
        ljspeech.scan(tmp_path)
    (lj / "metadata.csv").unlink()
    with pytest.raises(CorpusError, match=re.escape(f"{lj}: not an LJSpeech root (missing metadata.csv)")):
        ljspeech.scan(lj)


def test_malformed_and_duplicate_metadata_lines(lj):
    (lj / "metadata.csv").write_text("LJ001-0001|text|text\nLJ001-0001,comma,separated\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"metadata.csv:2: expected 'id\|text\|normalized text'"):
        ljspeech.scan(lj)
    (lj / "metadata.csv").write_text("LJ001-0001|a|a\n\nLJ001-0001|b|b\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"metadata.csv:3: duplicate id LJ001-0001 \(first on line 1\)"):
        ljspeech.scan(lj)


def test_bad_text_option(lj):
    with pytest.raises(CorpusError, match="text must be one of normalized, raw"):
        ljspeech.scan(lj, text="original")


def test_config_mirrors_scan(lj, corpus_config):
    assert len(list(ljspeech.scan(lj, **corpus_config("ljspeech")))) == 6
