"""An Optuna search's own settings (`hydra.sweeper.*`), checked before the study starts: its
storage opened with Optuna's API, its direction, sampler and failure rate. One line each, from
kernellab.lifecycle's sweep checks; nothing is written, and a database file that isn't there is
not created (the sweeper creates it once the sweep starts).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from kernellab.errors import ConfigError, require

DIRECTIONS = ("minimize", "maximize")  # kernellab's runs return one objective: one direction


def is_optuna(sweeper: Mapping[str, Any]) -> bool:
    return "optuna" in str(sweeper.get("_target_", "")).lower()


def check_optuna(sweeper: Any) -> None:
    """Refuse a bad direction, failure rate, sampler or storage of Optuna's sweeper."""
    direction = sweeper.get("direction")
    if OmegaConf.is_list(direction) and len(direction) == 1:
        direction = direction[0]
    require(
        str(getattr(direction, "name", direction)) in DIRECTIONS,
        "hydra.sweeper.direction",
        sweeper.get("direction"),
        "must be minimize or maximize (a run returns one objective)",
    )
    rate = sweeper.get("max_failure_rate")
    require(
        rate is None
        or (isinstance(rate, int | float) and not isinstance(rate, bool) and 0 <= rate <= 1),
        "hydra.sweeper.max_failure_rate",
        rate,
        "must be a number in [0, 1]",
    )
    _check_sampler(sweeper.get("sampler"))
    _check_storage(sweeper.get("storage"))


def _check_sampler(sampler: Any) -> None:
    if sampler is None:
        return
    from hydra.utils import instantiate

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning for some samplers
            instantiate(sampler)
    except Exception as error:
        target = sampler.get("_target_") if OmegaConf.is_dict(sampler) else sampler
        raise ConfigError("hydra.sweeper.sampler", target, f"fails: {_one_line(error)}") from None


def _check_storage(storage: Any) -> None:
    """A database URL Optuna opens (sqlite:///edge.db, postgresql://..., redis://...), or null.

    An SQLite file that exists is opened (it must be a database, and one this Optuna reads); one
    that doesn't need only a writable directory: opening it would create it."""
    if storage is None:
        return
    key = "hydra.sweeper.storage"
    require(
        isinstance(storage, str) and storage.strip(),
        key,
        storage,
        "must be a database URL, e.g. sqlite:///edge.db, or null (the study in memory only)",
    )
    import optuna

    if storage.startswith("redis"):
        _open(lambda: optuna.storages.RedisStorage(storage), storage)
        return
    from sqlalchemy.engine.url import make_url

    try:
        url = make_url(storage)
    except Exception as error:
        raise ConfigError(
            key, storage, f"is not a database URL ({_one_line(error)}): e.g. sqlite:///edge.db"
        ) from None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database)
        if not path.exists():
            folder = path.parent
            require(folder.is_dir(), key, storage, f"its directory {folder} does not exist")
            try:  # as SQLite will create it (os.access says yes to root, even in /proc)
                tempfile.TemporaryFile(dir=folder).close()
            except OSError as error:
                raise ConfigError(
                    key, storage, f"the database can't be created in {folder}: {error.strerror}"
                ) from None
            return
        require(path.is_file(), key, storage, f"{path} is not a file")
    _open(lambda: optuna.storages.RDBStorage(storage), storage)


def _open(make: Any, storage: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            storage_object = make()
    except Exception as error:
        raise ConfigError(
            "hydra.sweeper.storage", storage, f"Optuna can't open it: {_one_line(error)}"
        ) from None
    engine = getattr(storage_object, "engine", None)
    if engine is not None:
        engine.dispose()  # the sweeper opens its own


def _one_line(error: Exception) -> str:
    """An exception as one line: SQLAlchemy's `(Background on this error at: ...)` left out."""
    text = str(error).split("\n(Background on this error", 1)[0]
    return f"{type(error).__name__}: {' '.join(text.split()) or 'no message'}"
