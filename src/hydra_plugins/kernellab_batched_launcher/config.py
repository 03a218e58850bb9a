"""`hydra/launcher=batched` and `hydra/sweeper=batched`, registered in Hydra's ConfigStore."""

from dataclasses import dataclass, field
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


@dataclass
class BatchedSweeperConf:
    """Hydra's basic sweeper; the batch validation is done by the launcher's composition."""

    _target_: str = "hydra_plugins.kernellab_batched_launcher.batched_sweeper.BatchedSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = field(default=None)


ConfigStore.instance().store(
    group="hydra/launcher",
    name="batched",
    node=BatchedLauncherConf,
    provider="kernellab_batched_launcher",
)
ConfigStore.instance().store(
    group="hydra/sweeper",
    name="batched",
    node=BatchedSweeperConf,
    provider="kernellab_batched_launcher",
)

__all__: list[Any] = ["BatchedLauncherConf", "BatchedSweeperConf"]
