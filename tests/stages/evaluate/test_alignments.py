"""Alignment readers on small sample files in every accepted format, and frame labelling."""

from __future__ import annotations

import json

import pytest

from audio_vq.manifest import Utterance
from audio_vq.stages.evaluate.alignments import (
    AlignmentError,
    FrameLabels,
    Segment,
    frame_labels,
    load_alignments,
    read_alignment,
    read_frame_label_file,
    segments_from_frame_labels,
)

TEXTGRID_LONG = """File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 0.9
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 0.9
        intervals: size = 2
        intervals [1]:
            xmin = 0
            xmax = 0.3
            text = ""
        intervals [2]:
            xmin = 0.3
            xmax = 0.9
            text = "caf\u00e9"
    item [2]:
        class = "IntervalTier"
        name = "Phones"
        xmin = 0
        xmax = 0.9
        intervals: size = 4
        intervals [1]:
            xmin = 0
            xmax = 0.3
            text = ""
        intervals [2]:
            xmin = 0.3
            xmax = 0.45
            text = "k"
        intervals [3]:
            xmin = 0.45
            xmax = 0.7
            text = "\u0251"
        intervals [4]:
            xmin = 0.7
            xmax = 0.9
            text = "sil"
"""

# short format; the phone tier is not named "phones", so the last IntervalTier (before a point
# tier) is used; a label holding a doubled quote
TEXTGRID_SHORT = '''File type = "ooTextFile"
Object class = "TextGrid"

0
1.5
<exists>
3
"IntervalTier"
"words"
0
1.5
1
0
1.5
"hello"
"IntervalTier"
"segments"
0
1.5
3
0
0.5
"h"
0.5
1.0
"say ""e"""
1.0
1.5
""
"TextTier"
"events"
0
1.5
1
0.7
"click"
'''


def _long_textgrid(tiers: list[tuple[str, list[tuple[float, float, str]]]]) -> str:
    """A long-format TextGrid of IntervalTiers (name, [(xmin, xmax, text), ...])."""
    end = max(x for _, intervals in tiers for _, x, _ in intervals)
    lines = [
        'File type = "ooTextFile"',
        'Object class = "TextGrid"',
        "",
        "xmin = 0",
        f"xmax = {end}",
        "tiers? <exists>",
        f"size = {len(tiers)}",
        "item []:",
    ]
    for t, (name, intervals) in enumerate(tiers, 1):
        lines += [
            f"    item [{t}]:",
            '        class = "IntervalTier"',
            f'        name = "{name}"',
            "        xmin = 0",
            f"        xmax = {end}",
            f"        intervals: size = {len(intervals)}",
        ]
        for i, (x0, x1, text) in enumerate(intervals, 1):
            lines += [
                f"        intervals [{i}]:",
                f"            xmin = {x0}",
                f"            xmax = {x1}",
                f'            text = "{text}"',
            ]
    return "\n".join(lines) + "\n"


def _write(tmp_path, name: str, text: str, encoding: str = "utf-8") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_textgrid_long_format_picks_phones_tier_in_utf8_and_utf16(tmp_path):
    expected = [Segment(0.3, 0.45, "k"), Segment(0.45, 0.7, "\u0251"), Segment(0.7, 0.9, "sil")]
    assert read_alignment(_write(tmp_path, "a.TextGrid", TEXTGRID_LONG)) == expected
    # Praat writes UTF-16 with a BOM when labels are not ASCII; MFA may write UTF-8 with a BOM
    assert read_alignment(_write(tmp_path, "b.TextGrid", TEXTGRID_LONG, "utf-16")) == expected
    assert read_alignment(_write(tmp_path, "c.TextGrid", "\ufeff" + TEXTGRID_LONG)) == expected
    # MFA's multi-speaker tier names, the words tier last: "the last tier" would be wrong here
    mfa = _long_textgrid(
        [("spk1 - phones", [(0.0, 0.3, ""), (0.3, 0.45, "k")]), ("spk1 - words", [(0.0, 0.3, ""), (0.3, 0.45, "cat")])]
    )
    assert read_alignment(_write(tmp_path, "d.TextGrid", mfa)) == [Segment(0.3, 0.45, "k")]


def test_textgrid_short_format_uses_last_interval_tier(tmp_path):
    segments = read_alignment(_write(tmp_path, "a.textgrid", TEXTGRID_SHORT, "utf-16-le"))
    assert segments == [Segment(0.0, 0.5, "h"), Segment(0.5, 1.0, 'say "e"')]


