"""What the Hydra entry does around `train()`: user errors as one line, results on the console."""

from __future__ import annotations

import logging
import math
import shutil
import signal
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from kernellab.artifacts import write_metrics
from kernellab.callbacks import exit_with_error
from kernellab.config import UserError
from kernellab.train import summary_lines, train

log = logging.getLogger("kernellab")


def run(cfg: DictConfig) -> float:
    """Train in Hydra's output dir; return the objective a sweeper minimises.

    In a sweep, a job that fails is recorded (metrics.json: status failed) and returns inf, so
    the other jobs go on; the sweep report then makes the multirun exit non-zero.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        result = train(cfg, run_dir)
    except UserError as error:
        if in_sweep:
            return _record_failure(run_dir, error)
        _discard_hydra_files(run_dir)
        exit_with_error(error)
    except Exception as error:
        if not in_sweep:
            raise  # a bug, not a user mistake: the traceback is the useful report
        log.exception("job %s failed", hydra_cfg.job.num)
        return _record_failure(run_dir, error)
    for line in summary_lines(result):
        log.info(line)
    if result.signal:  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
        sys.exit(128 + signal.Signals[result.signal].value)
    return result.objective


def _record_failure(run_dir: Path, error: Exception) -> float:
    message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
    log.error("error: %s", message)
    write_metrics(run_dir, {"status": "failed", "error": message, "final_loss": None})
    return math.inf


def _discard_hydra_files(run_dir: Path) -> None:
    """Undo what Hydra wrote for a refused run: its record of a refused resume, or the whole dir
    of a refused new run (when it holds nothing but Hydra's own files)."""
    hydra = HydraConfig.get()
    if hydra.output_subdir != ".hydra":  # a resume: the run's own .hydra/ stays
        shutil.rmtree(run_dir / hydra.output_subdir, ignore_errors=True)
    elif run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {
        ".hydra",
        f"{hydra.job.name}.log",
    }:
        shutil.rmtree(run_dir)
