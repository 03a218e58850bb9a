"""What the Hydra entry does around training: user errors as one line, results on the console.

`run(cfg)` is the task function of every launcher: one job. `run_batch(jobs)` is its batch runner
for `hydra/launcher=batched`: a whole batch of a sweep, trained as few programs as it can.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from kernellab.artifacts import write_metrics
from kernellab.callbacks import end_sweep, swept_keys
from kernellab.errors import UserError, exit_with_error
from kernellab.runtime import cores_for_this_job
from kernellab.signals import SWEEP, exit_status
from kernellab.train import Job, check, recorded_objective, summary_lines, train_group

log = logging.getLogger("kernellab")


def run(cfg: DictConfig) -> float:
    """Train in Hydra's output dir; return the objective a sweeper minimises.

    A single run was checked before Hydra made its dir (callbacks.Preflight). In a sweep, a job
    that fails is recorded (metrics.json: status failed) and returns inf, so the other jobs go on;
    the sweep report then makes the multirun exit non-zero. Once the sweep is asked to stop
    (signals.SWEEP), a job that hasn't started is recorded as `not started`.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    if in_sweep and not SWEEP.installed and not in_submitit_job():
        SWEEP.install()  # a worker process of a pool launcher (joblib): it runs many jobs
    if in_sweep and SWEEP.requested:
        return _not_started(hydra_cfg, run_dir)
    try:
        checked = check(cfg, run_dir)  # once: train_group takes it
        if checked.finished is not None:  # trainer.resume=auto: a continued sweep's finished job
            log.info("%s: already %s", run_dir, checked.finished["status"])
            return recorded_objective(checked.finished, cfg.objective)
        if in_sweep and SWEEP.requested:  # signalled meanwhile: the sweep's process may not wait
            return _not_started(hydra_cfg, run_dir)  # for a job that holds no lock yet
        job = Job(cfg, run_dir, swept=swept_keys(hydra_cfg), checked=checked)
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
    if result.signal and (not in_sweep or in_submitit_job()):
        # a submitit job is a process of its own: its sweep goes on, and may requeue it
        sys.exit(exit_status(result.signal))
    if result.signal and SWEEP.runs_sweep:  # the sweep's own process: the sweep ends here
        end_sweep(Path(hydra_cfg.sweep.dir), result.signal)
    return result.objective(cfg.objective)


def _not_started(hydra_cfg: DictConfig, run_dir: Path) -> float:
    """A job the sweep's stop came before: recorded; in the sweep's own process, the sweep ends."""
    record_not_started(run_dir)
    if SWEEP.runs_sweep:
        end_sweep(Path(hydra_cfg.sweep.dir), SWEEP.signal_name)
    return math.inf


def in_submitit_job() -> bool:
    return "SUBMITIT_EXECUTOR" in os.environ


def record_not_started(run_dir: Path) -> None:
    write_metrics(run_dir, {"status": "not started", "final_loss": None})


def record_failure(run_dir: Path, error: Exception) -> float:
    """A failed sweep job: metrics.json says why; the sweeper sees inf."""
    message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
    log.error("error: %s", message)
    write_metrics(run_dir, {"status": "failed", "error": message, "final_loss": None})
    return math.inf
