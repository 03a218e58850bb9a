"""What the Hydra entry does around `train()`: user errors as one line, results on the console."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from kernellab.config import ConfigError
from kernellab.train import summary_lines, train

log = logging.getLogger("kernellab")

EXIT_USAGE = 2


def run(cfg: DictConfig) -> float:
    """Train in Hydra's output dir; return the objective a sweeper minimises."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        result = train(cfg, run_dir)
    except ConfigError as error:
        _discard_if_fresh(run_dir)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    for line in summary_lines(result):
        log.info(line)
    return result.objective


def _discard_if_fresh(run_dir: Path) -> None:
    """Remove the dir Hydra made for a refused run, if it holds nothing but Hydra's own files."""
    hydra_files = {".hydra", f"{HydraConfig.get().job.name}.log"}
    if {p.name for p in run_dir.iterdir()} <= hydra_files:
        shutil.rmtree(run_dir)
