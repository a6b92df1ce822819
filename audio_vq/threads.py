"""How many CPU threads a training step gets: a fixed number, or ``auto`` (ThreadTuner).

Why not simply all cores: torch's OpenMP threads meet at a barrier after every parallel
region, so when another process holds one core the step waits for the descheduled thread,
again and again: on two cores with one of them busy, two threads train several times slower
than one (benchmarks/train_throughput.py --busy 1; numbers in benchmarks/RESULTS.md). Which
count is fastest depends on what else runs, and that changes during a run: ``auto`` measures it.

ThreadTuner: every ``retune_every`` steps it times ``probe_steps`` steps at each candidate
count (all usable cores, and 1) and keeps the fastest until the next probe. A probe costs a
few slow steps when the machine is busy; a wrong choice held for a whole run costs every step.
"""

from __future__ import annotations

import os

import torch

PROBE_STEPS = 3  # steps timed per candidate; the median is kept (a first step after a switch is slower)
RETUNE_EVERY = 200  # steps between probes


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask; os.cpu_count() where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class ThreadTuner:
    """Picks torch's intra-op thread count between training steps by timing them.

    Call :meth:`before_step` before each step and :meth:`after_step` with its wall seconds.
    ``threads`` is the count in force; ``choices`` counts how often each candidate won."""

    def __init__(
        self, candidates: list[int] | None = None, probe_steps: int = PROBE_STEPS, retune_every: int = RETUNE_EVERY
    ):
        cores = usable_cores()
        self.candidates = sorted(set(candidates or [cores, 1]), reverse=True)
        if any(c < 1 for c in self.candidates):
            raise ValueError(f"thread counts must be >= 1, got {self.candidates}")
        self.probe_steps, self.retune_every = probe_steps, retune_every
        self.threads = self.candidates[0]
        self.choices: dict[int, int] = {c: 0 for c in self.candidates}
        self._since_probe = 0
        self._probe: list[tuple[int, list[float]]] | None = None
        self._start_probe()

    @property
    def probing(self) -> bool:
        """True while a probe is timing the candidates."""
        return self._probe is not None

    def _start_probe(self) -> None:
        if len(self.candidates) == 1:
            self._probe = None
            torch.set_num_threads(self.threads)
            return
        # the count in force first: it is already warm
        order = [self.threads] + [c for c in self.candidates if c != self.threads]
        self._probe = [(c, []) for c in order]
        self._set(order[0])

    def _set(self, threads: int) -> None:
        self.threads = threads
        torch.set_num_threads(threads)

    def before_step(self) -> None:
        if self._probe is None and len(self.candidates) > 1 and self._since_probe >= self.retune_every:
            self._start_probe()

    def after_step(self, seconds: float) -> None:
        if self._probe is None:
            self._since_probe += 1
            return
        for i, (count, times) in enumerate(self._probe):
            if len(times) < self.probe_steps:
                times.append(seconds)
                if len(times) == self.probe_steps and i + 1 < len(self._probe):
                    self._set(self._probe[i + 1][0])
                break
        if all(len(t) == self.probe_steps for _, t in self._probe):
            best = min(self._probe, key=lambda ct: sorted(ct[1])[len(ct[1]) // 2])[0]
            self.choices[best] += 1
            self._set(best)
            self._probe, self._since_probe = None, 0
