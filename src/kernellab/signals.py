"""Ctrl-C (SIGINT), SIGTERM (what SLURM sends before a kill) and SIGUSR2 (what SLURM sends before
a time limit, see kernellab.slurm) end a run, or a whole sweep, cleanly.

While training, the first signal only asks the loop to stop after the current step, so the run can
flush TensorBoard and save a checkpoint; a second one interrupts at once. The same signal again
within `SAME_SIGNAL_S` counts as the first: one Ctrl-C reaches a job twice when a launcher's own
process forwards it (submitit's local controller does).

Outside training, `SWEEP` holds a sweep's stop: set in the process that runs the sweep (Hydra's
callbacks install it) and in each worker process that runs its jobs (joblib's); a job that starts
after it is recorded as `not started`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)
DEFERRED = {signal.SIGINT, signal.SIGTERM}  # what a sweep's stop is asked with
SAME_SIGNAL_S = 1.0


class StopRequest:
    """A context that turns SIGINT/SIGTERM/SIGUSR2 into `requested = True` for the loop to poll.

    A stop already requested of the sweep (`SWEEP`) is this one's too: the loop stops after its
    first step, and the run is saved as interrupted.
    """

    def __init__(self) -> None:
        self.requested = SWEEP.requested
        self.signal_name: str | None = SWEEP.signal_name
        self._at = -float("inf")
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            self._previous = {s: signal.signal(s, self._handle) for s in HANDLED}
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.requested and now - self._at < SAME_SIGNAL_S:
            return  # the same signal, delivered twice
        if self.requested:  # a second signal: the previous handler acts on it at once
            self._restore()
            signal.raise_signal(number)
            return
        self.requested, self._at = True, now
        self.signal_name = signal.Signals(number).name
        if SWEEP.installed:  # this process runs a sweep's jobs: the sweep stops too
            SWEEP.note(self.signal_name)
        log.warning("%s received: stopping after this step and saving", self.signal_name)

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}


class SweepStop:
    """A process's record that its sweep was asked to stop, and the handler that records it.

    `install()`: SIGINT/SIGTERM set `requested`. The sweep's own process installs it with
    `runs_sweep=True`, and with `on_signal` when its jobs run in other processes: called on the
    first signal (it waits for them and ends the sweep); a second one, later than
    `SAME_SIGNAL_S`, exits at once.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self.installed = False
        self.runs_sweep = False
        self._at = -float("inf")

    def install(
        self, *, runs_sweep: bool = False, on_signal: Callable[[str], None] | None = None
    ) -> None:
        def handle(number: int, frame: FrameType | None) -> None:
            name = signal.Signals(number).name
            if not self.requested:
                self.note(name)
                if on_signal is not None:
                    on_signal(name)
            elif on_signal is not None and time.monotonic() - self._at > SAME_SIGNAL_S:
                log.warning("%s again: exiting without waiting", name)
                raise SystemExit(exit_status(name))

        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                signal.signal(number, handle)
            self.installed, self.runs_sweep = True, runs_sweep
            # a joblib worker starts with them blocked (kernellab._joblib_private.workers_defer_signals): one
            # that came while it started is pending, and handled here, by `handle`
            signal.pthread_sigmask(signal.SIG_UNBLOCK, DEFERRED)

    def note(self, signal_name: str) -> None:
        if not self.requested and signal_name != "SIGUSR2":  # SLURM's time limit: this job only
            self.requested, self.signal_name = True, signal_name
            self._at = time.monotonic()


SWEEP = SweepStop()


def exit_status(signal_name: str) -> int:
    """The shell's convention: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + signal.Signals[signal_name].value
