"""Witten-Bell n-gram baselines on hand-made sequences with probabilities worked out by hand."""

import math

import pytest

from audio_vq.stages.evaluate.ngram import WittenBell


def test_bigram_probabilities_match_the_hand_computed_ones():
    lm = WittenBell(order=2, codebook_size=2).fit([[0, 0, 1]])
    # unigram: c(0)=2, c(1)=1, N=3, T=2 -> P(0) = (2 + 2/2) / 5, P(1) = (1 + 2/2) / 5
    assert lm.prob(0, []) == pytest.approx(0.8)  # after the start symbol: (1 + 1 * 3/5) / 2
    assert lm.prob(1, []) == pytest.approx(0.2)
    assert lm.prob(0, [0]) == pytest.approx(0.55)  # c(0,.)=2, T(0)=2: (1 + 2 * 3/5) / 4
    assert lm.prob(1, [0]) == pytest.approx(0.45)
    assert lm.prob(0, [1]) == pytest.approx(0.6)  # history 1 never seen: the unigram
    assert lm.log2prob([0, 1]) == pytest.approx(math.log2(0.8 * 0.45))
    assert lm.bits_per_unit([[0, 1], [1]]) == pytest.approx(-(math.log2(0.8 * 0.45) + math.log2(0.2)) / 3)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_probabilities_sum_to_one_over_units(order):
    lm = WittenBell(order, codebook_size=5).fit([[0, 1, 2, 1, 0, 3], [2, 2, 2]])
    for history in ([], [0], [2, 2], [4, 4], [1, 0]):
        assert sum(lm.prob(w, history) for w in range(5)) == pytest.approx(1.0)


def test_higher_orders_fit_a_deterministic_pattern_better():
    seq = [0, 1, 2, 0, 1, 2] * 20
    bits = [WittenBell(n, 3).fit([seq]).bits_per_unit([seq[:30]]) for n in (1, 2, 3)]
    assert bits[0] == pytest.approx(math.log2(3), abs=0.05) and bits[2] < bits[1] < 0.5
