"""DTW on cost matrices with known cheapest paths."""

import numpy as np
import pytest

from audio_vq.stages.evaluate.dtw import dtw, dtw_path


def test_identical_sequences_cost_zero_and_follow_the_diagonal():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    cost = np.abs(x[:, None] - x[None, :])
    assert dtw(cost) == 0.0
    i, j = dtw_path(cost)
    assert i.tolist() == j.tolist() == [0, 1, 2, 3]


def test_a_repeated_frame_is_absorbed_by_the_warp():
    a = np.array([0.0, 1.0, 2.0])
    b = np.array([0.0, 1.0, 1.0, 1.0, 2.0])  # same sequence, middle frame held
    cost = np.abs(a[:, None] - b[None, :])
    assert dtw(cost) == 0.0
    i, j = dtw_path(cost)
    assert j.tolist() == [0, 1, 2, 3, 4] and i.tolist() == [0, 1, 1, 1, 2]


def test_mean_cost_is_total_over_path_length():
    cost = np.array([[1.0, 5.0], [5.0, 3.0]])  # diagonal: 1 + 3 over 2 cells
    assert dtw(cost) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="non-empty"):
        dtw(np.zeros((0, 3)))
