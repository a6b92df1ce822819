"""Folder scanner on a tiny mixed tree: nested speakers, stem collisions, files beside the audio."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from audio_vq.corpora import CorpusError, folder

RATE = 16_000
TEXTGRID = 'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = 0.1\ntiers? <exists>\nsize = 0\n'


@pytest.fixture
def tree(tmp_path, write_audio, write_text) -> Path:
    """mycorpus/: loose.wav at the top; alice/{intro.flac, take1.wav}; bob/s1/take1.flac;
    carol/SA1.WAV with a TIMIT-style upper-case SA1.PHN; plus files that are not audio."""
    root = tmp_path / "mycorpus"
    write_audio(root / "loose.wav", RATE)
    write_audio(root / "alice" / "take1.wav", RATE)
    write_text(root / "alice" / "take1.TextGrid", TEXTGRID)
    write_text(root / "alice" / "take1.txt", "Hello  from\nalice.\n")
    write_audio(root / "alice" / "intro.flac", RATE)
    write_text(root / "alice" / "intro.normalized.txt", "Doctor Who is here.")  # LibriTTS style
    write_text(root / "alice" / "intro.original.txt", "Dr. Who is here.")
    write_audio(root / "bob" / "s1" / "take1.flac", RATE)
    write_text(root / "bob" / "s1" / "take1.lab", "0 1000000 sil\n")
    write_audio(root / "carol" / "SA1.WAV", RATE)
    write_text(root / "carol" / "SA1.PHN", "0 3050 h#\n")
    write_text(root / "notes.txt", "not audio")
    write_text(root / "bob" / "readme.md", "not audio")
    return root


def test_default_rule(tree):
    utts = list(folder.scan(tree))
    assert [(u.id, u.speaker) for u in utts] == [
        ("loose", "mycorpus"),  # directly under root: the root folder's name
        ("intro", "alice"),
        ("alice_take1", "alice"),  # take1 collides: every take1 gets its relative path
        ("bob_s1_take1", "s1"),  # the parent folder, not the top one
        ("SA1", "carol"),
    ]
    by_id = {u.id: u for u in utts}
    assert by_id["alice_take1"].alignment == str(tree / "alice" / "take1.TextGrid")
    assert by_id["alice_take1"].text == "Hello from alice."
    assert by_id["intro"].text == "Doctor Who is here."  # .normalized.txt before .original.txt
    assert by_id["intro"].alignment is None
    assert by_id["bob_s1_take1"].alignment == str(tree / "bob" / "s1" / "take1.lab")
    assert by_id["SA1"].alignment == str(tree / "carol" / "SA1.PHN")  # suffixes match case-insensitively
    assert by_id["loose"].text is None and by_id["loose"].alignment is None
    assert all(u.path == str(tree / u.path) and u.split is None for u in utts)


def test_speaker_regex_named_group_and_default_speaker(tree):
    with pytest.raises(CorpusError, match=re.escape(f"{tree}: speaker_regex") + ".*does not match loose.wav"):
        folder.scan(tree, speaker_regex=r"^(?P<speaker>[^/]+)/")
    utts = list(folder.scan(tree, speaker_regex=r"^(?P<first>\w)(?P<speaker>[^/]+)/", default_speaker="nobody"))
    assert [u.speaker for u in utts] == ["nobody", "lice", "lice", "ob", "arol"]


def test_speaker_regex_first_group(tree):
    utts = list(folder.scan(tree, speaker_regex=r"(\w+)/[^/]+$", default_speaker="x"))
    assert [u.speaker for u in utts] == ["x", "alice", "alice", "s1", "carol"]


def test_bad_speaker_regex(tree):
    with pytest.raises(CorpusError, match="needs a group"):
        folder.scan(tree, speaker_regex=r"^[^/]+/")
    with pytest.raises(CorpusError, match="not a valid regex"):
        folder.scan(tree, speaker_regex=r"^(unclosed")


def test_extensions_and_sidecar_options(tree):
    utts = list(folder.scan(tree, extensions=["wav"], alignment_extensions=[".lab"], text_extensions=None))
    assert [u.id for u in utts] == ["loose", "take1", "SA1"]  # no collision once the flacs are out
    assert all(u.alignment is None and u.text is None for u in utts)
    utts = list(folder.scan(tree, extensions=".flac", text_extensions=[".original.txt"]))
    assert [(u.id, u.text) for u in utts] == [("intro", "Dr. Who is here."), ("take1", None)]


def test_two_formats_of_one_file_are_an_error(tree, write_audio):
    write_audio(tree / "alice" / "take1.flac", RATE)
    with pytest.raises(CorpusError, match=r"alice/take1.flac and alice/take1.wav would both get id 'alice_take1'"):
        folder.scan(tree)


def test_files_are_listed_not_decoded(tree):
    (tree / "broken.wav").write_bytes(b"not a RIFF header")
    assert "broken" in [u.id for u in folder.scan(tree)]  # prepare, not the scanner, rejects it


def test_no_audio(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(CorpusError, match=re.escape(f"{tmp_path}: no audio files")):
        folder.scan(tmp_path)


def test_config_mirrors_scan(tree, corpus_config):
    assert len(list(folder.scan(tree, **corpus_config("folder")))) == 5
