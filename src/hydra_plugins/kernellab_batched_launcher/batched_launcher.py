"""`hydra/launcher=batched`: runs a sweep's jobs in this process, in batches.

See the package docstring. The machinery is in `_core`: Hydra's plugin scan skips `_` modules
(it re-executes the others, which would give their classes a second identity), and it is
imported when the launcher is made, not when Hydra scans for plugins. The options are
`hydra.launcher`'s keys, defined (defaults and help) in `_options.py`'s `BatchedLauncherConf` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hydra.plugins.launcher import Launcher

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

    from ._core import LaunchStats


class BatchedLauncher(Launcher):
    def __init__(self, **options: Any) -> None:
        from ._core import BatchedLauncherCore

        self.core = BatchedLauncherCore(**options)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.core.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        return self.core.launch(job_overrides, initial_job_idx)

    @property
    def stats(self) -> LaunchStats:
        return self.core.stats
