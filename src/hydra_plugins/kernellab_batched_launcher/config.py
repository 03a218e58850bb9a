"""`hydra/launcher=batched`, registered in Hydra's ConfigStore: the options are
`BatchedLauncherConf`, defined (defaults and help) in `_options.py` only."""

from hydra.core.config_store import ConfigStore

from ._options import BatchedLauncherConf

ConfigStore.instance().store(
    group="hydra/launcher",
    name="batched",
    node=BatchedLauncherConf,
    provider="kernellab_batched_launcher",
)
__all__ = ["BatchedLauncherConf"]
