"""Every reach into Optuna's logging internals, in one place.

Written for Optuna 2.10 with colorlog 6 (`tests/test_private_apis.py` states the versions and
fails with a clear message on another one).
"""

from __future__ import annotations

import logging

WRITTEN_FOR = ("2.10",)  # optuna versions (major.minor)


def plain_logs_off_terminal() -> None:
    """Optuna 2.x logs through colorlog with colour codes even into a file or a pipe.

    colorlog leaves them out when its formatter knows the stream is not a terminal: tell it the
    stream Optuna's handler writes to (stderr). On a terminal the lines stay coloured.

    Why not a public API: Optuna's `logging.disable_default_handler()` would drop its lines, and
    it offers no option for colours; the handler it installs and its formatter's `stream` (a
    colorlog constructor argument Optuna leaves unset) are set here directly.
    """
    import optuna  # noqa: F401  (the sweeper imports it next; this sets up Optuna's handler)

    for handler in logging.getLogger("optuna").handlers:
        formatter = handler.formatter
        if isinstance(handler, logging.StreamHandler) and getattr(formatter, "stream", 0) is None:
            formatter.stream = handler.stream
