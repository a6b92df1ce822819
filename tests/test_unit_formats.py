"""Unit files: every format writes and reads back the same units; detection; clear errors."""
import json

import numpy as np
import pytest

from audio_vq.unit_formats import (FORMATS, Record, UnitFormatError, UnitsMeta, detect_format, meta_path,
                                   read_units, write_dictionary, write_units)

CODEBOOK = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
RECORDS = [Record("spk1_utt_a", np.array([1, 1, 2, 3, 3, 3]), None, 380),
           Record("java", np.array([5]), None, 16),  # fairseq's rstrip('.wav') would leave 'j'
           Record("x-9", np.array([0, 15, 15, 0]), None, 64)]
SUFFIX = {"gslm": ".txt", "jsonl": ".jsonl", "npz": ".npz", "textless": "", "zerospeech": ""}


def path_for(tmp_path, fmt, dedup):
    return tmp_path / f"units_{fmt}_{dedup}{SUFFIX[fmt]}"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dedup", [False, True])
def test_every_format_round_trips(tmp_path, fmt, dedup):
    out = path_for(tmp_path, fmt, dedup)
    meta = write_units(out, RECORDS, UnitsMeta(fmt, 250.0, 16, 16_000, "c" * 64, dedup), CODEBOOK)
    assert meta == meta_path(out, fmt) and json.loads(meta.read_text())["num_utterances"] == 3
    assert detect_format(out) == fmt
    read_meta, records = read_units(out, codebook=CODEBOOK)
    got = {r.id: r for r in records}
    assert set(got) == {r.id for r in RECORDS}
    for want in RECORDS:
        r = got[want.id]
        assert r.deduplicated().units.tolist() == want.deduplicated().units.tolist()
        if not r.lossy:
            assert r.frames().tolist() == want.frames().tolist()
    if fmt in ("jsonl", "npz"):
        assert [got[w.id].num_samples for w in RECORDS] == [380, 16, 64]
    lossy = fmt == "gslm" and dedup  # gslm has no place for durations
    assert all(r.lossy for r in got.values()) == lossy
    if lossy:
        with pytest.raises(UnitFormatError, match="lost their frame timing"):
            got["java"].frames()


def test_textless_is_line_aligned_and_keeps_ids(tmp_path):
    write_units(tmp_path / "train", RECORDS, UnitsMeta("textless", 250.0, 16, 16_000, None, False))
    assert (tmp_path / "train.units").read_text().splitlines()[0] == "1 2 3"
    assert (tmp_path / "train.durations").read_text().splitlines()[0] == "2 1 3"
    assert (tmp_path / "train.ids").read_text().splitlines() == ["spk1_utt_a", "java", "x-9"]
    assert json.loads((tmp_path / "train.meta.json").read_text())["deduplicated"] is True
    assert detect_format(tmp_path / "train.units") == "textless"


def test_gslm_lines_and_bare_lines_are_detected(tmp_path):
    (tmp_path / "ids.txt").write_text("a|1 2 3\nb|4\n")
    (tmp_path / "bare.txt").write_text("1 2 3\n\n4\n")
    assert [(r.id, r.units.tolist()) for r in read_units(tmp_path / "ids.txt")[1]] == [("a", [1, 2, 3]), ("b", [4])]
    assert [(r.id, r.units.tolist()) for r in read_units(tmp_path / "bare.txt")[1]] == [("0", [1, 2, 3]), ("1", [4])]
    (tmp_path / "bad.txt").write_text("a|1 2\nb|1 x\n")
    with pytest.raises(UnitFormatError, match=r"bad.txt:2: expected space-separated integer units"):
        list(read_units(tmp_path / "bad.txt")[1])
    with pytest.raises(UnitFormatError, match="no such unit file"):
        read_units(tmp_path / "missing.txt")


def test_npz_never_unpickles_and_has_documented_arrays(tmp_path):
    write_units(tmp_path / "u.npz", RECORDS, UnitsMeta("npz", 250.0, 16, 16_000, None, True))
    z = np.load(tmp_path / "u.npz", allow_pickle=False)
    assert sorted(z.files) == ["durations", "ids", "num_samples", "offsets", "units"]
    assert z["offsets"].tolist() == [0, 3, 4, 7] and z["ids"].tolist() == ["spk1_utt_a", "java", "x-9"]


def test_zerospeech_rows_are_codebook_vectors(tmp_path):
    write_units(tmp_path / "zs", RECORDS, UnitsMeta("zerospeech", 250.0, 16, 16_000, None, False), CODEBOOK)
    rows = np.loadtxt(tmp_path / "zs" / "x-9.txt", ndmin=2)
    assert rows.shape == (4, 4) and np.allclose(rows, CODEBOOK[[0, 15, 15, 0]], atol=1e-5)
    with pytest.raises(UnitFormatError, match="codebook"):
        read_units(tmp_path / "zs")


def test_a_failed_write_leaves_nothing_under_the_final_names(tmp_path):
    def broken():
        yield RECORDS[0]
        raise RuntimeError("disk full")
    for fmt in FORMATS:
        out = path_for(tmp_path, fmt, False)
        with pytest.raises(RuntimeError):
            write_units(out, broken(), UnitsMeta(fmt, 250.0, 16, 16_000, None, False), CODEBOOK)
        assert not out.exists() and not meta_path(out, fmt).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temporaries left either


def test_dictionary_lists_every_unit(tmp_path):
    lines = write_dictionary(tmp_path, 5).read_text().splitlines()
    assert lines == ["0 1", "1 1", "2 1", "3 1", "4 1"]


def test_ids_are_checked_where_they_are_read_and_must_be_unique(tmp_path):
    units = tmp_path / "u.txt"
    for text, message in [("a|1\nb\tc|2\n", r"u.txt:2: id 'b\\tc' holds '\\t'"),
                          ("a|1\n../x|2\n", r"u.txt:2: id '../x' holds '/'"),
                          ("a|1\nb|2\na|3\n", r"u.txt:3: duplicate id 'a' \(first at .*u.txt:1\)"),
                          ("a|1 99999999999999999999999\n", r"u.txt:1: a unit beyond the 64-bit integer range")]:
        units.write_text(text)
        with pytest.raises(UnitFormatError, match=message):
            list(read_units(units, "gslm")[1])
    jsonl = tmp_path / "u.jsonl"
    jsonl.write_text(json.dumps({"id": "a", "units": [2 ** 70]}) + "\n")
    with pytest.raises(UnitFormatError, match=r"u.jsonl:1: a unit beyond the 64-bit integer range"):
        list(read_units(jsonl, "jsonl")[1])


def test_zerospeech_never_writes_outside_its_folder(tmp_path):
    out = tmp_path / "deep" / "zs"
    meta = UnitsMeta("zerospeech", 100.0, 4, 16000, None, False)
    with pytest.raises(ValueError, match="refusing to write '../escape.txt'"):
        write_units(out, [Record("ok", np.array([1, 2])), Record("../escape", np.array([1]))], meta,
                    codebook=np.eye(4, dtype=np.float32))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep"]
