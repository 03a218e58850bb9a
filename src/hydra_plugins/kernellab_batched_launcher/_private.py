"""Every private name and process-wide patch the batched launcher uses, in one place.

The launcher composes, starts and logs thousands of jobs in one process; Hydra's and OmegaConf's
public APIs do each of those per job at a cost (a full composition, a deep copy, a parse) that
would dominate a sweep. Each entry below says what it saves. The plugin imports nothing from
kernellab (Hydra scans plugins on its own), so this module is the plugin's twin of
`kernellab/_hydra_private.py`.

Written for hydra-core 1.3 and omegaconf 2.3: `tests/test_private_apis.py` checks the installed
versions against `WRITTEN_FOR` and fails with a clear message on other ones.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import sys
from collections.abc import Iterator
from types import CodeType
from typing import Any

import omegaconf.base
from hydra.core.utils import JobReturn
from hydra.core.utils import _flush_loggers as flush_loggers  # noqa: F401 (re-exported)
from omegaconf import DictConfig, Node, flag_override

WRITTEN_FOR = {"hydra-core": ("1.3",), "omegaconf": ("2.3",)}  # package: major.minor versions

# Why: a job is its base config (composed once per set of group choices) with its value
# overrides applied; Hydra applies them with this static method, and names the job's dir with
# this function. Without them (another Hydra) every job takes Hydra's full composition.
try:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
except ImportError:  # pragma: no cover - other Hydra versions
    ConfigLoaderImpl = None  # type: ignore[assignment,misc]
    get_overrides_dirname = None  # type: ignore[assignment]


def apply_overrides(values: list[Any], cfg: DictConfig) -> None:
    """Hydra's own application of parsed value overrides to a composed config."""
    ConfigLoaderImpl._apply_overrides_to_config(values, cfg)


def deprecation_warning(message: str, stacklevel: int = 1) -> None:
    """Hydra's warning (or error, under HYDRA_DEPRECATION_WARNINGS_AS_ERRORS) for a deprecated
    default, as `run_job` gives it for `hydra.job.chdir`."""
    from hydra._internal.deprecation_warning import deprecation_warning as warn

    warn(message=message, stacklevel=stacklevel + 1)


def return_value(ret: JobReturn) -> Any:
    """A JobReturn's value or exception as stored: the public `return_value` re-raises a failed
    job's exception, and a worker must send the exception itself."""
    return ret._return_value


def node(cfg: DictConfig, key: str) -> Node:
    """The node under `key`, unresolved (OmegaConf's public reads resolve interpolations)."""
    return cfg._get_node(key)  # type: ignore[return-value]


def node_value(leaf: Node) -> Any:
    """A leaf node's value as stored (an interpolation stays a string)."""
    return leaf._value()


def hydra_view(config: DictConfig) -> DictConfig:
    """What `HydraConfig.set_config(config)` stores: a root holding only the hydra node, whose
    parent stays `config` (so interpolations into the job's config resolve). set_config copies
    the node; this shares it (read-only, like the copy), which saves a deep copy per job."""
    view = DictConfig(content={})
    with flag_override(view, "no_deepcopy_set_nodes", True):
        view["hydra"] = config._get_node("hydra")
    view._get_node("hydra")._set_parent(config)  # type: ignore[union-attr]
    return view


@contextlib.contextmanager
def interpolations_parsed_once() -> Iterator[None]:
    """While it lasts, OmegaConf parses each interpolation string once.

    OmegaConf parses an interpolation (with ANTLR, ~1 ms) at every access, and each job resolves
    the same few strings (`hydra.sweep.subdir`, `hydra.output_subdir`, its log file's name): 3-4 ms
    a job. A parse tree depends on the string only and is only read when resolved, so the trees
    are kept (by string) for the launch; a string that fails to parse raises each time, as before.
    """
    parse = omegaconf.base.parse
    omegaconf.base.parse = functools.lru_cache(maxsize=1024)(parse)
    try:
        yield
    finally:
        omegaconf.base.parse = parse


def keep_out_of_gc() -> None:
    """Take every object that exists now out of the garbage collector's sight (`gc.freeze`,
    process-wide).

    Called where what exists lives to the end of the sweep anyway: what the app imported, each
    composed or prepared job, and what a launch leaves (Hydra keeps every JobReturn). Those are
    millions of objects (each job's configs are OmegaConf trees), which every full collection
    would scan again and again, and the one at exit once more: a 1,000-job sweep spent 4 s in
    full collections while it composed and ran its jobs, and 2 s at exit. Garbage made later is
    collected as usual; cyclic garbage not yet collected at a freeze stays (peak RSS of 1,000
    seeds: about 515 MB, was 485-500 MB).
    """
    gc.freeze()


def caller_code() -> CodeType:
    """The code object of the function that called the caller: the sweeper's validation is told
    from other callers of the config loader by it (Hydra passes no other sign)."""
    return sys._getframe(2).f_code


def reopen(handler: logging.FileHandler) -> None:
    """Open a FileHandler's stream on its (changed) `baseFilename` and `mode`, as its constructor
    does: one handler serves each job's log file in turn, instead of a handler per job."""
    handler.stream = handler._open()