def test_textgrid_errors_name_file_and_line(tmp_path):
    bad = TEXTGRID_LONG.replace("xmax = 0.45", "xmax = 0.2")  # interval 2 of the phones tier
    with pytest.raises(AlignmentError, match=r"a\.TextGrid:34: interval ends"):
        read_alignment(_write(tmp_path, "a.TextGrid", bad))
    with pytest.raises(AlignmentError, match="ends early"):
        read_alignment(_write(tmp_path, "b.TextGrid", TEXTGRID_LONG[:600]))


def test_htk_start_end_in_100ns_units(tmp_path):
    text = "0 3000000 sil\n3000000 4500000 k -12.5 cat\n4500000 7000000 a\n"  # score, word ignored
    assert read_alignment(_write(tmp_path, "a.lab", text)) == [
        Segment(0.0, 0.3, "sil"),
        Segment(0.3, 0.45, "k"),
        Segment(0.45, 0.7, "a"),
    ]


def test_start_end_in_seconds_like_the_synthetic_corpus(tmp_path):
    text = "0.0000000 0.1250000 sil\n0.1250000 0.2000000 b\n0.2000000 0.3100000 a\n"
    assert read_alignment(_write(tmp_path, "spk00_0000.lab", text)) == [
        Segment(0.0, 0.125, "sil"),
        Segment(0.125, 0.2, "b"),
        Segment(0.2, 0.31, "a"),
    ]
    # small integer times are seconds, not 100 ns units
    assert read_alignment(_write(tmp_path, "b.lab", "0 1 a\n1 3 b\n"))[1] == Segment(1.0, 3.0, "b")


def test_festival_end_x_phone_after_header(tmp_path):
    text = "separator ;\nnfields 1\n#\n0.290000 125 sil\n0.425000 125 h\n0.500000 125 @\n"
    assert read_alignment(_write(tmp_path, "a.lab", text)) == [
        Segment(0.0, 0.29, "sil"),
        Segment(0.29, 0.425, "h"),
        Segment(0.425, 0.5, "@"),
    ]
    # without the header a constant middle column under increasing times is still Festival's
    headerless = "0.29 26 sil\n0.425 26 h\n"
    assert read_alignment(_write(tmp_path, "b.lab", headerless))[1] == Segment(0.29, 0.425, "h")


def test_end_phone_in_seconds_and_100ns(tmp_path):
    assert read_alignment(_write(tmp_path, "a.lab", "0.1 sil\n0.25 t\n0.4 o\n")) == [
        Segment(0.0, 0.1, "sil"),
        Segment(0.1, 0.25, "t"),
        Segment(0.25, 0.4, "o"),
    ]
    assert read_alignment(_write(tmp_path, "b.lab", "1000000 sil\n2500000 t\n.\n")) == [
        Segment(0.0, 0.1, "sil"),
        Segment(0.1, 0.25, "t"),
    ]


def test_timit_phn_counts_samples(tmp_path):
    assert read_alignment(_write(tmp_path, "a.phn", "0 3200 h#\n3200 4800 sh\n")) == [
        Segment(0.0, 0.2, "h#"),
        Segment(0.2, 0.3, "sh"),
    ]


def test_label_file_errors_name_file_and_line(tmp_path):
    with pytest.raises(AlignmentError, match=r"a\.lab:3: expected 'start end phone'"):
        read_alignment(_write(tmp_path, "a.lab", "0 0.1 a\n0.1 0.2 b\nnonsense\n"))
    with pytest.raises(AlignmentError, match=r"b\.lab:2: segment ends"):
        read_alignment(_write(tmp_path, "b.lab", "0.5 a\n0.2 b\n"))
    with pytest.raises(AlignmentError, match="file not found"):
        read_alignment(tmp_path / "missing.lab")
    with pytest.raises(AlignmentError, match="no labels"):
        read_alignment(_write(tmp_path, "c.lab", "\n\n"))


def test_fairseq_frame_labels_commas_or_spaces_and_stress(tmp_path):
    path = _write(tmp_path, "dev.tsv", "u1\tsil,AH1,AH1,B\nu2\tK AE0 T\n")
    labels = read_frame_label_file(path)
    assert labels["u1"] == FrameLabels(["sil", "AH1", "AH1", "B"], 100.0)
    assert labels["u2"].labels == ["K", "AE0", "T"]
    assert read_frame_label_file(path, rate=50, strip_stress=True)["u2"] == FrameLabels(["K", "AE", "T"], 50.0)
    with pytest.raises(AlignmentError, match=r"bad\.tsv:2: duplicate uid 'u1'"):
        read_frame_label_file(_write(tmp_path, "bad.tsv", "u1\ta\nu1\tb\n"))


