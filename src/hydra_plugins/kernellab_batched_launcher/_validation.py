"""Making the sweeper's validation pass the launcher's composition.

Hydra's basic sweeper calls `validate_batch_is_legal(batch)` before every launch: it composes
each job with `hydra_context.config_loader.load_sweep_config` and throws the configs away, and
then the launcher composes every job again. `ValidationSharingLoader` takes the place of
`hydra_context.config_loader` (the sweeper and the launcher share that context) while the
batched launcher runs the sweep. It is Hydra's loader, except for calls made by Hydra's
`Sweeper.validate_batch_is_legal` on the sweep's own config: those compose the job with the
launcher's fast composer, and the launch takes that composition instead of making its own. So
each job is composed once, cheaply, whatever sweeper validates this way (the basic one; Optuna
doesn't validate), and no other caller sees a difference.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from hydra.core.config_loader import ConfigLoader
from hydra.plugins.sweeper import Sweeper

from ._private import caller_code

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ._core import BatchedLauncherCore

# Hydra's own function, under any functools.wraps-style wrapper (a profiler, a test's spy)
_VALIDATION = inspect.unwrap(Sweeper.validate_batch_is_legal).__code__


class ValidationSharingLoader(ConfigLoader):
    def __init__(self, loader: ConfigLoader, core: BatchedLauncherCore) -> None:
        self.loader = loader
        self._core = core

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> Any:
        if caller_code() is _VALIDATION and master_config is self._core.config:
            return self._core.compose_for_launch(sweep_overrides)
        return self.loader.load_sweep_config(master_config, sweep_overrides)

    def load_configuration(self, *args: Any, **kwargs: Any) -> Any:
        return self.loader.load_configuration(*args, **kwargs)

    def get_search_path(self) -> Any:
        return self.loader.get_search_path()

    def get_sources(self) -> Any:
        return self.loader.get_sources()

    def list_groups(self, parent_name: str) -> Any:
        return self.loader.list_groups(parent_name)

    def get_group_options(self, *args: Any, **kwargs: Any) -> Any:
        return self.loader.get_group_options(*args, **kwargs)

    def compute_defaults_list(self, *args: Any, **kwargs: Any) -> Any:
        return self.loader.compute_defaults_list(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # anything else ConfigLoaderImpl has
        return getattr(self.loader, name)


def unwrap(loader: ConfigLoader) -> ConfigLoader:
    while isinstance(loader, ValidationSharingLoader):
        loader = loader.loader
    return loader
