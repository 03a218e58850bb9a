"""What a person sees in the terminal: numbers at a glance, progress with an ETA, errors on stderr."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from typing import Any, TextIO

HEARTBEAT_SECONDS = 10.0  # a progress line this often in logs and files
LIVE_SECONDS = 0.5  # a terminal's live line is redrawn this often
LIVE = True  # False: no live line even on a terminal (a worker process among several)


def number(value: float | None) -> str:
    """4 significant digits whatever the size: `0.3525`, `1.8e+36`, `-1`, `nan`, `null`."""
    if value is None:
        return "null"
    return f"{value:.4g}" if value != 0 else "0"  # no `-0`


def numbers(value: Any) -> str:
    """A nested list of numbers as `[[-0.8372, 0.8654]]`."""
    if isinstance(value, list):
        return "[" + ", ".join(numbers(v) for v in value) + "]"
    return number(value)


def print_interval(steps: int) -> int:
    """About 4 progress lines a run, at a round interval: 20 -> 5, 500 -> 100, 100000 -> 20000."""
    raw = max(1.0, steps / 4)
    magnitude = 10 ** math.floor(math.log10(raw))
    return int(max(m * magnitude for m in (1, 2, 5) if m * magnitude <= raw))


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class BelowWarning(logging.Filter):
    """Lets INFO through to stdout; warnings and errors go to stderr (conf/hydra/job_logging)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


class ConsoleHandler(logging.StreamHandler):
    """A stream handler for stdout and stderr that behaves like a Unix tool when its reader goes
    away (`python train.py | head`: the rest is dropped quietly) or its device is full (`> /dev/
    full`: noted in `lost_output`, said once at exit by kernellab.command_line), instead of a
    `--- Logging error ---` traceback per line."""

    lost_output: OSError | None = None  # the first write error other than a closed pipe

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
            return
        if not isinstance(error, BrokenPipeError) and ConsoleHandler.lost_output is None:
            ConsoleHandler.lost_output = error
        # not setStream: it flushes the old stream, whose unwritten lines would fail again
        self.stream = open(os.devnull, "w")  # noqa: SIM115  (lives as long as the handler)


class Heartbeat:
    """Where a long run or group stands: steps done, loss, speed, ETA.

    On a terminal a live line on stderr, redrawn in place; elsewhere (a log file, a pipe) a
    log line every HEARTBEAT_SECONDS. Silent for work that ends within that time.
    """

    def __init__(self, first: int, last: int, log: logging.Logger, stream: TextIO | None = None):
        self.first, self.last, self.log = first, last, log
        self.stream = stream if stream is not None else sys.stderr
        self.live = LIVE and self.stream.isatty()
        self.start = time.perf_counter()
        self.next_beat = self.start + (LIVE_SECONDS if self.live else HEARTBEAT_SECONDS)
        self.drawn = False

    def beat(self, step: int, what: str) -> None:
        """`what`: the current state in words (`loss 0.35`, `16 jobs, best loss 0.01`)."""
        now = time.perf_counter()
        if now < self.next_beat or step >= self.last:
            return
        done = step - self.first + 1
        rate = done / (now - self.start)
        eta = (self.last - step) / rate if rate > 0 else math.inf
        line = (
            f"step {step}/{self.last} ({100 * step / self.last:.0f}%), {what}, "
            f"{rate:,.0f} steps/s, ETA {duration(eta)}"
        )
        if self.live:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
            self.drawn = True
            self.next_beat = now + LIVE_SECONDS
        else:
            self.log.info(line)
            self.next_beat = now + HEARTBEAT_SECONDS

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
