import os
import signal

import pytest

from audio_vq.preemption import PreemptionWatch, next_batch


def _failing(error: Exception):
    yield "batch 0"
    raise error


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("DataLoader worker (pid 7) exited unexpectedly"),
        ConnectionResetError(104, "Connection reset by peer"),
        FileNotFoundError(2, "No such file or directory"),
    ],
)
def test_a_loader_failing_after_a_preemption_signal_means_its_workers_left(error):
    # Catches: only the RuntimeError of a loader that finds its workers gone taken for preemption,
    # when a worker that leaves while handing over a batch's shared memory surfaces in the trainer
    # as ConnectionResetError (seen in CI: the run ended with status 2, "Connection reset by peer",
    # instead of checkpointing and exiting 75).
    with PreemptionWatch() as watch:
        batches = _failing(error)
        assert next_batch(batches, watch) == "batch 0"
        os.kill(os.getpid(), signal.SIGUSR1)
        assert watch.signal == signal.SIGUSR1
        assert next_batch(batches, watch) is None


@pytest.mark.parametrize("error", [RuntimeError("worker failed"), ConnectionResetError(104, "reset")])
def test_a_loader_failing_without_a_signal_is_raised(error):
    # Catches: every loader failure swallowed as if the run were preempted.
    with PreemptionWatch() as watch:
        batches = _failing(error)
        assert next_batch(batches, watch) == "batch 0"
        with pytest.raises(type(error)):
            next_batch(batches, watch)


def test_an_exhausted_loader_still_stops_iteration_after_a_signal():
    with PreemptionWatch() as watch:
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(StopIteration):
            next_batch(iter([]), watch)
