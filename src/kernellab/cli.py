"""What the Hydra entry does around training: user errors as one line, results on the console.

`run(cfg)` is the task function of every launcher: one job. `run_batch(jobs)` is its batch runner
for `hydra/launcher=batched`: a whole batch of a sweep, trained as few programs as it can.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from kernellab.artifacts import write_metrics
from kernellab.callbacks import swept_keys
from kernellab.errors import UserError, exit_with_error
from kernellab.runtime import cores_for_this_job
from kernellab.train import Job, summary_lines, train_group

log = logging.getLogger("kernellab")


def run(cfg: DictConfig) -> float:
    """Train in Hydra's output dir; return the objective a sweeper minimises.

    A single run was checked before Hydra made its dir (callbacks.Preflight). In a sweep, a job
    that fails is recorded (metrics.json: status failed) and returns inf, so the other jobs go on;
    the sweep report then makes the multirun exit non-zero.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        job = Job(cfg, run_dir, swept=swept_keys(hydra_cfg))
        (result,) = train_group([job], cores_for_this_job(hydra_cfg.launcher))
    except UserError as error:
        if in_sweep:
            return record_failure(run_dir, error)
        exit_with_error(error)
    except Exception as error:
        if not in_sweep:
            raise  # a bug, not a user mistake: the traceback is the useful report
        log.exception("job %s failed", hydra_cfg.job.num)
        return record_failure(run_dir, error)
    for line in summary_lines(result):
        log.info(line)
    if result.signal:
        # the sweep ends here: its summary says what ran, and what was interrupted (not so for a
        # submitit job, a process of its own: its sweep goes on, and may requeue it)
        if in_sweep and "SUBMITIT_EXECUTOR" not in os.environ:
            from kernellab.callbacks import finish_sweep

            finish_sweep(Path(hydra_cfg.sweep.dir))
        sys.exit(signal_exit_status(result.signal))
    return result.objective(cfg.objective)


def signal_exit_status(name: str) -> int:
    """The shell's convention: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + signal.Signals[name].value


def record_failure(run_dir: Path, error: Exception) -> float:
    """A failed sweep job: metrics.json says why; the sweeper sees inf."""
    message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
    log.error("error: %s", message)
    write_metrics(run_dir, {"status": "failed", "error": message, "final_loss": None})
    return math.inf
