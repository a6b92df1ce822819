"""Unit files: every format writes and reads back the same units; detection; clear errors."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from audio_vq.units.formats import (
    FORMATS,
    WRITERS,
    Record,
    UnitFormatError,
    UnitsMeta,
    detect_format,
    meta_path,
    read_units,
    write_dictionary,
    write_units,
)

CODEBOOK = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
RECORDS = [
    Record("spk1_utt_a", np.array([1, 1, 2, 3, 3, 3]), None, 380),
    Record("java", np.array([5]), None, 16),  # fairseq's rstrip('.wav') would leave 'j'
    Record("x-9", np.array([0, 15, 15, 0]), None, 64),
]
SUFFIX = {name: writer.suffix for name, writer in WRITERS.items()}  # textless, zerospeech: none
LAYOUT_DEDUP = {"textless": True, "zerospeech": False}  # formats whose layout decides, whatever is asked


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
    # catches: a meta field written or read back wrong (e.g. read_meta dropping sample_rate or model_checksum)
    assert read_meta == UnitsMeta(
        fmt, 250.0, 16, 16_000, "c" * 64, LAYOUT_DEDUP.get(fmt, dedup), num_utterances=3, format_version=1
    )
    got = {r.id: r for r in records}
    assert set(got) == {r.id for r in RECORDS}
    for want in RECORDS:
        r = got[want.id]
        assert r.deduplicated().units.tolist() == want.deduplicated().units.tolist()
        if not r.lossy:
            assert r.frames().tolist() == want.frames().tolist()
    if fmt in ("jsonl", "npz", "parquet", "lhotse"):
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


def assert_unreadable(path, cases, fmt=None):
    """Each (text, message): ``path`` holding the text fails to read with that message."""
    for text, message in cases:
        path.write_text(text)
        with pytest.raises(UnitFormatError, match=message):
            list(read_units(path, fmt)[1])


def test_ids_are_checked_where_they_are_read_and_must_be_unique(tmp_path):
    units = tmp_path / "u.txt"
    assert_unreadable(
        units,
        [
            ("a|1\nb\tc|2\n", r"u.txt:2: id 'b\\tc' holds '\\t'"),
            ("a|1\n../x|2\n", r"u.txt:2: id '../x' holds '/'"),
            ("a|1\nb|2\na|3\n", r"u.txt:3: duplicate id 'a' \(first at .*u.txt:1\)"),
            ("a|1 99999999999999999999999\n", r"u.txt:1: a unit beyond the 64-bit integer range"),
        ],
        "gslm",
    )
    jsonl = tmp_path / "u.jsonl"
    jsonl.write_text(json.dumps({"id": "a", "units": [2**70]}) + "\n")
    with pytest.raises(UnitFormatError, match=r"u.jsonl:1: a unit beyond the 64-bit integer range"):
        list(read_units(jsonl, "jsonl")[1])


def test_zerospeech_never_writes_outside_its_folder(tmp_path):
    out = tmp_path / "deep" / "zs"
    meta = UnitsMeta("zerospeech", 100.0, 4, 16000, None, False)
    with pytest.raises(ValueError, match="refusing to write '../escape.txt'"):
        write_units(
            out,
            [Record("ok", np.array([1, 2])), Record("../escape", np.array([1]))],
            meta,
            codebook=np.eye(4, dtype=np.float32),
        )
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep"]


# -- one codebook: what format_version 1 wrote; several: format_version 2 ------------------------

# Written by audio_vq's format_version 1 writer (unit_formats.py of commit 0fa9861) from RECORDS
# and CODEBOOK above, with UnitsMeta(fmt, 250.0, 16, 16_000, "c" * 64, dedup).
GOLDEN = Path(__file__).parents[1] / "golden" / "units_v1"


def contents(path):
    """{relative name: bytes} of a unit output's files (meta included); an .npz by its members,
    since a zip's headers carry the time it was written."""
    files = sorted(p for p in path.parent.glob(f"{path.name.split('.')[0]}*") if p.is_file())
    files += sorted(path.rglob("*.txt")) if path.is_dir() else []
    out = {}
    for p in files:
        if p.suffix == ".npz":
            with zipfile.ZipFile(p) as z:
                out.update({f"{p.name}/{n}": z.read(n) for n in sorted(z.namelist())})
        else:
            out[str(p.relative_to(path.parent))] = p.read_bytes()
    return out


