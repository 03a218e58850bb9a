"""`hydra/launcher=batched`, registered in Hydra's ConfigStore."""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.kernellab_batched_launcher.batched_launcher.BatchedLauncher"
    # Hand each batch to the task function's batch runner when it has one (see batch_runner);
    # false: always run the jobs one by one.
    batch_runner: bool = True
    # Compose each job from a per-config-group-choice base plus its value overrides; false:
    # Hydra's full composition (load_sweep_config) for every job.
    fast_compose: bool = True
    # Re-point the job logging's file handlers at each job's file; false: configure logging
    # from scratch for every job, as Hydra's basic launcher does.
    reuse_logging: bool = True
    # The sweeper's validation pass (the basic sweeper composes every job before a launch)
    # composes with fast_compose and the launch reuses those configs; false: Hydra's own.
    reuse_validation: bool = True
    # Worker processes a batch is split over after composition (fork): a number, or auto (one per
    # 100 jobs, at most the cores this process may use; see _workers.py). 1: all in this process.
    workers: Any = "auto"


ConfigStore.instance().store(
    group="hydra/launcher",
    name="batched",
    node=BatchedLauncherConf,
    provider="kernellab_batched_launcher",
)
__all__ = ["BatchedLauncherConf"]
