"""User mistakes and exit statuses: one line on stderr, never a traceback.

Every module raises these; only the entry points (the CLI, Hydra callbacks, the report command)
turn them into an exit.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from omegaconf import DictConfig, ListConfig, OmegaConf

EXIT_USAGE = 2  # a user mistake: bad config value, unusable path, refused resume
EXIT_JOBS_FAILED = 1  # a multirun in which some job failed, went missing or was interrupted


class UserError(Exception):
    """A mistake the user can fix: reported as one line, exit status 2, no traceback."""


class ConfigError(UserError, ValueError):
    """A user's config value is invalid: one line naming the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"{key}={show(value)}: {allowed}")
        self.key = key


def require(ok: Any, key: str, value: Any, allowed: str) -> None:
    """ConfigError(key, value, allowed) unless `ok`."""
    if not ok:
        raise ConfigError(key, value, allowed)


def exit_with_error(error: UserError | str, status: int = EXIT_USAGE) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(status)


def show(value: Any) -> str:
    """A value as the user would type it on the command line: `true`, `[1,2]`, `0.01`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value)
    if value is None:
        return "null"
    return str(value).replace(" ", "") if isinstance(value, list | tuple) else str(value)
