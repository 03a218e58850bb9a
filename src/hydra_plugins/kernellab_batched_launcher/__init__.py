"""kernellab's batched Hydra launcher: `hydra/launcher=batched`.

Jobs run in this process, or shared out between forked worker processes
(`hydra.launcher.workers`). A launch prepares its batch first (`PreparedJob`: composed config,
number, output dir), then hands it to the task function's batch runner, if it has one
(`batch_runner` decorator, attribute `hydra_batch_runner`), or runs the jobs one by one with
the same per-job plumbing, which reproduces Hydra's `run_job`. With workers, each worker prepares
and runs its share (`_shares`). Modules: `_core` (the launch), `_jobs` (a prepared job),
`_compose` (composition), `_shares` and `_workers` (worker processes), `_logging`, `_validation`,
`_private` (every private Hydra/OmegaConf use).

Hydra imports every module here when it scans for plugins, in every app; the machinery is
imported on first use, so that scan stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._core import (
        BATCH_RUNNER_ATTR,
        LAUNCH_LOG,
        BatchedLauncherCore,
        BatchRunner,
        LaunchStats,
        PreparedJob,
        Sharing,
        batch_runner,
    )
    from ._workers import gpu_assignment, result_of, run_in_workers, split, visible_gpus

__all__ = [
    "BATCH_RUNNER_ATTR",
    "LAUNCH_LOG",
    "BatchRunner",
    "BatchedLauncherCore",
    "LaunchStats",
    "PreparedJob",
    "Sharing",
    "batch_runner",
    "gpu_assignment",
    "result_of",
    "run_in_workers",
    "split",
    "visible_gpus",
]
_WORKERS = {"gpu_assignment", "result_of", "run_in_workers", "split", "visible_gpus"}


def __getattr__(name: str) -> Any:
    if name in _WORKERS:
        from . import _workers

        return getattr(_workers, name)
    if name in __all__:
        from . import _core

        return getattr(_core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
