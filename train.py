"""Hydra entry point: `python train.py [overrides]`, `python train.py -m [sweep]`. See README.md."""

import hydra
from omegaconf import DictConfig

import kernellab.config  # noqa: F401  (registers the config schema with Hydra)
from hydra_plugins.kernellab_batched_launcher import batch_runner
from kernellab.packing import WORKER_SHARING


def train_batch(jobs) -> None:
    """hydra/launcher=batched: a sweep's batch trained as few programs as it can."""
    from kernellab.batch_runner import run_batch  # the training stack: loaded when it trains

    run_batch(jobs)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
@batch_runner(train_batch, WORKER_SHARING)
def main(cfg: DictConfig) -> float:
    from kernellab.hydra_job import run  # the training stack: not loaded for --help or --cfg

    return run(cfg)


if __name__ == "__main__":
    from kernellab.command_line import run_command

    run_command(main)
