"""Pointing the job's logging at each job's log file without re-configuring logging per job.

Hydra's `run_job` calls `configure_log(hydra.job_logging)` for every job: a full
`logging.config.dictConfig` (through Hydra's target-policy checks) that tears down and rebuilds
every handler, only because the file handler's `filename` (`${hydra.runtime.output_dir}/...`)
differs from job to job. `JobLogging.switch(config)` does that full configuration for the first
job, and for the next jobs, when their resolved `job_logging` equals the configured one except
for `logging.FileHandler` file names and nobody has touched the configured loggers and handlers
since, re-points those file handlers at the new job's files instead. Anything else falls back to
`configure_log`, which is therefore never wrong, only slower.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from hydra.core.utils import configure_log
from omegaconf import DictConfig, OmegaConf

from ._private import reopen


class _Discard:
    """Where a parked file handler writes: between jobs, log lines reach no job's file."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


_DISCARD = _Discard()
_STREAMS = {"ext://sys.stdout": "stdout", "ext://sys.stderr": "stderr"}


class JobLogging:
    def __init__(self, reuse: bool = True) -> None:
        self.reuse = reuse
        self.full_configures = 0
        self._key: Any = None  # the configured job_logging without file names, and verbose
        self._files: dict[str, logging.FileHandler] = {}  # handler name -> the live handler
        self._fingerprint: Any = None
        self._opened: set[str] = set()  # files this launch has opened (mode "w" truncates once)
        self._parked = False
        self._resolved_by_job: dict[int, tuple[DictConfig, Any]] = {}

    def switch(self, config: DictConfig, unresolved: Any = None) -> None:
        """Make the job logging of `config` (HydraConfig set to it) the active one.

        `unresolved`: `hydra.job_logging` as a container with its interpolations, if the caller
        has it at hand (then only its interpolations are resolved, not every node)."""
        log_config, verbose = config.hydra.job_logging, config.hydra.verbose
        if not self.reuse or log_config is None:
            self._configure(log_config, verbose)
            return
        resolved = self._resolved(config, unresolved)
        key, files = _split_file_names(resolved, verbose)
        if (
            key is not None
            and key == self._key
            and set(files) == set(self._files)
            and self._fingerprint == _fingerprint(resolved, verbose)
        ):
            for name, path in files.items():
                handler = self._files[name]
                if self._parked or handler.baseFilename != path:
                    self._open(handler, path)
            self._parked = False
            return
        self._configure(log_config, verbose)
        if key is None or resolved.get("root") is None:
            return
        handlers = getattr(logging, "_handlers", {})
        live = {name: handlers.get(name) for name in files}
        if all(type(h) is logging.FileHandler for h in live.values()) and all(
            live[name].baseFilename == path for name, path in files.items()
        ):
            self._key, self._files = key, live  # type: ignore[assignment]
            self._fingerprint = _fingerprint(resolved, verbose)
            self._opened.update(files.values())

    def _resolved(self, config: DictConfig, unresolved: Any) -> Any:
        """The job's job_logging, resolved once per job (a job is switched to at its start and
        its end; its hydra node is read-only)."""
        cached = self._resolved_by_job.get(id(config))
        if cached is None or cached[0] is not config:
            node = config.hydra.job_logging
            if unresolved is None:
                resolved = OmegaConf.to_container(node, resolve=True)
            else:
                resolved = _interpolations_resolved(unresolved, node)
            cached = (config, resolved)
            self._resolved_by_job[id(config)] = cached
        return cached[1]

    def park(self) -> None:
        """Close the job's files; until the next switch, file handlers write nowhere."""
        if self._key is None:
            return
        for handler in self._files.values():
            handler.acquire()
            try:
                _close_stream(handler)
                handler.stream = _DISCARD  # type: ignore[assignment]
            finally:
                handler.release()
        self._parked = True

    def reset(self, log_config: DictConfig | None, verbose: Any) -> None:
        """Configure `log_config` (Hydra's own logging, between launches) and forget the job's."""
        self._configure(log_config, verbose)
        self._opened.clear()
        self._resolved_by_job.clear()

    def _configure(self, log_config: DictConfig | None, verbose: Any) -> None:
        configure_log(log_config, verbose)
        self.full_configures += 1
        self._key, self._files, self._fingerprint, self._parked = None, {}, None, False

    def _open(self, handler: logging.FileHandler, path: str) -> None:
        # first time: the configured mode, as a fresh FileHandler; again: append
        mode = handler.mode if path not in self._opened else "a"
        handler.acquire()
        try:
            _close_stream(handler)
            handler.stream = None  # type: ignore[assignment]
            handler.baseFilename = path
            configured_mode, handler.mode = handler.mode, mode
            try:
                reopen(handler)
            finally:
                handler.mode = configured_mode
        finally:
            handler.release()
        self._opened.add(path)