def test_frame_labels_take_the_phone_at_each_frame_centre():
    segments = [Segment(0.0, 0.1, "sil"), Segment(0.1, 0.25, "a"), Segment(0.25, 0.3, "b")]
    # 20 Hz frames: centres 0.025, 0.075, 0.125, 0.175, 0.225, 0.275, 0.325 (past the end)
    assert frame_labels(segments, 7, 20.0) == [None, None, "a", "a", "a", "b", None]
    assert frame_labels(segments, 2, 20.0, silences=()) == ["sil", "sil"]
    # a centre exactly on a boundary (0.25 at 4 Hz, frame 0.. centres 0.125, 0.375) and a gap
    assert frame_labels([Segment(0.0, 0.125, "x"), Segment(0.125, 0.2, "y")], 2, 4.0) == ["y", None]


def test_festival_and_timit_silences_are_left_out_by_default():
    segments = [Segment(0.0, 0.1, "h#"), Segment(0.1, 0.2, "a"), Segment(0.2, 0.3, "pau"), Segment(0.3, 0.4, "epi")]
    assert frame_labels(segments, 4, 10.0) == [None, "a", None, None]
    assert frame_labels(segments, 4, 10.0, silences=["pau"]) == ["h#", "a", None, "epi"]


def test_frame_labels_resample_fairseq_labels_by_centre_time():
    labels = FrameLabels(["a", "a", "b", "b", "b", "sil", "c", "c"], 100.0)
    # 50 Hz: centres 0.01, 0.03, 0.05, 0.07, 0.09 -> label indices 1, 3, 5, 7, 9 (past the end)
    assert frame_labels(labels, 5, 50.0) == ["a", "b", None, "c", None]
    # 200 Hz: centres 0.0025, 0.0075, 0.0125 -> indices 0, 0, 1
    assert frame_labels(labels, 3, 200.0) == ["a", "a", "a"]
    assert segments_from_frame_labels(labels)[:2] == [Segment(0.0, 0.02, "a"), Segment(0.02, 0.05, "b")]


def test_load_alignments_from_manifest_folder_and_frame_label_file(tmp_path):
    lab = _write(tmp_path, "u1.lab", "0 0.5 a\n0.5 1 b\n")
    utts = [Utterance("u1", "u1.wav", "s", alignment=lab), Utterance("u2", "u2.wav", "s")]
    assert load_alignments(None, utts) == {"u1": [Segment(0.0, 0.5, "a"), Segment(0.5, 1.0, "b")]}

    folder = tmp_path / "align"
    (folder / "deep").mkdir(parents=True)
    _write(folder / "deep", "u2.TextGrid", TEXTGRID_LONG)
    _write(folder / "deep", "u2.txt", "this is a transcript, not an alignment")  # TextGrid wins
    _write(folder, "u1.lab", "0.2 a\n")
    _write(folder, "other.lab", "0.2 a\n")  # not an utterance of the manifest: never read
    found = load_alignments(folder, utts)
    assert found["u1"] == [Segment(0.0, 0.2, "a")] and found["u2"][0] == Segment(0.3, 0.45, "k")
    assert set(found) == {"u1", "u2"}

    frames = _write(tmp_path, "labels.tsv", "u2\ta,b\nzzz\tc\n")
    assert load_alignments(frames, utts) == {"u2": FrameLabels(["a", "b"], 100.0)}
    with pytest.raises(AlignmentError, match="not found"):
        load_alignments(tmp_path / "nowhere", utts)


def test_the_synthetic_corpus_labels_read_back_contiguous_and_match_its_text(tmp_path):
    from audio_vq.corpora import synthetic

    utts = list(synthetic.scan(tmp_path / "synthetic", num_speakers=1, minutes=0.05))
    found = load_alignments(None, utts)
    assert set(found) == {u.id for u in utts}
    u = utts[0]
    segments = found[u.id]
    assert " ".join(s.phone for s in segments) == u.text  # the corpus' text is its phone sequence
    assert segments[0].start == 0.0
    assert all(a.end == b.start for a, b in zip(segments, segments[1:]))
    corpus = json.loads((tmp_path / "synthetic" / "corpus.json").read_text(encoding="utf-8"))
    samples = {r["id"]: r["num_samples"] for r in corpus["utterances"]}
    assert segments[-1].end == pytest.approx(samples[u.id] / 16_000, abs=1e-6)  # 16 kHz: the default
