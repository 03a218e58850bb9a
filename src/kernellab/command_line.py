"""`python train.py` as a Unix command: every mistake Hydra finds in the command line is one line
and exit 2; a closed stdout pipe ends quietly; a full output device or a vanished current dir is
one line.

Hydra reports its own errors (an override it can't parse, a key it can't merge, an interpolation
it can't resolve) as several lines and exit 1, or as a traceback. With `HYDRA_FULL_ERROR=1`
(documented: "a complete stack trace") it raises them instead; `run_command` sets it for the call
and turns what Hydra and OmegaConf raise into kernellab's one line. A user who sets
`HYDRA_FULL_ERROR` gets Hydra's full report, as before.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from kernellab._python_private import end_without_teardown
from kernellab.console import ConsoleHandler
from kernellab.errors import EXIT_USAGE, LIBRARY_ERRORS, describe, exit_with_error, raised_by_hydra

FULL_ERROR = "HYDRA_FULL_ERROR"
EXIT_IO = 1  # the run's output could not be written where the user sent it


def run_command(main: Callable[[], Any]) -> None:
    """Call Hydra's decorated `main` and end as a command line tool should."""
    try:
        os.getcwd()
    except FileNotFoundError:
        exit_with_error("the current directory no longer exists: cd into one that does")
    if "--help" in sys.argv or "-h" in sys.argv:  # only then: the patch's import costs ~10 ms
        from kernellab._hydra_private import help_fills_only_its_placeholders

        help_fills_only_its_placeholders()
    else:  # whatever composes a config imports what _hydra_private does
        from kernellab._hydra_private import composes_a_run_once

        composes_a_run_once()
    users_choice = FULL_ERROR in os.environ
    os.environ[FULL_ERROR] = "1"
    # Hydra's own log lines ([HYDRA] ...) to a closed pipe: dropped, not a traceback each
    logging.raiseExceptions = False
    try:
        main()
    except Exception as error:
        if users_choice:
            raise
        if isinstance(error, LIBRARY_ERRORS) or raised_by_hydra(error):
            exit_with_error(describe(error), EXIT_USAGE)
        from kernellab.lifecycle import end_broken_sweep  # loaded with any sweep already

        end_broken_sweep(error)  # a sweep that broke off: its summary, one line
        raise  # a bug, not a user mistake: the traceback is the useful report
    finally:
        if not users_choice:
            os.environ.pop(FULL_ERROR, None)
    _flush_stdout()
    end_without_teardown()


def _flush_stdout() -> None:
    """What the run printed reaches its reader; if the reader is gone (`| head`), end quietly
    with exit 0 as the run itself succeeded; if the device is full, say so in one line, exit 1."""
    try:
        sys.stdout.flush()
    except OSError as error:
        _stdout_to_devnull()
        if not isinstance(error, BrokenPipeError):
            ConsoleHandler.lost_output = ConsoleHandler.lost_output or error
    lost = ConsoleHandler.lost_output
    if lost is not None:
        exit_with_error(f"the console output was lost: {lost.strerror or lost}", EXIT_IO)


def _stdout_to_devnull() -> None:
    """Python flushes stdout once more at exit: let that write go nowhere, not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
