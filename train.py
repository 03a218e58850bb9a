"""Hydra entry point: `python train.py [overrides]`, `python train.py -m [sweep]`. See README.md."""

import hydra
from omegaconf import DictConfig

import kernellab.config  # noqa: F401  (registers the config schema with Hydra)
from hydra_plugins.kernellab_batched_launcher import batch_runner
from kernellab.batch_runner import run_batch
from kernellab.cli import run


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
@batch_runner(run_batch)  # hydra/launcher=batched trains a sweep's batch as few programs
def main(cfg: DictConfig) -> float:
    return run(cfg)


if __name__ == "__main__":
    main()
