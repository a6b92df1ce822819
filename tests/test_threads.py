"""ThreadTuner: it keeps the thread count whose steps are fastest, and looks again later."""

import torch

from audio_vq.threads import ThreadTuner


def drive(tuner, seconds_by_threads, steps):
    seen = []
    for _ in range(steps):
        tuner.before_step()
        seen.append(tuner.threads)
        assert torch.get_num_threads() == tuner.threads
        tuner.after_step(seconds_by_threads[tuner.threads])
    return seen


def test_keeps_the_faster_count_and_reprobes():
    before = torch.get_num_threads()
    try:
        tuner = ThreadTuner([2, 1], probe_steps=2, retune_every=5)
        seen = drive(tuner, {2: 4.0, 1: 1.0}, 4)  # a busy machine: one thread is faster
        assert seen == [2, 2, 1, 1] and tuner.threads == 1
        seen = drive(tuner, {2: 0.5, 1: 1.0}, 5 + 4 + 2)  # the load went away: the next probe switches back
        assert seen[:5] == [1] * 5 and seen[5:9] == [1, 1, 2, 2] and seen[9:] == [2, 2]
        assert tuner.choices == {2: 1, 1: 1}
    finally:
        torch.set_num_threads(before)


def test_a_single_candidate_never_probes():
    before = torch.get_num_threads()
    try:
        tuner = ThreadTuner([1])
        assert drive(tuner, {1: 1.0}, 3) == [1, 1, 1]
    finally:
        torch.set_num_threads(before)
