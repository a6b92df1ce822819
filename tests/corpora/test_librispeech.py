"""LibriSpeech scanner on a tiny LibriSpeech/ tree with train-clean-100 and dev-clean."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from audio_vq.corpora import CorpusError, librispeech

RATE = 16_000
# subset -> speaker -> chapter -> utterance number -> text
CORPUS = {
    "train-clean-100": {
        "19": {"198": {0: "NORTHANGER ABBEY", 1: "CHAPTER ONE"}},
        "103": {"1240": {0: "CHAPTER ONE MISSUS RACHEL LYNDE IS SURPRISED"}},
    },
    "dev-clean": {"84": {"121123": {0: "GO DO YOU HEAR", 1: "BUT IN LESS THAN FIVE MINUTES THE STAIRCASE GROANED"}}},
}


@pytest.fixture
def libri(tmp_path, write_audio, write_text) -> Path:
    """LibriSpeech/ with its real file names; 84-121123-0001.flac is missing (listed in trans.txt only)."""
    root = tmp_path / "LibriSpeech"
    for subset, speakers in CORPUS.items():
        for speaker, chapters in speakers.items():
            for chapter, utts in chapters.items():
                folder = root / subset / speaker / chapter
                lines = []
                for n, text in utts.items():
                    utt_id = f"{speaker}-{chapter}-{n:04d}"
                    lines.append(f"{utt_id} {text}\n")
                    if utt_id != "84-121123-0001":
                        write_audio(folder / f"{utt_id}.flac", RATE)
                write_text(folder / f"{speaker}-{chapter}.trans.txt", "".join(lines))
    write_text(
        root / "SPEAKERS.TXT", ";ID |SEX| SUBSET |MINUTES| NAME\n19 | F | train-clean-100 | 25.19 | Kara Shallenberg\n"
    )
    return root


def test_every_subset_with_split_hints(libri):
    utts = list(librispeech.scan(libri))
    assert [(u.id, u.speaker, u.split) for u in utts] == [
        ("84-121123-0000", "84", "valid"),
        ("84-121123-0001", "84", "valid"),
        ("103-1240-0000", "103", "train"),
        ("19-198-0000", "19", "train"),
        ("19-198-0001", "19", "train"),
    ]
    texts = {u.id: u.text for u in utts}
    assert texts["19-198-0000"] == "NORTHANGER ABBEY"
    assert texts["103-1240-0000"] == "CHAPTER ONE MISSUS RACHEL LYNDE IS SURPRISED"
    assert utts[2].path == str(libri / "train-clean-100" / "103" / "1240" / "103-1240-0000.flac")


def test_transcript_line_without_flac_is_still_listed(libri):
    missing = [u for u in librispeech.scan(libri) if not Path(u.path).exists()]
    assert [(u.id, u.text) for u in missing] == [
        ("84-121123-0001", "BUT IN LESS THAN FIVE MINUTES THE STAIRCASE GROANED")
    ]
    assert missing[0].path == str(libri / "dev-clean" / "84" / "121123" / "84-121123-0001.flac")


def test_chosen_subsets_and_no_split_hints(libri):
    utts = list(librispeech.scan(libri, subsets=["train-clean-100"], use_subset_splits=False))
    assert [u.id for u in utts] == ["103-1240-0000", "19-198-0000", "19-198-0001"]
    assert all(u.split is None for u in utts)
    assert [u.id for u in librispeech.scan(libri, subsets="dev-clean")] == ["84-121123-0000", "84-121123-0001"]


def test_root_may_be_one_subset(libri):
    utts = list(librispeech.scan(libri / "dev-clean"))
    assert [(u.id, u.split) for u in utts] == [("84-121123-0000", "valid"), ("84-121123-0001", "valid")]


def test_split_of():
    assert [librispeech.split_of(s) for s in ("dev-other", "test-clean", "train-other-500", "mine")] == [
        "valid",
        "test",
        "train",
        "train",
    ]


def test_missing_subset_names_it_and_those_present(libri):
    with pytest.raises(
        CorpusError, match=re.escape(f"{libri}: subset(s) test-clean not found; present: dev-clean, train-clean-100")
    ):
        librispeech.scan(libri, subsets=["dev-clean", "test-clean"])


def test_not_a_librispeech_root(tmp_path, write_audio):
    write_audio(tmp_path / "audio" / "x.flac", RATE)
    with pytest.raises(CorpusError, match=re.escape(f"{tmp_path}: not a LibriSpeech root")):
        librispeech.scan(tmp_path)


def test_same_utterance_in_two_subsets_is_an_error(libri, write_audio):
    write_audio(libri / "train-clean-360" / "19" / "198" / "19-198-0000.flac", RATE)
    with pytest.raises(CorpusError, match="19-198-0000 is in two places"):
        librispeech.scan(libri)


def test_config_mirrors_scan(libri, corpus_config):
    assert len(list(librispeech.scan(libri, **corpus_config("librispeech")))) == 5
