"""kernellab.console: numbers at a glance, progress intervals and lines, and a console that
behaves like a Unix tool when its reader goes away or its device is full."""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import math
import os

import pytest

from kernellab import console
from kernellab.console import (
    BelowWarning,
    ConsoleHandler,
    Heartbeat,
    duration,
    number,
    numbers,
    print_interval,
)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.35254, "0.3525"),  # 4 significant digits
        (1.8e36, "1.8e+36"),
        (-1.0, "-1"),
        (123456.0, "1.235e+05"),
        (0.0, "0"),
        (-0.0, "0"),  # no `-0`
        (math.nan, "nan"),
        (None, "null"),
    ],
)
def test_a_number_has_four_significant_digits(value, shown):
    assert number(value) == shown


def test_nested_lists_keep_their_brackets():
    assert numbers([[-0.83721, 0.86539]]) == "[[-0.8372, 0.8654]]"
    assert numbers([[[1.0]], [[None]]]) == "[[[1]], [[null]]]"


@pytest.mark.parametrize(
    ("steps", "every"),
    # steps / 4 rounded down to 1, 2 or 5 times a power of ten
    [(1, 1), (7, 1), (20, 5), (30, 5), (80, 20), (500, 100), (100_000, 20_000)],
)
def test_about_four_progress_lines_a_run_at_a_round_interval(steps, every):
    assert print_interval(steps) == every
    assert 4 <= steps // every <= 10 or steps < 4


def test_durations_are_hours_minutes_seconds():
    assert duration(0) == "0:00:00"
    assert duration(59.6) == "0:01:00"
    assert duration(3 * 3600 + 2 * 60 + 5) == "3:02:05"
    assert duration(-4) == "0:00:00"


def test_info_goes_to_stdout_warnings_to_stderr():
    def record(level: int) -> logging.LogRecord:
        return logging.LogRecord("kernellab", level, __file__, 1, "x", None, None)

    below = BelowWarning()
    assert below.filter(record(logging.INFO))
    assert not below.filter(record(logging.WARNING))
    assert not below.filter(record(logging.ERROR))


def _log_through(handler: logging.Handler, lines: int) -> None:
    logger = logging.Logger("kernellab.test_console")
    logger.addHandler(handler)
    for i in range(lines):
        logger.info("line %d", i)


def test_a_closed_pipe_is_quiet_and_not_a_lost_output(monkeypatch, capsys):
    """A buffered stream, as stdout is to a pipe (unless PYTHONUNBUFFERED is set): the lines it
    could not write stay in its buffer, and must not fail the run a second time."""
    monkeypatch.setattr(ConsoleHandler, "lost_output", None)
    read, write = os.pipe()
    os.close(read)  # `python train.py | head`: head has gone
    stream = open(write, "w")  # noqa: SIM115  (closed below, its last flush failing)
    _log_through(ConsoleHandler(stream), 3)
    with contextlib.suppress(BrokenPipeError):
        stream.close()
    assert ConsoleHandler.lost_output is None
    assert "Logging error" not in capsys.readouterr().err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_device_is_noted_once_and_not_a_traceback_per_line(monkeypatch, capsys):
    monkeypatch.setattr(ConsoleHandler, "lost_output", None)
    stream = open("/dev/full", "w")  # noqa: SIM115  (closed below, its last flush failing)
    _log_through(ConsoleHandler(stream), 3)
    with contextlib.suppress(OSError):
        stream.close()
    assert isinstance(ConsoleHandler.lost_output, OSError)
    assert ConsoleHandler.lost_output.errno == errno.ENOSPC
    assert "Logging error" not in capsys.readouterr().err


def test_a_heartbeat_in_a_log_says_progress_speed_and_eta(monkeypatch):
    monkeypatch.setattr(console, "HEARTBEAT_SECONDS", 0.0)  # a line at every beat
    logged = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    log = logging.Logger("kernellab.test_console.heartbeat")
    log.addHandler(handler)
    heartbeat = Heartbeat(1, 10, log, stream=io.StringIO())  # not a terminal: log lines
    heartbeat.beat(5, "loss 0.5")
    heartbeat.beat(10, "loss 0.1")  # the last step: the run's own last lines say it
    heartbeat.close()
    (line,) = logged
    assert line.startswith("step 5/10 (50%), loss 0.5, ")
    assert " steps/s, ETA " in line
