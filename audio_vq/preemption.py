"""Preemption: a cluster's warning signal becomes a checkpoint, not a lost run.

SLURM sends SIGTERM (or, with ``--signal=USR1@<s>``, SIGUSR1) some seconds before it kills a
job, and ``kill`` sends SIGTERM. While a :class:`PreemptionWatch` is held, the first such signal
only sets :attr:`PreemptionWatch.signal`; the training loop polls it after each step, writes a
checkpoint and exits with :data:`EXIT_PREEMPTED`. The handler then gives the signals back to
their previous handlers, so a second one ends the process at once: the time to stop is bounded
by whoever sends the signals.

Data-loader workers ignore both (:func:`ignore_in_worker`): SLURM signals every process of a job
step, and a worker killed by SIGTERM would make the trainer fail before it could checkpoint. The
workers still end with the trainer (processes.die_with_parent).
"""
from __future__ import annotations

import signal
import threading

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


def ignore_in_worker() -> None:
    """In a data-loader worker: let the trainer alone answer the preemption signals."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)
