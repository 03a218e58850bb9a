"""Hydra entry point: `python train.py [overrides]`, `python train.py -m [sweep]`. See README.md."""

import hydra
from omegaconf import DictConfig

import kernellab.config  # noqa: F401  (registers the config schema with Hydra)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from kernellab.cli import run  # the training stack: not loaded for --help or --cfg

    return run(cfg)


if __name__ == "__main__":
    main()
