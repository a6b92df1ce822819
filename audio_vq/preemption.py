"""Preemption: a cluster's warning signal becomes a checkpoint, not a lost run.

SLURM sends SIGTERM (or, with ``--signal=USR1@<s>``, SIGUSR1) some seconds before it kills a
job, and ``kill`` sends SIGTERM. While a :class:`PreemptionWatch` is held, the first such signal
only sets :attr:`PreemptionWatch.signal`; the training loop polls it after each step, writes a
checkpoint and exits with :data:`EXIT_PREEMPTED`. The handler then gives the signals back to
their previous handlers, so a second one ends the process at once: the time to stop is bounded
by whoever sends the signals.

SLURM signals every process of a job step, data-loader workers too. A worker killed by SIGTERM
would make torch's loader raise in the trainer mid-step; ignoring the signal instead would make
the loader's own shutdown (which terminates workers with SIGTERM) wait forever. So a worker
answers both by exiting at once with status 0 (:func:`exit_cleanly_in_worker`), which the loader
does not count as a failure: the trainer finishes its step on the batch it holds, and a trainer
waiting for its next batch finds the workers gone and stops as preempted (:func:`next_batch`).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
# sysexits' EX_TEMPFAIL: a temporary failure, run the same command again (with train.resume=true)
EXIT_PREEMPTED = 75


class PreemptionWatch:
    """Context manager: records the first of SIGNALS received while held (``signal``: its
    number, or None). Signal handlers belong to the main thread; elsewhere it watches nothing."""

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "PreemptionWatch":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._received) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""

    def _received(self, signum: int, _frame) -> None:
        self.signal = signum
        self._restore()  # a second signal acts as it did before the watch: by default, it kills

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}


def next_batch(batches: Iterator, watch: PreemptionWatch):
    """The next item of ``batches``, or None when fetching it failed because the loader's workers
    left on a preemption signal. How it fails depends on what a worker was doing when it left:
    RuntimeError when the loader finds it gone, ConnectionResetError (or another OSError) when it
    left while handing over a batch's shared memory. Without a signal every failure is raised."""
    try:
        return next(batches)
    except StopIteration:
        raise
    except Exception:
        if watch.signal is None:
            raise
        return None


def exit_cleanly_in_worker() -> None:
    """In a data-loader worker: answer the preemption signals by exiting with status 0."""
    for s in SIGNALS:
        signal.signal(s, _exit_cleanly)


def _exit_cleanly(_signum: int, _frame) -> None:
    os._exit(0)  # no cleanup: a worker holds nothing but batches the trainer no longer needs
