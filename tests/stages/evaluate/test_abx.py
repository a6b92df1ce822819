"""ABX on constructed cases whose error rates are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from audio_vq.stages.evaluate.abx import AbxItem, _aggregate, _aggregate_zerospeech, abx, abx_items, angular_distances
from audio_vq.stages.evaluate.alignments import FrameLabels, Segment

FRAME_RATE = 10.0  # frames of 0.1 s: frame i is centred at (i + 0.5) / 10 s
WORDS = ("pat", "pit", "pat", "pit")  # context (p, t) around a or i, twice each per speaker


def _corpus(speakers=("s1", "s2")):
    """Utterances 'sil p <a|i> t sil', each phone 0.2 s = 2 frames; 10 frames per utterance."""
    alignments, speaker_of = {}, {}
    for s in speakers:
        for n, word in enumerate(WORDS):
            labels = ["sil", *word, "sil"]
            alignments[f"{s}_{n}"] = [Segment(0.2 * k, 0.2 * (k + 1), p) for k, p in enumerate(labels)]
            speaker_of[f"{s}_{n}"] = s
    return alignments, speaker_of


def _features(alignments, vector_of):
    """(10, D) per utterance: each frame the vector of its (speaker, phone)."""
    out = {}
    for uid, segments in alignments.items():
        speaker = uid.split("_")[0]
        out[uid] = np.array([vector_of(speaker, s.phone) for s in segments for _ in range(2)], dtype=float)
    return out


def _items(alignments, speakers):
    return abx_items(alignments, speakers, {u: 10 for u in alignments}, FRAME_RATE)


def test_items_carry_context_speaker_and_frame_range():
    alignments, speakers = _corpus(("s1",))
    items = _items(alignments, speakers)
    assert items[:3] == [
        AbxItem("s1_0", "s1", "p", "#", "a", 2, 4),
        AbxItem("s1_0", "s1", "a", "p", "t", 4, 6),
        AbxItem("s1_0", "s1", "t", "a", "#", 6, 8),
    ]
    assert len(items) == 12  # silences are no items
    # a segment holding no frame centre (0.41-0.44 s, centres at 0.35 and 0.45) gives no item; a
    # gap makes the neighbour's context the edge; fairseq frame labels work too
    short = {"u": [Segment(0.0, 0.41, "x"), Segment(0.41, 0.44, "y"), Segment(0.5, 1.0, "z")]}
    assert [(i.phone, i.prev, i.next, i.start, i.end) for i in abx_items(short, {"u": "s"}, {"u": 10}, 10.0)] == [
        ("x", "#", "y", 0, 4),
        ("z", "#", "#", 5, 10),
    ]
    frames = {"u": FrameLabels(["sil", "b", "b", "o", "o", "o"], 20.0)}
    assert [(i.phone, i.prev, i.next, i.start, i.end) for i in abx_items(frames, {"u": "s"}, {"u": 3}, 10.0)] == [
        ("b", "#", "o", 0, 1),
        ("o", "b", "#", 1, 3),
    ]  # b: 0.05-0.15 s, o: 0.15-0.3 s; centres on boundaries


def test_angular_distance_handles_zero_vectors():
    d = angular_distances(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[2.0, 0.0], [0.0, 3.0], [0.0, 0.0]]))
    assert d == pytest.approx(np.array([[0.0, 0.5, 0.5], [0.5, 0.5, 0.0]]))


def test_phone_one_hot_features_make_no_errors():
    alignments, speakers = _corpus()
    inventory = ["sil", "p", "a", "i", "t"]
    features = _features(alignments, lambda s, p: np.eye(len(inventory))[inventory.index(p)])
    result = abx(_items(alignments, speakers), features)
    assert result["within"] == 0.0 and result["across"] == 0.0
    # within: per speaker, cells (a vs i) and (i vs a), each 2 A x 1 other X x 2 B = 4 triples
    assert result["within_cells"] == 4 and result["within_triples"] == 16 and result["within_pairs"] == 1
    # across: A, B from s1 and X from s2 (and back): 2 x 2 x 2 = 8 triples per cell, 4 cells
    assert result["across_cells"] == 4 and result["across_triples"] == 32


def test_identical_features_everywhere_are_chance():
    alignments, speakers = _corpus()
    features = _features(alignments, lambda s, p: np.array([1.0, 2.0, 3.0]))
    result = abx(_items(alignments, speakers), features)
    assert result["within"] == 50.0 and result["across"] == 50.0


def test_a_hand_computed_partial_error():
    # one speaker, context (p, t); one frame each; angles: a1 = 0, a2 = 60, b1 = 30, b2 = 150 degrees
    # (distance = angle / 180). Cell (a, b): X = a2, A = a1 (d 60): B = b1 (d 30) errs, B = b2 (d 90)
    # does not; X = a1, A = a2 (d 60): b1 (30) errs, b2 (150) not: 2 / 4. Cell (b, a): X = b2,
    # A = b1 (d 120): a1 (150) not, a2 (90) errs; X = b1, A = b2 (d 120): a1 (30), a2 (30) err: 3 / 4.
    # Symmetrised: (0.5 + 0.75) / 2 = 62.5 %.
    angles = {"a1": 0, "a2": 60, "b1": 30, "b2": 150}
    features = {u: np.array([[np.cos(np.radians(t)), np.sin(np.radians(t))]]) for u, t in angles.items()}
    items = [AbxItem(u, "s", u[0], "p", "t", 0, 1) for u in angles]
    result = abx(items, features)
    assert result["within"] == pytest.approx(62.5)
    assert result["within_cells"] == 2 and result["within_triples"] == 8
    assert result["across"] is None and result["across_cells"] == 0  # one speaker
    # a different context is a separate cell, averaged over contexts before phone pairs: adding a
    # context where the pair is perfectly separated gives (0.5 + 0) / 2 and (0.75 + 0) / 2 per order
    more = {"c1": 0, "c2": 0, "d1": 90, "d2": 90}
    features.update({u: np.array([[np.cos(np.radians(t)), np.sin(np.radians(t))]]) for u, t in more.items()})
    items += [AbxItem(u, "s", "a" if u[0] == "c" else "b", "m", "n", 0, 1) for u in more]
    assert abx(items, features)["within"] == pytest.approx(31.25)


def test_speaker_dependent_features_make_across_worse_than_within():
    # s1 says a as e0 and i as e1, s2 the other way round: within each speaker a and i are apart,
    # but across speakers X sounds like B
    alignments, speakers = _corpus()

    def vector(speaker, phone):
        flip = {"a": "i", "i": "a"} if speaker == "s2" else {}
        return np.eye(5)[["sil", "p", "a", "i", "t"].index(flip.get(phone, phone))]

    result = abx(_items(alignments, speakers), _features(alignments, vector))
    assert result["within"] == 0.0 and result["across"] == 100.0


def test_sampling_is_bounded_and_seeded():
    rng = np.random.default_rng(0)
    items = [AbxItem(f"u{k}", "s", "a" if k < 6 else "b", "#", "#", 0, 3) for k in range(12)]
    features = {f"u{k}": rng.standard_normal((3, 4)) for k in range(12)}
    full = abx(items, features, max_triples=10_000)
    assert full["within_triples"] == 2 * 6 * 5 * 6  # both orders, every triple
    capped = abx(items, features, max_triples=7, seed=1)
    assert capped["within_triples"] == 14
    assert capped == abx(items, features, max_triples=7, seed=1)
    assert capped["within"] != abx(items, features, max_triples=7, seed=2)["within"]
    with pytest.raises(ValueError, match="past the 2 feature frames"):
        abx(items, {**features, "u0": features["u0"][:2]})


def test_zerospeech_averaging_differs_from_ours_on_hand_made_cells():
    # within: (a, b) has two contexts for s1 (1, 0: 0.5) and one for s2 (1), so 0.75; (b, a) = 0;
    # (a, c) = 0.5 has one order only. Ours: {a, b} = (0.75 + 0) / 2, {a, c} = 0.5 -> 43.75.
    # ZeroSpeech, over ordered pairs: (0.75 + 0 + 0.5) / 3 -> 41.67.
    within = {
        ("c1", "a", "b", "s1"): 1.0,
        ("c2", "a", "b", "s1"): 0.0,
        ("c1", "a", "b", "s2"): 1.0,
        ("c1", "b", "a", "s1"): 0.0,
        ("c1", "a", "c", "s1"): 0.5,
    }
    assert _aggregate(within) == (pytest.approx(43.75), 2)
    assert _aggregate_zerospeech(within) == pytest.approx(125 / 3)
    # across (context, a, b, s1, s2): the speaker pair (s1, s2) has two contexts, (s1, s3) and
    # (s2, s1) one. Ours, per speaker pair then pairs: (a, b) = mean(0.5, 0, 1) = 0.5, (b, a) = 0
    # -> {a, b} = 25. ZeroSpeech: s1 over its (context, X speaker) cells (1 + 0 + 0) / 3, s2 = 1,
    # so (a, b) = 2/3; (b, a) = 0 -> 33.33.
    across = {
        ("c1", "a", "b", "s1", "s2"): 1.0,
        ("c2", "a", "b", "s1", "s2"): 0.0,
        ("c1", "a", "b", "s1", "s3"): 0.0,
        ("c1", "a", "b", "s2", "s1"): 1.0,
        ("c1", "b", "a", "s1", "s2"): 0.0,
    }
    assert _aggregate(across) == (pytest.approx(25.0), 1)
    assert _aggregate_zerospeech(across) == pytest.approx(100 / 3)
    assert _aggregate_zerospeech({}) is None


def test_abx_reports_the_zerospeech_averaging_of_the_same_cells():
    # one speaker, context (p, t), one frame each: a1, a2 and c1 at 0 degrees, b1, b2 at 90. Cells
    # (a, b), (b, a), (b, c) make no error; (a, c) ties everywhere (c sits on the a's): 0.5. c has
    # one item, so (c, a) and (c, b) have no X: one order only. Ours: ({a,b} 0 + {a,c} 0.5 +
    # {b,c} 0) / 3 = 16.67; ZeroSpeech over the 4 ordered pairs: 0.5 / 4 = 12.5.
    angles = {"a1": 0, "a2": 0, "b1": 90, "b2": 90, "c1": 0}
    features = {u: np.array([[np.cos(np.radians(t)), np.sin(np.radians(t))]]) for u, t in angles.items()}
    result = abx([AbxItem(u, "s", u[0], "p", "t", 0, 1) for u in angles], features)
    assert result["within"] == pytest.approx(100 / 6) and result["within_zerospeech"] == pytest.approx(12.5)
    assert result["within_cells"] == 4 and result["within_pairs"] == 3
    assert result["across"] is None and result["across_zerospeech"] is None  # one speaker
    # where every pair has both orders and every cell level is complete, the two agree
    alignments, speakers = _corpus()
    inventory = ["sil", "p", "a", "i", "t"]
    full = abx(_items(alignments, speakers), _features(alignments, lambda s, p: np.eye(5)[inventory.index(p)]))
    assert full["within_zerospeech"] == full["within"] == 0.0 and full["across_zerospeech"] == full["across"] == 0.0


def test_festival_and_timit_silences_are_silence_by_default_and_silence_overrides():
    # Festival's pause "pau" and TIMIT's edge silence "h#" around "p a t": no item, context #
    alignment = {
        "u": [
            Segment(0.0, 0.2, "h#"),
            Segment(0.2, 0.4, "p"),
            Segment(0.4, 0.6, "a"),
            Segment(0.6, 0.8, "t"),
            Segment(0.8, 1.0, "pau"),
        ]
    }
    default = abx_items(alignment, {"u": "s"}, {"u": 10}, FRAME_RATE)
    assert [(i.phone, i.prev, i.next) for i in default] == [("p", "#", "a"), ("a", "p", "t"), ("t", "a", "#")]
    # a custom set: "pau" is now a phone (an item, and the context of t); "a" is silence
    custom = abx_items(alignment, {"u": "s"}, {"u": 10}, FRAME_RATE, silences=["h#", "a"])
    assert [(i.phone, i.prev, i.next) for i in custom] == [("p", "#", "#"), ("t", "#", "pau"), ("pau", "t", "#")]
