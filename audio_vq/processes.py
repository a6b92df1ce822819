"""Worker processes that end with their parent.

A parent killed with SIGKILL runs no cleanup: a DataLoader or process-pool worker blocked in a
read, a decode or a full pipe would live on, holding its memory, for as long as it is blocked.
:func:`die_with_parent` (every worker initialiser of the package calls it) asks the kernel to
kill the worker when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``; a no-op elsewhere).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> None:
    """Have this process SIGKILLed when the process that started it dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before the request took effect
        os._exit(1)
