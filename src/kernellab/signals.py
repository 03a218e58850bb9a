"""Ctrl-C (SIGINT), SIGTERM (what SLURM sends before a kill) and SIGUSR2 (what SLURM sends before
a time limit, see kernellab.slurm) end a run cleanly.

While training, the first signal only asks the loop to stop after the current step, so the run can
flush TensorBoard and save a checkpoint; a second one interrupts at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


class StopRequest:
    """A context that turns SIGINT/SIGTERM/SIGUSR2 into `requested = True` for the loop to poll."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            self._previous = {s: signal.signal(s, self._handle) for s in HANDLED}
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.requested = True
        self.signal_name = signal.Signals(number).name
        self._restore()  # a second signal acts at once
        log.warning("%s received: stopping after this step and saving", self.signal_name)

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
