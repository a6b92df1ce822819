"""prepare: every file lands in the manifest or in skipped.tsv; splits; cache; resume."""

import json
import os
import shutil
import signal
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from audio_vq.config import ConfigError, compose
from audio_vq.manifest import Utterance, read_fairseq_tsv, read_manifest, read_speakers
from audio_vq.stages import prepare

RATE = 16_000


def tone(seconds, rate, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.fixture
def odd_tree(tmp_path):
    """A folder corpus of good, odd-but-valid and broken files. Returns (root, good, bad)."""
    root = tmp_path / "corpus"
    (root / "spk1").mkdir(parents=True)
    (root / "spk2").mkdir()
    good = {  # id -> (num_samples, sample_rate) as stored
        "plain": (8000, RATE),
        "stereo": (22050, 44_100),
        "eight_k": (4000, 8000),
        "cd_flac": (22050, 44_100),
        "plain_flac": (4800, RATE),
    }
    sf.write(root / "spk1/plain.wav", tone(0.5, RATE), RATE)
    sf.write(root / "spk1/stereo.wav", tone(0.5, 44_100, channels=2), 44_100)
    sf.write(root / "spk1/eight_k.wav", tone(0.5, 8000), 8000)
    sf.write(root / "spk2/cd_flac.flac", tone(0.5, 44_100), 44_100)
    sf.write(root / "spk2/plain_flac.flac", tone(0.3, RATE), RATE)

    (root / "spk2/zero_bytes.wav").write_bytes(b"")
    sf.write(root / "spk2/full.flac", tone(2.0, RATE), RATE)
    data = (root / "spk2/full.flac").read_bytes()
    (root / "spk2/full.flac").unlink()
    (root / "spk2/truncated.flac").write_bytes(data[: len(data) // 2])
    (root / "spk1/text.wav").write_text("not audio at all\n" * 50)
    nan = tone(0.2, RATE)
    nan[17] = np.nan
    sf.write(root / "spk1/nan.wav", nan, RATE, subtype="FLOAT")
    sf.write(root / "spk2/no_samples.wav", np.zeros(0, np.float32), RATE)
    bad = {
        "zero_bytes": "empty",
        "truncated": "corrupt",
        "text": "unreadable",
        "nan": "non-finite",
        "no_samples": "no samples",
    }
    return root, good, bad


def run(root, out, *overrides, corpus="folder"):
    cfg = compose("prepare", [f"corpus={corpus}", f"root={root}", f"out={out}", *overrides])
    return prepare.run(cfg)


@pytest.mark.parametrize("workers", [0, 2])
def test_manifest_holds_exactly_the_loadable_files(odd_tree, tmp_path, workers):
    root, good, bad = odd_tree
    out = tmp_path / "out"
    run(root, out, f"num_workers={workers}")
    utts = {u.id: u for u in read_manifest(out)}
    assert set(utts) == set(good)
    for uid, (n, rate) in good.items():
        assert (utts[uid].num_samples, utts[uid].sample_rate) == (n, rate), uid
    assert utts["plain"].speaker == "spk1" and utts["cd_flac"].speaker == "spk2"

    lines = (out / "skipped.tsv").read_text().splitlines()
    assert lines[0] == "path\treason"
    rows = dict(line.split("\t") for line in lines[1:])
    assert {p.rsplit("/", 1)[1].rsplit(".", 1)[0] for p in rows} == set(bad)
    for path, reason in rows.items():
        stem = path.rsplit("/", 1)[1].rsplit(".", 1)[0]
        assert bad[stem] in reason, (path, reason)


def test_cache_audio_resamples_to_16k(odd_tree, tmp_path):
    root, good, _ = odd_tree
    out = tmp_path / "out"
    run(root, out, "cache_audio=true")
    for u in read_manifest(out):
        assert u.sample_rate == RATE and u.path.startswith(str(out / "audio"))
        info = sf.info(u.path)
        assert (info.samplerate, info.channels, info.frames) == (RATE, 1, u.num_samples)
        n, rate = good[u.id]
        assert abs(u.num_samples - n * RATE / rate) <= 1
    # stored relative to the manifest's folder, so the folder can move
    first = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert first["path"].startswith("audio/")


def test_rerun_decodes_nothing_and_resumes_after_interruption(odd_tree, tmp_path):
    root, _, _ = odd_tree
    out = tmp_path / "out"
    run(root, out, "num_workers=0")
    log = out / ".prepare" / "decoded.jsonl"
    manifest = (out / "manifest.jsonl").read_text()
    entries = log.read_text().splitlines()
    run(root, out, "num_workers=0")
    assert log.read_text().splitlines() == entries  # nothing decoded again
    assert (out / "manifest.jsonl").read_text() == manifest

    # a run killed halfway: half the log, the last line cut, no manifest yet
    log.write_text("\n".join(entries[:4]) + "\n" + entries[4][:20])
    (out / "manifest.jsonl").unlink()
    run(root, out, "num_workers=0")
    assert (out / "manifest.jsonl").read_text() == manifest
    # a file changed since: decoded again
    sf.write(root / "spk1/plain.wav", tone(0.25, RATE), RATE)
    run(root, out, "num_workers=0")
    assert {u.id: u.num_samples for u in read_manifest(out)}["plain"] == 4000


def synthetic_like(tmp_path, speakers=5, per_speaker=20):
    root = tmp_path / "corpus"
    for s in range(speakers):
        for i in range(per_speaker):
            path = root / f"s{s}" / f"s{s}_{i:03d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(0.05, RATE), RATE)
    return root


def test_split_fractions_seed_and_speakers(tmp_path):
    root = synthetic_like(tmp_path)
    a = run(root, tmp_path / "a", "split.valid=0.1", "split.test=0.2", "num_workers=0")
    per = Counter((u.speaker, u.split) for u in a.utterances)
    for s in range(5):  # stratified per speaker: 2 valid, 4 test, 14 train of 20
        assert (per[(f"s{s}", "valid")], per[(f"s{s}", "test")], per[(f"s{s}", "train")]) == (2, 4, 14)
    b = run(root, tmp_path / "b", "split.valid=0.1", "split.test=0.2", "num_workers=0")
    assert [u.split for u in a.utterances] == [u.split for u in b.utterances]
    c = run(root, tmp_path / "c", "split.valid=0.1", "split.test=0.2", "split.seed=1", "num_workers=0")
    assert [u.split for u in a.utterances] != [u.split for u in c.utterances]
    assert read_speakers(tmp_path / "a") == {f"s{s}": s for s in range(5)}


def test_holdout_speakers_go_to_test_and_leave_speakers_json(tmp_path):
    root = synthetic_like(tmp_path)
    r = run(root, tmp_path / "o", "split.holdout_speakers=[s1]", "split.num_holdout_speakers=1", "num_workers=0")
    held = {
        u.speaker
        for u in r.utterances
        if u.split == "test" and all(v.split == "test" for v in r.utterances if v.speaker == u.speaker)
    }
    assert "s1" in held and len(held) == 2
    assert set(read_speakers(tmp_path / "o")) == {f"s{s}" for s in range(5)} - held
    with pytest.raises(ConfigError, match="holdout_speakers.*nobody"):
        run(root, tmp_path / "p", "split.holdout_speakers=[nobody]", "num_workers=0")


def test_fairseq_tsv_and_corpus_splits(tmp_path):
    root = tmp_path / "LibriSpeech"
    for subset, spk in (("train-clean-100", "19"), ("dev-clean", "84")):
        chapter = root / subset / spk / "121"
        chapter.mkdir(parents=True)
        lines = []
        for i in range(3):
            uid = f"{spk}-121-{i:04d}"
            sf.write(chapter / f"{uid}.flac", tone(0.1, RATE), RATE)
            lines.append(f"{uid} HELLO WORLD {i}")
        (chapter / f"{spk}-121.trans.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    r = run(root, out, "fairseq_tsv=true", "num_workers=0", corpus="librispeech")
    assert {u.split for u in r.utterances if u.speaker == "84"} == {"valid"}
    assert {u.split for u in r.utterances if u.speaker == "19"} == {"train"}
    rows = read_fairseq_tsv(out / "valid.tsv")
    assert sorted(p.name for p, _ in rows) == [f"84-121-{i:04d}.flac" for i in range(3)]
    assert all(p.exists() and n == 1600 for p, n in rows)
    assert not (out / "test.tsv").exists()


@pytest.mark.parametrize(
    "override, key",
    [
        ("split.valid=1.5", "split.valid"),
        ("num_workers=-1", "num_workers"),
        ("split.seed=abc", "split.seed"),
        ("cache_audio=maybe", "cache_audio"),
        ("split.num_holdout_speakers=5", "split.num_holdout_speakers"),
    ],
)
def test_bad_values_name_the_key(tmp_path, override, key):
    root = synthetic_like(tmp_path, speakers=5, per_speaker=2)
    with pytest.raises(ConfigError) as err:
        run(root, tmp_path / "out", override, "num_workers=0" if "workers" not in override else "min_seconds=0")
    assert str(err.value).startswith(key)


def test_only_bad_files_is_an_error_with_skipped_written(tmp_path):
    root = tmp_path / "c" / "spk"
    root.mkdir(parents=True)
    (root / "a.wav").write_bytes(b"")
    from audio_vq.corpora import CorpusError

    with pytest.raises(CorpusError, match="none of the 1 files"):
        run(root.parent, tmp_path / "out", "num_workers=0")
    assert "empty" in (tmp_path / "out" / "skipped.tsv").read_text()
    shutil.rmtree(root)
    with pytest.raises(Exception, match="no audio files|does not exist"):
        run(root.parent, tmp_path / "out2", "num_workers=0")


def decode_or_die(job):
    """Like a codec library crashing on one file: the worker process dies, no exception."""
    if "crash" in job["path"]:
        os.kill(os.getpid(), signal.SIGSEGV)
    return prepare._decode(job)


def test_a_file_that_kills_its_worker_is_reported_and_the_rest_decoded(tmp_path):
    root = synthetic_like(tmp_path, speakers=2, per_speaker=30)
    utts = [Utterance(p.stem, str(p), p.parent.name) for p in sorted(root.glob("*/*.wav"))]
    crash = utts[17].path.replace(".wav", "_crash.wav")
    os.rename(utts[17].path, crash)
    utts[17].path = crash
    decoded = prepare.decode_all(utts, tmp_path / "log.jsonl", None, RATE, num_workers=2, decode=decode_or_die)
    assert len(decoded) == len(utts)
    for u, d in zip(utts, decoded):
        if u is utts[17]:
            assert d.error is not None and "crashed the decoder" in d.error
        else:
            assert d.error is None and d.num_samples == 800 and d.path == u.path


def test_ljspeech_listed_but_missing_wav_is_reported(tmp_path):
    root = tmp_path / "LJSpeech-1.1"
    (root / "wavs").mkdir(parents=True)
    for uid in ("LJ001-0001", "LJ001-0002"):
        sf.write(root / "wavs" / f"{uid}.wav", tone(0.2, 22_050), 22_050)
    (root / "metadata.csv").write_text(
        'LJ001-0001|Printing, "in" 1|Printing, in one\nLJ001-0002|two|two\nLJ001-0003|gone|gone\n'
    )
    r = run(
        root, tmp_path / "out", "num_workers=0", "cache_audio=true", "split.valid=0", "split.test=0", corpus="ljspeech"
    )
    assert [(u.id, u.text, u.num_samples) for u in r.utterances] == [
        ("LJ001-0001", "Printing, in one", 3200),
        ("LJ001-0002", "two", 3200),
    ]
    assert len(r.skipped) == 1 and r.skipped[0][0].endswith("LJ001-0003.wav") and "missing" in r.skipped[0][1]


def test_names_that_cannot_be_ids_are_skipped_and_the_rest_kept(tmp_path):
    root = tmp_path / "corpus"
    (root / "spk1").mkdir(parents=True)
    for name in ("good", "pipe|d", "tab\tbed", "new\nline"):
        sf.write(root / "spk1" / f"{name}.wav", tone(0.3, RATE), RATE)
    result = run(root, tmp_path / "out", "num_workers=0", "split.valid=0", "split.test=0")
    assert [u.id for u in result.utterances] == ["good"]
    skipped = (tmp_path / "out" / "skipped.tsv").read_text(encoding="utf-8").splitlines()
    assert len(skipped) == 4 and all(len(row.split("\t")) == 2 for row in skipped)  # one line, two fields each
    assert sorted(r for _, r in result.skipped) == sorted(
        f"id {n!r} holds {c!r} (no id may hold / \\ | or control characters such as tab and newline)"
        for n, c in [("new\nline", "\n"), ("pipe|d", "|"), ("tab\tbed", "\t")]
    )


def test_a_symlink_loop_adds_no_file_twice(tmp_path):
    root = tmp_path / "corpus"
    (root / "spkA" / "sub").mkdir(parents=True)
    sf.write(root / "spkA" / "one.wav", tone(0.3, RATE), RATE)
    sf.write(root / "spkA" / "sub" / "two.wav", tone(0.3, RATE), RATE)
    os.symlink("..", root / "spkA" / "sub" / "loop")  # back up to spkA
    os.symlink(root / "spkA", root / "zlink")  # a second way into one folder (sorted after it: spkA wins)
    result = run(root, tmp_path / "out", "num_workers=0", "split.valid=0", "split.test=0")
    assert sorted((u.id, u.speaker) for u in result.utterances) == [("one", "spkA"), ("two", "sub")]
