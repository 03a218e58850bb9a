"""Every use of CPython's private names in one place.

Written for CPython 3.10-3.13 (`tests/test_private_apis.py` states the versions and fails with a
clear message on another one).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn

WRITTEN_FOR = ("3.10", "3.11", "3.12", "3.13")  # Python versions (major.minor)


def end_without_teardown() -> None:
    """A command that succeeded ends here, exit status 0, without tearing the interpreter down.

    Python's teardown frees the ~2,000 modules torch, Hydra and TensorBoard load, object by
    object, with a full garbage collection: ~0.3 s of CPU after `python -c "import torch,
    hydra"` has done its work, more after a run (it has loaded more), and nothing a user waits for
    (the OS takes the memory back at once). What a normal exit does that matters still runs here:
    the atexit handlers (logging's, which flushes and closes `train.log`; multiprocessing's and
    joblib's clean-up; weakref finalizers), then stdout and stderr are flushed. The normal exit is
    kept where something needs it: a non-daemon thread still running (Python waits for those),
    a tracer or profiler (cProfile and coverage write their results once the script returns),
    `python -i`. The batched launcher's worker processes end the same way (`_workers.py`).

    Why a private name: `sys.exit` runs the teardown and `os._exit` skips the atexit handlers
    too; `atexit._run_exitfuncs` (CPython 3.x) is the one way to run them first.
    """
    if sys.flags.interactive or sys.gettrace() is not None or sys.getprofile() is not None:
        return
    main = threading.main_thread()
    if any(t is not main and t.is_alive() and not t.daemon for t in threading.enumerate()):
        return
    _exit_after_atexit(0)


def exit_as_python_does(status: int) -> NoReturn:
    """End a process forked to run a script (the tests' fork server, tests/helpers.py) as the
    interpreter ends one after its main module, teardown left out: threading's exit hooks
    (concurrent.futures' and loky's executors are shut down there, before their worker processes
    are joined), non-daemon threads joined, then the atexit handlers, output flushed.

    Why private names: multiprocessing ends its processes in another order (its finalizers, which
    join child processes, before threading's hooks: a joblib sweep's loky workers then wait
    forever), and `threading._shutdown` (CPython 3.x) is what the interpreter itself calls."""
    threading._shutdown()  # type: ignore[attr-defined]
    _exit_after_atexit(status)


def _exit_after_atexit(status: int) -> NoReturn:
    atexit._run_exitfuncs()  # CPython 3.x: what its own exit runs first (test_command_line)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone since, a closed stream
            stream.flush()
    os._exit(status)
