"""VCTK scanner on tiny trees in the 0.80 and 0.92 layouts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from audio_vq.corpora import CorpusError, vctk

RATE = 48_000
TEXTS = {
    "p225_001": "Please call Stella.",
    "p225_002": "Ask her to bring these things with her from the store.",
    "p280_001": "Six spoons of fresh snow peas.",
}  # p315 has no txt, as in the real corpus

INFO_092 = """ID  AGE  GENDER  ACCENTS  REGION COMMENTS 
p225  23  F    English    Southern  England
p280  25  F    Unknown    France (mic2 files unavailable)
p315  18  M    American    New England (Text unavailable)
"""  # noqa: W291 (the real header line ends in a space)
INFO_080 = """ID  AGE  GENDER  ACCENTS  REGION 
225  23  F    English    Southern  England
315  18  M    American    Connecticut
"""  # noqa: W291


@pytest.fixture
def vctk092(tmp_path, write_audio, write_text) -> Path:
    """VCTK-Corpus-0.92/ inside tmp_path: p225 (2 utts, both mics), p280 (mic1 only), p315 (no txt)."""
    root = tmp_path / "VCTK-Corpus-0.92"
    recordings = {"p225": ["p225_001", "p225_002"], "p280": ["p280_001"], "p315": ["p315_001"]}
    for speaker, utts in recordings.items():
        for utt in utts:
            for mic in ("mic1", "mic2"):
                if speaker == "p280" and mic == "mic2":
                    continue
                write_audio(root / "wav48_silence_trimmed" / speaker / f"{utt}_{mic}.flac", RATE, subtype="PCM_24")
    for utt, text in TEXTS.items():
        write_text(root / "txt" / utt.split("_")[0] / f"{utt}.txt", text + "\n")
    write_text(root / "speaker-info.txt", INFO_092)
    write_text(root / "README.txt", "VCTK 0.92")
    return root


@pytest.fixture
def vctk080(tmp_path, write_audio, write_text) -> Path:
    """VCTK-Corpus/ (0.80) inside tmp_path: p225 with txt, p315 without."""
    root = tmp_path / "VCTK-Corpus"
    for utt in ("p225_001", "p225_002", "p315_001"):
        write_audio(root / "wav48" / utt.split("_")[0] / f"{utt}.wav", RATE)
    for utt in ("p225_001", "p225_002"):
        write_text(root / "txt" / "p225" / f"{utt}.txt", TEXTS[utt] + "\n")
    write_text(root / "speaker-info.txt", INFO_080)
    return root


def test_092_mic1_is_the_default_and_drops_the_suffix(vctk092):
    utts = list(vctk.scan(vctk092))
    assert [u.id for u in utts] == ["p225_001", "p225_002", "p280_001", "p315_001"]
    assert [u.speaker for u in utts] == ["p225", "p225", "p280", "p315"]
    assert all(u.path.endswith(f"{u.id}_mic1.flac") and Path(u.path).is_absolute() for u in utts)
    assert [u.text for u in utts] == [TEXTS["p225_001"], TEXTS["p225_002"], TEXTS["p280_001"], None]
    assert all(u.split is None and u.alignment is None for u in utts)


def test_092_mic2_leaves_out_speakers_without_it(vctk092):
    utts = list(vctk.scan(vctk092, mic="mic2"))
    assert [u.id for u in utts] == ["p225_001", "p225_002", "p315_001"]
    assert all(u.path.endswith(f"{u.id}_mic2.flac") for u in utts)
    assert utts[0].text == TEXTS["p225_001"]


def test_092_both_mics_keep_the_suffix(vctk092):
    utts = list(vctk.scan(vctk092, mic="both"))
    assert [u.id for u in utts] == [
        "p225_001_mic1",
        "p225_001_mic2",
        "p225_002_mic1",
        "p225_002_mic2",
        "p280_001_mic1",
        "p315_001_mic1",
        "p315_001_mic2",
    ]
    assert all(Path(u.path).stem == u.id for u in utts)
    assert utts[0].text == utts[1].text == TEXTS["p225_001"]


def test_092_root_may_be_the_folder_holding_the_corpus(vctk092):
    assert list(vctk.scan(vctk092.parent)) == list(vctk.scan(vctk092))


def test_080_layout(vctk080):
    utts = list(vctk.scan(vctk080, mic="mic2"))  # mic means nothing in 0.80
    assert [(u.id, u.speaker, u.text) for u in utts] == [
        ("p225_001", "p225", TEXTS["p225_001"]),
        ("p225_002", "p225", TEXTS["p225_002"]),
        ("p315_001", "p315", None),
    ]
    assert utts[0].path == str(vctk080 / "wav48" / "p225" / "p225_001.wav")


def test_both_releases_present_prefers_092_unless_asked(vctk092, write_audio):
    write_audio(vctk092 / "wav48" / "p225" / "p225_001.wav", RATE)
    assert all(u.path.endswith(".flac") for u in vctk.scan(vctk092))
    for version in ("0.80", 0.8):  # an unquoted 0.80 in YAML arrives as a float
        assert [Path(u.path).name for u in vctk.scan(vctk092, version=version)] == ["p225_001.wav"]


def test_config_mirrors_scan(vctk092, corpus_config):
    assert len(list(vctk.scan(vctk092, **corpus_config("vctk")))) == 4


def test_not_a_vctk_root(tmp_path):
    (tmp_path / "txt").mkdir()
    with pytest.raises(CorpusError, match=f"{re.escape(str(tmp_path))}.*wav48_silence_trimmed/ or wav48/"):
        vctk.scan(tmp_path)
    with pytest.raises(CorpusError, match="does not exist"):
        vctk.scan(tmp_path / "nowhere")


def test_requested_release_missing(vctk080):
    with pytest.raises(CorpusError, match=f"{re.escape(str(vctk080))}.*0.92 needs wav48_silence_trimmed/"):
        vctk.scan(vctk080, version="0.92")


def test_bad_options_and_no_audio_for_the_mic(vctk092, tmp_path, write_audio):
    with pytest.raises(CorpusError, match="mic must be"):
        vctk.scan(vctk092, mic="mic3")
    with pytest.raises(CorpusError, match="version must be"):
        vctk.scan(vctk092, version="0.91")
    only_mic1 = tmp_path / "only_mic1"
    write_audio(only_mic1 / "wav48_silence_trimmed" / "p280" / "p280_001_mic1.flac", RATE, subtype="PCM_24")
    with pytest.raises(CorpusError, match="no VCTK 0.92 audio for mic2"):
        vctk.scan(only_mic1, mic="mic2")


def test_read_speaker_info_both_releases(vctk092, vctk080):
    info = vctk.read_speaker_info(vctk092)
    assert info["p225"] == {"age": 23, "gender": "F", "accents": "English", "region": "Southern England"}
    assert info["p280"]["comments"] == "mic2 files unavailable" and info["p280"]["region"] == "France"
    old = vctk.read_speaker_info(vctk080)
    assert set(old) == {"p225", "p315"}  # "225" -> the folder name "p225"
    assert old["p315"]["region"] == "Connecticut" and "comments" not in old["p315"]
