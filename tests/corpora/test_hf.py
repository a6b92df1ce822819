"""corpus=hf: datasets saved by the real `datasets` package (save_to_disk, with the audio embedded
as bytes; to_parquet, with file paths) become a manifest; audio decoded by soundfile."""

import sys

import datasets
import numpy as np
import pytest
import soundfile as sf

from audio_vq.config import compose
from audio_vq.corpora import CorpusError
from audio_vq.manifest import read_manifest
from audio_vq.stages import prepare

RATE = 16_000


@pytest.fixture
def dataset(tmp_path):
    """Three flac files of distinct noise, as a Dataset of (audio, speaker_id, text, id)."""
    rng = np.random.default_rng(0)
    audio = {}
    for i in range(3):
        audio[f"u{i}"] = x = rng.uniform(-0.5, 0.5, RATE // 2 + 100 * i).astype(np.float32)
        sf.write(tmp_path / f"u{i}.flac", x, RATE)
    table = datasets.Dataset.from_dict(
        {
            "audio": [str(tmp_path / f"u{i}.flac") for i in range(3)],
            "speaker_id": [103, 103, None],
            "text": ["one", "two", "three"],
            "id": ["a", "b", "c"],
        }
    ).cast_column("audio", datasets.Audio())
    return table, audio


def run(root, out, *overrides):
    keys = ["corpus=hf", f"root={root}", f"out={out}", "num_workers=0", "min_seconds=0.1", *overrides]
    return prepare.run(compose("prepare", keys))


def test_a_saved_dataset_dict_with_embedded_audio_becomes_a_manifest(dataset, tmp_path):
    """Catches bytes decoded from the wrong row (distinct noise per row), a split or speaker
    lost, a row without a speaker used, a number speaker turned into anything but its name."""
    table, audio = dataset
    datasets.DatasetDict({"train": table, "validation": table.select([0]).map(lambda r: {"id": "a2"})}).save_to_disk(
        tmp_path / "saved"
    )
    (tmp_path / "u1.flac").unlink()  # the saved dataset holds the bytes: the files are not needed
    keys = ["corpus.speaker_column=speaker_id", "corpus.id_column=id", "corpus.text_column=text"]
    result = run(tmp_path / "saved", tmp_path / "data", *keys)
    utts = {u.id: u for u in read_manifest(tmp_path / "data")}
    assert sorted(utts) == ["a", "a2", "b"] and [utts[i].split for i in ("a", "a2", "b")] == ["train", "valid", "train"]
    assert utts["b"].speaker == "103" and utts["b"].text == "two"
    for uid, source in (("a", "u0"), ("a2", "u0"), ("b", "u1")):
        written, rate = sf.read(utts[uid].path, dtype="float32")
        assert rate == RATE and np.abs(written - audio[source]).max() < 1e-4
    (skipped,) = result.skipped
    assert skipped[0].endswith("train/data-00000-of-00001.arrow#row=2") and "no speaker" in skipped[1]


def test_parquet_files_with_paths_point_to_the_files(dataset, tmp_path):
    table, _ = dataset
    table.to_parquet(str(tmp_path / "repo" / "data" / "test-00000-of-00001.parquet"))
    run(tmp_path / "repo", tmp_path / "data", "corpus.default_speaker=spk", "corpus.text_column=text")
    utts = {u.id: u for u in read_manifest(tmp_path / "data")}
    assert sorted(utts) == ["u0", "u1", "u2"]  # ids: the files' stems
    assert utts["u2"].path == str(tmp_path / "u2.flac") and {u.split for u in utts.values()} == {"test"}
    assert not (tmp_path / "data" / "audio").exists()  # files are used where they are


def test_rows_without_audio_are_reported_and_the_rest_kept(dataset, tmp_path):
    table, _ = dataset
    table.to_parquet(str(tmp_path / "repo" / "t.parquet"))
    (tmp_path / "u1.flac").unlink()
    result = run(tmp_path / "repo", tmp_path / "data", "corpus.default_speaker=spk")
    assert sorted(u.id for u in result.utterances) == ["u0", "u2"]
    (skipped,) = result.skipped
    assert skipped[0].endswith("t.parquet#row=1") and "is not a file here" in skipped[1]


def test_bad_roots_and_columns_are_one_line_errors(dataset, tmp_path, monkeypatch):
    table, _ = dataset
    table.save_to_disk(tmp_path / "saved")
    with pytest.raises(CorpusError, match="no column 'speaker' \\(columns: audio, speaker_id, text, id\\)"):
        run(tmp_path / "saved", tmp_path / "data", "corpus.speaker_column=speaker")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no Hugging Face dataset"):
        run(tmp_path / "empty", tmp_path / "data")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(CorpusError, match=r"pip install 'audio_vq\[hf\]'"):
        run(tmp_path / "saved", tmp_path / "data")


def test_config_mirrors_scan(corpus_config):
    assert corpus_config("hf") == {
        "audio_column": "audio",
        "speaker_column": None,
        "id_column": None,
        "text_column": None,
        "default_speaker": None,
        "use_splits": True,
    }
