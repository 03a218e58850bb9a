"""Hydra's task function: one job of any launcher (`python train.py`, or a sweep's job), an adapter
over kernellab.lifecycle around kernellab.training.

User errors become one line; results go to the console; in a sweep a failed job is recorded and
returns inf, so the other jobs go on. (`hydra/launcher=batched` hands whole batches to
kernellab.batch_runner instead.)
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from kernellab import lifecycle
from kernellab.errors import EXIT_JOBS_FAILED, UserError, exit_with_error
from kernellab.runtime import cores_for_this_job
from kernellab.signals import SWEEP, exit_status
from kernellab.training import Job, train_group

log = logging.getLogger("kernellab")


def run(cfg: DictConfig) -> float:
    """Train in Hydra's output dir; return the objective a sweeper minimises.

    A single run was checked before Hydra made its dir (callbacks.Preflight). In a sweep, a job
    that fails is recorded (metrics.json: status failed) and returns inf, so the other jobs go on;
    the sweep summary then makes the multirun exit non-zero. Once the sweep is asked to stop
    (signals.SWEEP), a job that hasn't started is recorded as `not started`.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    if in_sweep and not SWEEP.installed and not lifecycle.in_submitit_job():
        SWEEP.install()  # a worker process of a pool launcher (joblib): it runs many jobs
    if in_sweep and SWEEP.requested:
        return _not_started(hydra_cfg, run_dir)
    try:
        checked = lifecycle.check_job(cfg, run_dir)  # once: train_group takes it
        if checked.finished is not None:  # trainer.resume=auto: a continued sweep's finished job
            log.info("%s: already %s", run_dir, checked.finished["status"])
            return lifecycle.objective(checked.finished, cfg.objective)
        if in_sweep and SWEEP.requested:  # signalled meanwhile: the sweep's process may not wait
            return _not_started(hydra_cfg, run_dir)  # for a job that holds no lock yet
        job = Job(cfg, run_dir, swept=lifecycle.swept_keys(hydra_cfg), checked=checked)
        (result,) = train_group([job], cores_for_this_job(hydra_cfg.launcher))
    except UserError as error:
        if in_sweep:
            return lifecycle.record_failure(run_dir, error)
        exit_with_error(error)
    except OSError as error:  # the disk or a vanished dir, not the code: one line
        if not in_sweep:
            exit_with_error(f"the run failed: {lifecycle.failure_line(error)}", EXIT_JOBS_FAILED)
        return lifecycle.record_failure(run_dir, error)
    except Exception as error:
        if not in_sweep:
            raise  # a bug, not a user mistake: the traceback is the useful report
        log.exception("job %s failed", hydra_cfg.job.num)
        return lifecycle.record_failure(run_dir, error)
    lifecycle.report(result)
    if result.signal and (not in_sweep or lifecycle.in_submitit_job()):
        # a submitit job is a process of its own: its sweep goes on, and may requeue it
        sys.exit(exit_status(result.signal))
    if result.signal and SWEEP.runs_sweep:  # the sweep's own process: the sweep ends here
        lifecycle.end_sweep(Path(hydra_cfg.sweep.dir), result.signal)
    return result.objective(cfg.objective)


def _not_started(hydra_cfg: DictConfig, run_dir: Path) -> float:
    """A job the sweep's stop came before: recorded; in the sweep's own process, the sweep ends."""
    lifecycle.record_not_started(run_dir)
    if SWEEP.runs_sweep:
        lifecycle.end_sweep(Path(hydra_cfg.sweep.dir), SWEEP.signal_name)
    return math.inf
