"""Hydra callbacks (registered in conf/config.yaml under `hydra.callbacks`): adapters over
kernellab.lifecycle, which does the work.

`Preflight` refuses what would fail or half-write a run or sweep before anything is created;
`SweepSummary` summarises every multirun and makes it exit non-zero when a job failed or was
interrupted (its summary files are kernellab.report's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from kernellab import lifecycle
from kernellab.errors import LIBRARY_ERRORS, UserError, describe, exit_with_error


class Preflight(Callback):
    """Refuses a bad run or sweep before Hydra creates its dir: nothing is written."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _exit_on_user_error(lifecycle.check_run, config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _exit_on_user_error(lifecycle.before_sweep, config)


class SweepSummary(Callback):
    """Writes summary.csv/.md/.png into the sweep dir and prints the best job; ends the sweep on
    SIGINT/SIGTERM with every job recorded."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        lifecycle.start_sweep(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        lifecycle.end_multirun(config)


def _exit_on_user_error(checks: Callable[[DictConfig], None], config: DictConfig) -> None:
    """Hydra turns a callback's exception into a warning and goes on: a refusal must exit here.
    What OmegaConf raises resolving the config (a missing interpolation, a loop) is the user's."""
    try:
        checks(config)
    except UserError as error:
        exit_with_error(error)
    except LIBRARY_ERRORS as error:
        exit_with_error(describe(error))
