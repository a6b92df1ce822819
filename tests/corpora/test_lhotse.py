"""corpus=lhotse: CutSets and recording / supervision pairs, written by the real lhotse package,
become a manifest: whole files as they are, segments and single channels written out."""

import json
import sys

import lhotse
import numpy as np
import pytest
import soundfile as sf

from audio_vq.config import compose
from audio_vq.corpora import CorpusError
from audio_vq.manifest import read_manifest
from audio_vq.stages import prepare

RATE = 16_000


def noise(path, seconds, channels=1, seed=0):
    """A file of distinct samples (a wrong offset or channel reads different ones)."""
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, (round(seconds * RATE), channels)).astype(np.float32)
    sf.write(path, x, RATE, subtype="FLOAT" if str(path).endswith(".wav") else None)
    return x


def supervision(cut_id, recording, start, duration, speaker, text=None):
    return lhotse.SupervisionSegment(cut_id, recording.id, start, duration, speaker=speaker, text=text)


def run(root, out, *overrides):
    return prepare.run(compose("prepare", ["corpus=lhotse", f"root={root}", f"out={out}", "num_workers=0", *overrides]))


@pytest.fixture
def cuts(tmp_path):
    """A CutSet named as a dev split: a whole mono file, a segment of one channel of a stereo
    file, a segment without a speaker."""
    mono = noise(tmp_path / "mono.wav", 1.0)
    stereo = noise(tmp_path / "stereo.flac", 2.0, channels=2, seed=1)
    a = lhotse.Recording.from_file(tmp_path / "mono.wav", recording_id="mono")
    b = lhotse.Recording.from_file(tmp_path / "stereo.flac", recording_id="stereo")
    cut_set = lhotse.CutSet.from_cuts(
        [
            lhotse.MonoCut(
                "whole", 0.0, 1.0, 0, recording=a, supervisions=[supervision("whole", a, 0, 1.0, "s1", "hi")]
            ),
            lhotse.MonoCut("part", 0.5, 1.0, 1, recording=b, supervisions=[supervision("part", b, 0, 1.0, "s2")]),
            lhotse.MonoCut("nobody", 0.0, 0.5, 0, recording=b, supervisions=[supervision("nobody", b, 0, 0.5, None)]),
        ]
    )
    path = tmp_path / "corpus_cuts_dev-clean.jsonl.gz"
    cut_set.to_file(path)
    return path, mono, stereo


def test_a_cutset_becomes_utterances_whole_files_kept_and_segments_written_out(cuts, tmp_path):
    """Catches a segment read from the wrong offset or channel (distinct samples everywhere), a
    whole file copied needlessly, a cut without a speaker used, the split hint lost."""
    path, mono, stereo = cuts
    result = run(path, tmp_path / "data", "min_seconds=0.1")
    utts = {u.id: u for u in read_manifest(tmp_path / "data")}
    assert sorted(utts) == ["part", "whole"] and {u.split for u in utts.values()} == {"valid"}
    assert utts["whole"].path == str(tmp_path / "mono.wav") and utts["whole"].text == "hi"
    assert utts["part"].speaker == "s2" and utts["part"].path == str(tmp_path / "data" / "audio" / "s2" / "part.wav")
    written, rate = sf.read(utts["part"].path, dtype="float32")
    assert rate == RATE and np.abs(written - stereo[RATE // 2 : RATE // 2 + RATE, 1]).max() < 1e-4  # PCM_16
    (skipped,) = result.skipped
    assert skipped[0].endswith("#nobody") and "no speaker" in skipped[1]
    again = run(path, tmp_path / "data2", "min_seconds=0.1", "corpus.default_speaker=narrator")
    assert {u.speaker for u in again.utterances} == {"s1", "s2", "narrator"} and not again.skipped


def test_a_rerun_decodes_no_segment_again(cuts, tmp_path):
    path, *_ = cuts
    run(path, tmp_path / "data", "min_seconds=0.1")
    log = tmp_path / "data" / ".prepare" / "decoded.jsonl"
    lines = log.read_text().splitlines()
    run(path, tmp_path / "data", "min_seconds=0.1")
    assert log.read_text().splitlines() == lines


def test_a_recording_and_supervision_pair_gives_one_utterance_per_supervision(tmp_path):
    x = noise(tmp_path / "long.wav", 3.0)
    rec = lhotse.Recording.from_file(tmp_path / "long.wav", recording_id="long")
    sups = [supervision("long-0", rec, 0.25, 1.0, "s1", "one"), supervision("long-1", rec, 1.5, 1.25, "s2", "two")]
    (tmp_path / "m").mkdir()
    lhotse.RecordingSet.from_recordings([rec]).to_file(tmp_path / "m" / "x_recordings_train.jsonl.gz")
    lhotse.SupervisionSet.from_segments(sups).to_file(tmp_path / "m" / "x_supervisions_train.jsonl.gz")
    run(tmp_path / "m", tmp_path / "data", "min_seconds=0.1")
    utts = {u.id: u for u in read_manifest(tmp_path / "data")}
    assert sorted(utts) == ["long-0", "long-1"] and {u.split for u in utts.values()} == {"train"}
    assert [utts[i].num_samples for i in sorted(utts)] == [RATE, round(1.25 * RATE)]
    second, _ = sf.read(utts["long-1"].path, dtype="float32")
    assert np.abs(second - x[round(1.5 * RATE) : round(2.75 * RATE), 0]).max() < 1e-4
    assert utts["long-1"].speaker == "s2" and utts["long-1"].text == "two"


def test_bad_roots_are_one_line_errors(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no lhotse CutSet or RecordingSet"):
        run(tmp_path / "empty", tmp_path / "data")
    (tmp_path / "junk.jsonl").write_text(json.dumps({"hello": 1}) + "\n")
    with pytest.raises(CorpusError, match="junk.jsonl: not a lhotse manifest"):
        run(tmp_path / "junk.jsonl", tmp_path / "data")
    monkeypatch.setitem(sys.modules, "lhotse", None)  # the extra not installed
    with pytest.raises(CorpusError, match=r"pip install 'audio_vq\[lhotse\]'"):
        run(tmp_path / "junk.jsonl", tmp_path / "data")


def test_config_mirrors_scan(corpus_config):
    assert corpus_config("lhotse") == {"default_speaker": None, "use_file_splits": True}