def _interpolations_resolved(raw: Any, node: Any, path: tuple = ()) -> Any:
    """`OmegaConf.to_container(node, resolve=True)`, given `raw`, its container with interpolations
    kept: a copy of `raw` whose strings holding an interpolation are resolved by OmegaConf. A job's
    logging config has one or two (its file name), and resolving every node costs ~1 ms a job."""
    if isinstance(raw, dict):
        return {k: _interpolations_resolved(v, node, (*path, k)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_interpolations_resolved(v, node, (*path, i)) for i, v in enumerate(raw)]
    if not (isinstance(raw, str) and "${" in raw):
        return raw
    value = node
    for key in path:
        value = value[key]
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _close_stream(handler: logging.FileHandler) -> None:
    """Flush and close the file a handler writes (the caller holds its lock)."""
    if handler.stream is not None:
        handler.flush()
        handler.stream.close()


def _split_file_names(conf: Any, verbose: Any) -> tuple[Any, dict[str, str]]:
    """(conf without plain FileHandler file names, {handler name: absolute file name}).

    The key is None when the configuration can't be kept across jobs exactly: dictConfig would
    disable loggers created in between (`disable_existing_loggers`, true by default), a file
    handler is delayed, or the dict has an unexpected shape.
    """
    if not isinstance(conf, dict) or conf.get("disable_existing_loggers", True):
        return None, {}
    if conf.get("incremental"):
        return None, {}
    handlers = conf.get("handlers") or {}
    key_handlers: dict[str, Any] = {}
    files: dict[str, str] = {}
    for name, spec in handlers.items():
        if not isinstance(spec, dict):
            return None, {}
        if spec.get("class") == "logging.FileHandler" and "filename" in spec:
            if spec.get("delay"):
                return None, {}
            files[name] = os.path.abspath(spec["filename"])
            spec = {k: v for k, v in spec.items() if k != "filename"}
        key_handlers[name] = spec
    key = dict(conf, handlers=key_handlers)
    verbose = list(verbose) if OmegaConf.is_list(verbose) else verbose
    return (key, verbose), files


def _fingerprint(conf: dict[str, Any], verbose: Any) -> Any:
    """The live state configure_log set up for `conf` and `verbose` (loggers set to DEBUG):
    a change means someone re-configured logging since."""
    verbose_names = [verbose] if isinstance(verbose, str) else []
    if OmegaConf.is_list(verbose) or isinstance(verbose, list):
        verbose_names = list(verbose)
    names = [None, *(conf.get("loggers") or {}), *verbose_names]
    loggers = []
    for name in names:
        logger = logging.getLogger(name)
        loggers.append(
            (
                name,
                logger.level,
                logger.propagate,
                logger.disabled,
                tuple(id(h) for h in logger.handlers),
                tuple(id(f) for f in logger.filters),
            )
        )
    live = getattr(logging, "_handlers", {})
    handlers = []
    for name, spec in (conf.get("handlers") or {}).items():
        handler = live.get(name)
        if handler is None:
            return object()  # never equal
        stream = _STREAMS.get(spec.get("stream")) if isinstance(spec, dict) else None
        if stream is not None and handler.stream is not getattr(sys, stream):
            return object()  # e.g. sys.stdout replaced since: re-resolve it as dictConfig would
        handlers.append(
            (
                name,
                id(handler),
                handler.level,
                id(handler.formatter),
                tuple(id(f) for f in handler.filters),
            )
        )
    return loggers, handlers
