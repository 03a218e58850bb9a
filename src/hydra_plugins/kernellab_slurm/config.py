"""The keys `hydra/launcher=slurm_batched` adds to the `slurm` preset, registered in Hydra's
ConfigStore as `hydra/launcher_keys/slurm_batched`.

conf/hydra/launcher/slurm_batched.yaml lists this node *before* `slurm`: the slurm preset is typed
by submitit's `SlurmQueueConf`, which would refuse an unknown key merged after it, and can't be
subclassed here (Hydra's plugin scan re-executes its module, so the class it types the preset with
is another object than any this module could import). A plain node merged first keeps its keys.
"""

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

ConfigStore.instance().store(
    group="hydra/launcher_keys",
    name="slurm_batched",
    node={"tasks": MISSING},  # defaults and meaning: in slurm_batched.yaml
    provider="kernellab_slurm",
)
