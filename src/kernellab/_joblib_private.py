"""Every use of joblib's (loky's) private names, and every patch of it, in one place.

Written for joblib 1.6 (`tests/test_private_apis.py` states the version and fails with a clear
message on another one).
"""

from __future__ import annotations

import functools
import signal
from typing import Any

from kernellab.signals import DEFERRED

WRITTEN_FOR = ("1.6",)  # joblib versions (major.minor) this patch was written and tested on


def workers_defer_signals() -> None:
    """joblib's (loky's) workers start with SIGINT and SIGTERM blocked, until their first job
    installs `signals.SWEEP` (whose `install` unblocks them: one that came meanwhile is handled
    then).

    A Ctrl-C that reached a worker before that (starting, unpickling its first job, which imports
    torch: seconds on a busy machine) raised KeyboardInterrupt in loky's own loop: the worker
    exited, loky took its pool for broken and SIGKILLed every other worker, so a job that was
    training lost everything, checkpoint included (`missing` in the summary). The mask is set
    around loky's fork+exec of a worker only (the child inherits it); around the whole spawn it
    would not hold: starting loky's resource tracker unblocks both signals on the way.

    Why a patch: neither joblib nor Hydra's joblib launcher has a hook that runs in a worker
    before its first task, and `loky.backend.fork_exec.fork_exec` is where a worker is made."""
    from joblib.externals.loky.backend import fork_exec as module

    fork_exec = module.fork_exec
    if getattr(fork_exec, "defers_signals", False):
        return

    @functools.wraps(fork_exec)
    def fork_exec_deferring_signals(*args: Any, **kwargs: Any) -> Any:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, DEFERRED)
        try:
            return fork_exec(*args, **kwargs)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    fork_exec_deferring_signals.defers_signals = True  # type: ignore[attr-defined]
    module.fork_exec = fork_exec_deferring_signals
