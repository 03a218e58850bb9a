"""Every use of submitit's private names, and every patch of it, in one place.

Written for submitit 1.5 (`tests/test_private_apis.py` states the version and fails with a clear
message on another one).
"""

from __future__ import annotations

import functools
import signal
from typing import Any

WRITTEN_FOR = ("1.5",)  # submitit versions (major.minor) these patches were written and tested on


def controllers_ignore_ctrl_c() -> None:
    """submitit_local starts a controller process per job, which starts the job. On Ctrl-C a
    controller raises KeyboardInterrupt, prints its traceback and SIGKILLs its job a second later,
    whatever the job is writing. Started with SIGINT ignored (inherited), it waits for its job,
    which handles Ctrl-C itself; SIGTERM still reaches the job through it.

    Why a patch: submitit has no option for how its local controller treats SIGINT, and
    `submitit.local.local.start_controller` (a module function, not a documented API) is the one
    place that starts it; Hydra's submitit launcher offers no hook around it either."""
    from submitit.local import local

    start_controller = local.start_controller
    if getattr(start_controller, "ignores_ctrl_c", False):
        return

    @functools.wraps(start_controller)
    def start_ignoring_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return start_controller(*args, **kwargs)
        finally:
            signal.signal(signal.SIGINT, previous)

    start_ignoring_ctrl_c.ignores_ctrl_c = True  # type: ignore[attr-defined]
    local.start_controller = start_ignoring_ctrl_c
