"""The batched launcher's options, defined once: `BatchedLauncherConf`, their defaults and what
they do. config.py registers it as `hydra/launcher=batched`; `BatchedLauncher` forwards
`hydra.launcher`'s keys to `BatchedLauncherCore`, which builds this dataclass from them.

In a `_` module because Hydra's plugin scan re-executes the plugin's other modules: a class
defined in one would get a second identity, and a composed config typed by the first (its
launcher node) could no longer be pickled, which the fast composer and the workers rely on.
"""

from dataclasses import dataclass
from typing import Any


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
    # composes with fast_compose and the launch reuses those configs; false: Hydra's own. (With
    # workers other than 1 the pass composes nothing: each job is composed where it runs.)
    reuse_validation: bool = True
    # Worker processes (fork) a batch is shared out between before it is composed: each composes,
    # places and runs its share (for a batch runner with a Sharing, or no runner; _shares.py).
    # A number >= 1 (above the cores this process may use: clamped to them, with a warning), or
    # auto: one worker per 100 jobs of the batch (_workers.MIN_JOBS_PER_WORKER), at least 1, at
    # most those cores; so a 16-job grid runs in this process (a worker's start, ~0.3-0.5 s,
    # costs more than it saves there) and 1,000 seeds on 2 cores get 2. 1: all in this process.
    workers: Any = "auto"
