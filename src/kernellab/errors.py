"""User mistakes and exit statuses: one line on stderr, never a traceback.

Every module raises these; only the entry points (the CLI, Hydra callbacks, the report command)
turn them into an exit.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

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
    if isinstance(value, str) and _reads_as_other_type(value):
        return f"'{value}'"  # the quoted string the user typed, not the bool or number it reads as
    return str(value).replace(" ", "") if isinstance(value, list | tuple) else str(value)


def _reads_as_other_type(text: str) -> bool:
    """Whether Hydra's grammar would read `text`, unquoted, as a bool, null or number."""
    if text.lower() in ("true", "false", "null"):
        return True
    try:
        float(text.replace("_", ""))
    except ValueError:
        return False
    return True


# What Hydra and OmegaConf raise about a user's command line or config: the user's mistakes
LIBRARY_ERRORS = (HydraException, OmegaConfBaseException)
QUOTING = (
    "quote a value holding spaces, ',', quotes or non-ASCII letters: 'task.image=\"my photo.jpg\"'"
)


def raised_by_hydra(error: BaseException) -> bool:
    """Whether the innermost frame of `error` is Hydra's own code: composing the defaults list
    raises plain ValueErrors (`optim=null`) about what the user wrote."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("hydra.")


def describe(error: BaseException) -> str:
    """One line: what Hydra or OmegaConf said, and its cause's first line."""
    if isinstance(error, OverrideParseException):
        reason = _first_line(error)
        hint = f"; {QUOTING}" if "LexerNoViableAlt" in reason else ""
        return f"{error.override}: Hydra's override grammar can't parse it ({reason}){hint}"
    text = _first_line(error)
    parts = [text.removeprefix("Error merging override ").rstrip(".")]
    cause = error.__cause__ or error.__context__
    if cause is not None and _first_line(cause) not in text:
        parts.append(_first_line(cause))
    key = _full_key(error) or (_full_key(cause) if cause is not None else None)
    if key and key not in " ".join(parts):
        parts.insert(0, str(key))
    if text.startswith("Could not override '"):  # Hydra: a key not in the (struct) config
        parts.append("not a config key (see `python train.py --cfg job`)")
    return ": ".join(parts)


def _full_key(error: BaseException) -> str | None:
    """The config key OmegaConf names: its attribute, or its message's `full_key:` line."""
    if getattr(error, "full_key", None):
        return str(error.full_key)
    lines = [line.strip() for line in str(error).splitlines()]
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("full_key:")), None
    )


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
