"""Phonetic metrics on hand-built cases with known answers, random codes against the analytic
expectation, and the two baselines' frame grid and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audio_vq.stages.evaluate.phonetic import (
    code_to_phone_accuracy,
    contingency,
    mfcc_features,
    mfcc_kmeans_units,
    purity_pnmi,
    random_code_expectation,
    random_units,
)


def test_contingency_counts_pairs_and_ignores_unlabelled_frames():
    counts, phones = contingency(["b", "a", None, "a", "b", "a"], [1, 0, 2, 0, 2, 1], 3)
    assert phones == ["a", "b"]
    assert counts.tolist() == [[2, 1, 0], [0, 1, 1]]
    with pytest.raises(ValueError, match="3 phone labels for 2"):
        contingency(["a", "b", "c"], [0, 1], 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        contingency(["a"], [2], 2)


def test_codes_identical_to_phones_are_perfect():
    phones = list("aabbbccccd")
    units = ["abcd".index(p) for p in phones]
    scores = purity_pnmi(contingency(phones, units, 4)[0])
    assert scores["phone_purity"] == pytest.approx(1.0)
    assert scores["cluster_purity"] == pytest.approx(1.0)
    assert scores["pnmi"] == pytest.approx(1.0)
    assert scores["frames"] == 10


def test_a_unit_merging_two_phones_gives_hand_computed_values():
    # a x4 -> unit 0; b x2 and c x2 share unit 1. H(phone) = 1.5 bits; the unit tells a from
    # {b, c} only: I = H(phone) - P(unit 1) H(phone | unit 1) = 1.5 - 0.5 = 1 bit
    counts = np.array([[4, 0], [0, 2], [0, 2]])
    scores = purity_pnmi(counts)
    assert scores["phone_purity"] == pytest.approx(6 / 8)  # unit 1's best phone covers 2 of its 4
    assert scores["cluster_purity"] == pytest.approx(1.0)  # each phone sits in one unit
    assert scores["phone_entropy_bits"] == pytest.approx(1.5)
    assert scores["mutual_information_bits"] == pytest.approx(1.0)
    assert scores["pnmi"] == pytest.approx(2 / 3)
    # splitting a over units 0 and 2 (3 + 1 frames) loses no phone information, only cluster purity
    split = purity_pnmi(np.array([[3, 0, 1], [0, 2, 0], [0, 2, 0]]))
    assert split["cluster_purity"] == pytest.approx(7 / 8)
    assert split["phone_purity"] == pytest.approx(6 / 8)
    assert split["pnmi"] == pytest.approx(2 / 3)


def test_matches_fairseq_definitions_on_a_random_table():
    counts = np.random.default_rng(0).integers(0, 20, size=(7, 11))
    p = counts / counts.sum()
    # fairseq's measure_teacher_quality: purity = sum of maxima; MI and H with 1e-8 in the logs
    mi = (p * np.log(p / np.outer(p.sum(1), p.sum(0)) + 1e-8)).sum()
    h_ref = (-p.sum(1) * np.log(p.sum(1) + 1e-8)).sum()
    scores = purity_pnmi(counts)
    assert scores["phone_purity"] == pytest.approx(p.max(axis=0).sum())
    assert scores["cluster_purity"] == pytest.approx(p.max(axis=1).sum())
    assert scores["pnmi"] == pytest.approx(mi / h_ref, abs=1e-6)


@pytest.mark.parametrize(
    "phone_counts, k",
    [
        ([2000, 1000, 500, 300, 200, 100, 50, 30, 20, 10], 32),
        ([3000, 2000, 1000, 600, 400], 16),
        ([200, 100, 50, 20, 10, 5], 64),
    ],
)
def test_random_codes_land_on_the_analytic_expectation(phone_counts, k):
    phones = np.repeat(np.arange(len(phone_counts)), phone_counts)
    draws = []
    for seed in range(20):
        units = np.random.default_rng(seed).integers(0, k, size=len(phones))
        counts = np.zeros((len(phone_counts), k))
        np.add.at(counts, (phones, units), 1)
        draws.append(purity_pnmi(counts))
    expected = random_code_expectation(phone_counts, k)
    for key in ("phone_purity", "cluster_purity", "pnmi"):
        mean = np.mean([d[key] for d in draws])
        assert mean == pytest.approx(expected[key], rel=0.025), key
    if min(phone_counts) >= 10 * k:  # where Miller-Madow's first order holds
        assert expected["pnmi_first_order"] == pytest.approx(expected["pnmi"], rel=0.05)


def test_expectation_of_a_single_unit_and_of_the_first_order_pnmi():
    # K = 1: every frame in one unit, purity = the largest phone's share, no information
    one = random_code_expectation([30, 10], 1)
    assert one["phone_purity"] == pytest.approx(0.75) and one["cluster_purity"] == pytest.approx(1.0)
    assert one["pnmi"] == pytest.approx(0.0, abs=1e-12)
    # (P - 1)(K - 1) / (2 N H): P = 2 equal phones (H = ln 2 nats), K = 3, N = 20000
    big = random_code_expectation([10_000, 10_000], 3)
    assert big["pnmi_first_order"] == pytest.approx(1 * 2 / (2 * 20_000 * math.log(2)))
    assert big["pnmi"] == pytest.approx(big["pnmi_first_order"], rel=0.01)


def test_code_to_phone_accuracy_maps_codes_on_one_half_and_scores_the_other():
    # code 0 means a, code 1 means b everywhere, except one utterance where code 1 is on c
    phones = {f"u{i}": ["a", "a", "b", None] for i in range(6)}
    units = {f"u{i}": [0, 0, 1, 1] for i in range(6)}
    perfect = code_to_phone_accuracy(phones, units, seed=3)
    assert perfect["accuracy"] == 1.0
    assert perfect["chance"] == pytest.approx(2 / 3)  # "a" on every test frame holds 2 of 3
    assert perfect["train_utterances"] == perfect["test_utterances"] == 3
    assert perfect["test_frames"] == 9
    # a code seen only in the test half maps to the training half's majority phone "a"
    units_unseen = dict(units)
    order = np.random.default_rng(3).permutation(6)
    test_id = sorted(units)[order[-1]]
    units_unseen[test_id] = [0, 0, 7, 7]
    unseen = code_to_phone_accuracy(phones, units_unseen, seed=3)
    assert unseen["accuracy"] == pytest.approx(8 / 9)  # its "b" frame is now predicted "a"
    # the split is reproducible for a seed and depends on it
    phones_mixed = {uid: (["a", "a", "c", None] if uid == "u0" else p) for uid, p in phones.items()}
    results = {code_to_phone_accuracy(phones_mixed, units, seed=s)["accuracy"] for s in range(10)}
    assert results == {1.0, 8 / 9}  # u0 in the test half costs its "c" frame, in the training half nothing
    assert code_to_phone_accuracy(phones_mixed, units, seed=5) == code_to_phone_accuracy(phones_mixed, units, seed=5)


def test_random_units_are_seeded_per_utterance():
    a = random_units({"x": 500, "y": 7}, 16, seed=1)
    assert a["x"].shape == (500,) and a["x"].min() >= 0 and a["x"].max() == 15
    assert np.array_equal(random_units({"x": 500}, 16, seed=1)["x"], a["x"])  # not order-dependent
    assert not np.array_equal(random_units({"x": 500}, 16, seed=2)["x"], a["x"])


@pytest.mark.parametrize("hop", [160, 320, 63])
def test_mfcc_frames_follow_the_unit_grid(hop):
    sr = 16_000
    for length in (1, hop - 1, hop, hop + 1, 5 * hop + 3):
        assert mfcc_features(np.zeros(length, np.float32), sr, hop).shape == (math.ceil(length / hop), 39)
    # a burst filling exactly the samples of frame 13 peaks (c0, log energy) in frame 13
    audio = np.zeros(40 * hop, np.float32)
    audio[13 * hop : 14 * hop] = np.random.default_rng(0).standard_normal(hop)
    assert int(mfcc_features(audio, sr, hop)[:, 0].argmax()) == 13


def test_mfcc_kmeans_separates_two_sounds_deterministically():
    sr, hop = 16_000, 160
    t = np.arange(sr // 2) / sr
    low, high = np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 3000 * t)
    audio = {"u0": np.concatenate([low, high]).astype(np.float32), "u1": np.concatenate([high, low]).astype(np.float32)}
    units = mfcc_kmeans_units(audio, sr, hop, 2, seed=0)
    assert units["u0"].shape == (100,)
    inner = slice(5, 45)  # away from the switch, where frames straddle both sounds
    assert len(set(units["u0"][inner])) == 1 and len(set(units["u0"][50:][inner])) == 1
    assert units["u0"][10] != units["u0"][60] and units["u0"][10] == units["u1"][60]
    again = mfcc_kmeans_units(audio, sr, hop, 2, seed=0)
    assert all(np.array_equal(units[u], again[u]) for u in units)