def golden_outputs():
    return [
        (p, p.name.split("_")[1], p.name.split("_")[2].split(".")[0] == "True")
        for p in sorted(GOLDEN.iterdir())
        if ".meta." not in p.name and p.suffix not in (".ids", ".durations")
    ]


@pytest.mark.parametrize("golden, fmt, dedup", golden_outputs(), ids=lambda v: getattr(v, "name", None))
def test_one_codebook_writes_what_format_version_1_wrote_and_reads_it(tmp_path, golden, fmt, dedup):
    out = tmp_path / golden.name
    write_units(out, RECORDS, UnitsMeta(fmt, 250.0, 16, 16_000, "c" * 64, dedup), CODEBOOK)
    want = contents(golden)
    assert len(want) >= 2 and contents(out) == want  # the unit files and meta.json, byte for byte
    meta, records = read_units(golden, codebook=CODEBOOK)
    assert meta.format_version == 1 and meta.num_codebooks == 1
    got = {r.id: r for r in records}
    for r in RECORDS:
        assert got[r.id].units.ndim == 1
        assert got[r.id].deduplicated().units.tolist() == r.deduplicated().units.tolist()


LEVELS = 3
LEVEL_CODEBOOK = np.random.default_rng(1).standard_normal((LEVELS, 16, 4)).astype(np.float32)
LEVEL_RECORDS = [
    Record("spk1_utt_a", np.array([[1, 1, 2, 3, 3, 3], [0, 0, 0, 7, 7, 8], [4, 4, 4, 4, 4, 4]]), None, 380),
    Record("java", np.array([[5], [6], [7]]), None, 16),
    Record("x-9", np.array([[0, 15, 15, 0], [1, 1, 1, 1], [2, 2, 3, 3]]), None, 64),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dedup", [False, True])
def test_several_codebooks_round_trip_in_every_format(tmp_path, fmt, dedup):
    out = path_for(tmp_path, fmt, dedup)
    write_units(
        out, LEVEL_RECORDS, UnitsMeta(fmt, 250.0, 16, 16_000, None, dedup, num_codebooks=LEVELS), LEVEL_CODEBOOK
    )
    meta = json.loads(meta_path(out, fmt).read_text())
    assert meta["num_codebooks"] == LEVELS and meta["format_version"] == 2 and meta["frame_rates"] == [250.0] * 3
    read_meta, records = read_units(out, codebook=LEVEL_CODEBOOK)  # every field as written, as above
    assert read_meta == UnitsMeta(
        fmt,
        250.0,
        16,
        16_000,
        None,
        LAYOUT_DEDUP.get(fmt, dedup),
        num_utterances=3,
        format_version=2,
        num_codebooks=LEVELS,
        frame_rates=[250.0] * LEVELS,
    )
    got = {r.id: r for r in records}
    assert sorted(got) == sorted(r.id for r in LEVEL_RECORDS)  # zerospeech: folder order
    for want in LEVEL_RECORDS:
        r = got[want.id]
        assert r.units.shape[0] == LEVELS
        assert r.deduplicated().units.tolist() == want.deduplicated().units.tolist()
        if not r.lossy:
            assert r.frames().tolist() == want.frames().tolist()


def test_the_level_layouts(tmp_path):
    meta = UnitsMeta("gslm", 250.0, 16, 16_000, None, False, num_codebooks=LEVELS)
    write_units(tmp_path / "u.txt", LEVEL_RECORDS[1:2], meta)
    assert (tmp_path / "u.txt").read_text() == "java_q0|5\njava_q1|6\njava_q2|7\n"
    write_units(
        tmp_path / "t", LEVEL_RECORDS[:1], UnitsMeta("textless", 250.0, 16, 16_000, None, True, num_codebooks=LEVELS)
    )
    # runs of whole frames: (1,0,4) (1,0,4) | (2,0,4) | (3,7,4) (3,7,4) | (3,8,4)
    assert (tmp_path / "t.units").read_text() == "1 2 3 3\n0 0 7 8\n4 4 4 4\n"
    assert (tmp_path / "t.durations").read_text() == "2 1 2 1\n" * 3
    assert (tmp_path / "t.ids").read_text() == "spk1_utt_a_q0\nspk1_utt_a_q1\nspk1_utt_a_q2\n"
    write_units(
        tmp_path / "u.jsonl",
        LEVEL_RECORDS[1:2],
        UnitsMeta("jsonl", 250.0, 16, 16_000, None, False, num_codebooks=LEVELS),
    )
    assert json.loads((tmp_path / "u.jsonl").read_text())["units"] == [[5], [6], [7]]
    write_units(
        tmp_path / "u.npz", LEVEL_RECORDS, UnitsMeta("npz", 250.0, 16, 16_000, None, False, num_codebooks=LEVELS)
    )
    with np.load(tmp_path / "u.npz") as z:
        assert z["units"].shape == (LEVELS, 11) and z["units"][:, 6].tolist() == [5, 6, 7]
    write_units(
        tmp_path / "zs",
        LEVEL_RECORDS[1:2],
        UnitsMeta("zerospeech", 250.0, 16, 16_000, None, False, num_codebooks=LEVELS),
        LEVEL_CODEBOOK,
    )
    row = np.loadtxt(tmp_path / "zs" / "java.txt")
    np.testing.assert_allclose(row, np.concatenate([LEVEL_CODEBOOK[level][5 + level] for level in range(3)]), rtol=1e-6)


def test_broken_level_files_name_the_line_and_the_reason(tmp_path):
    meta = UnitsMeta("gslm", 250.0, 16, 16_000, None, False, num_codebooks=2)
    write_units(tmp_path / "u.txt", [Record("a", np.array([[1, 2], [3, 4]]))], meta)
    path = tmp_path / "u.txt"
    assert_unreadable(
        path,
        [
            ("a_q1|3 4\na_q0|1 2\n", r"u.txt:1: id 'a_q1' where level 0 of 2"),
            ("a_q0|1 2\nb_q1|3 4\n", r"u.txt:2: id 'b_q1' where level 1"),
            ("a_q0|1 2\na_q1|3\n", r"u.txt:2: 1 units at level 1, 2 at level 0"),
            ("a_q0|1 2\na_q1|3 4\nb_q0|5\n", r"u.txt:3: the file ends inside an utterance: 1 of 2"),
        ],
    )
    with pytest.raises(ValueError, match=r"units of shape \(2,\) in a file of 2 codebook"):
        write_units(tmp_path / "v.txt", [Record("a", np.array([1, 2]))], meta)
    future = json.loads((tmp_path / "u.txt.meta.json").read_text()) | {"format_version": 3}
    (tmp_path / "u.txt.meta.json").write_text(json.dumps(future))
    with pytest.raises(UnitFormatError, match="format_version 3; this audio_vq reads versions 1 and 2"):
        read_units(path)


def test_zerospeech_of_the_first_levels_reads_with_the_whole_codebook(tmp_path):
    first_two = [Record(r.id, r.units[:2], None, r.num_samples) for r in LEVEL_RECORDS]
    write_units(
        tmp_path / "zs",
        first_two,
        UnitsMeta("zerospeech", 250.0, 16, 16_000, None, False, num_codebooks=2),
        LEVEL_CODEBOOK[:2],
    )
    got = {r.id: r.units.tolist() for r in read_units(tmp_path / "zs", codebook=LEVEL_CODEBOOK)[1]}
    assert got == {r.id: r.units.tolist() for r in first_two}
    with pytest.raises(UnitFormatError, match=r"2 codebook\(s\) in the file, the model has 1"):
        read_units(tmp_path / "zs", codebook=LEVEL_CODEBOOK[0])


def test_a_new_format_is_one_class(tmp_path, monkeypatch):
    """Catches a format switch on names creeping back: a format defined only as a UnitWriter
    subclass must write, be detected from its meta.json and read back through the registry."""
    from audio_vq.units import formats

    monkeypatch.setattr(formats, "WRITERS", dict(formats.WRITERS))  # the test's format leaves with it

    class TsvWriter(formats.UnitWriter):
        name, suffix, holds_durations = "tsv", ".tsv", False

        @classmethod
        def read(cls, path, q, codebook):
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                uid, units = line.split("\t")
                yield f"{path}:{lineno}", Record(uid, np.array(units.split(","), dtype=np.int64))

        def _write(self, rec):
            self._files[0].write(f"{rec.id}\t{','.join(map(str, rec.units.tolist()))}\n")

    out = tmp_path / "units.tsv"
    write_units(out, RECORDS, UnitsMeta("tsv", 250.0, 16, 16_000, None, False))
    assert out.read_text().splitlines()[1] == "java\t5"
    assert detect_format(out) == "tsv" and meta_path(out, "tsv") == tmp_path / "units.tsv.meta.json"
    meta, records = read_units(out)
    assert meta.format == "tsv" and [(r.id, r.units.tolist()) for r in records] == [
        (r.id, r.units.tolist()) for r in RECORDS
    ]


def test_parquet_is_read_as_it_is_by_datasets_and_pyarrow(tmp_path):
    """The consumers a unit LM uses read the table without help: ids, speakers, files, units
    (int16 when every code fits, int32 otherwise; a list per level with several codebooks) and
    durations. Catches a schema they cannot read or a column out of step with its rows."""
    import datasets
    import pyarrow.parquet as pq

    records = [
        Record(r.id, r.units, None, r.num_samples, speaker=f"s{i}", path=f"/a/{r.id}.wav")
        for i, r in enumerate(RECORDS)
    ]
    out = tmp_path / "units.parquet"
    write_units(out, records, UnitsMeta("parquet", 50.0, 16, 16_000, None, True))
    rows = datasets.load_dataset("parquet", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert rows["id"] == [r.id for r in records] and rows["speaker"] == ["s0", "s1", "s2"]
    assert rows["path"] == [r.path for r in records] and rows["num_samples"] == [380, 16, 64]
    assert rows["units"] == [r.deduplicated().units.tolist() for r in records]
    assert rows["durations"] == [r.deduplicated().durations.tolist() for r in records]
    assert str(pq.read_schema(out).field("units").type) == "list<element: int16>"
    big = tmp_path / "big.parquet"
    write_units(big, [Record("a", np.array([40_000, 1]))], UnitsMeta("parquet", 50.0, 40_001, 16_000, None, False))
    assert str(pq.read_schema(big).field("units").type) == "list<element: int32>"
    assert "durations" not in pq.read_schema(big).names  # frame-level: no durations column
    two = tmp_path / "two.parquet"
    write_units(
        two,
        [Record("a", np.array([[1, 2], [3, 4]]))],
        UnitsMeta("parquet", 50.0, 16, 16_000, None, False, num_codebooks=2),
    )
    assert pq.read_table(two).column("units").to_pylist() == [[[1, 2], [3, 4]]]


def test_lhotse_cutset_is_read_by_lhotse(tmp_path):
    """lhotse's own loader reads the CutSet: the units as ``cut.units``, the speaker as a
    supervision's, the audio from the recording (the file itself). Catches a cut lhotse refuses
    or a recording that does not describe its file."""
    import lhotse
    import soundfile as sf

    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(8000, dtype=np.float32), 16_000)
    records = [
        Record("a", np.array([1, 1, 2]), None, 8000, speaker="spk1", path=str(wav)),
        Record("b", np.array([[3, 4], [5, 6]]).T[0], None, 640, speaker=None, path=None),
    ]
    out = tmp_path / "cuts.jsonl.gz"
    write_units(out, records, UnitsMeta("lhotse", 50.0, 16, 16_000, None, True))
    cuts = {c.id: c for c in lhotse.CutSet.from_file(out)}
    assert cuts["a"].units == [1, 2] and cuts["a"].durations == [2, 1] and cuts["a"].frame_rate == 50.0
    assert cuts["a"].supervisions[0].speaker == "spk1"
    assert cuts["a"].recording.num_samples == 8000 and cuts["a"].load_audio().shape == (1, 8000)
    assert not cuts["b"].has_recording and cuts["b"].duration == 640 / 16_000
    assert detect_format(out) == "lhotse"
