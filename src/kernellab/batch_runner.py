"""`hydra/launcher=batched` for kernellab: a batch of sweep jobs trained as few programs as can be.

The launcher (src/hydra_plugins/kernellab_batched_launcher) composes and places every job of a
batch, then hands them here. Jobs are grouped by `batching.group_key`; each group (split to fit
the device's memory) trains as one program with `train_group`, and every job still gets its own
dir, `.hydra/`, log file, metrics, checkpoint, event file and return value. A job that can't be
batched runs alone, in this process, through the ordinary task function.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

from hydra_plugins.kernellab_batched_launcher import LAUNCH_LOG, PreparedJob
from kernellab import batching, runtime
from kernellab.callbacks import end_sweep, swept_keys
from kernellab.cli import record_failure, record_not_started
from kernellab.errors import UserError
from kernellab.signals import SWEEP
from kernellab.train import Checked, Job, check, recorded_objective, summary_lines, train_group

log = logging.getLogger("kernellab")

FILE_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # as conf/hydra/job_logging


def run_batch(jobs: Sequence[PreparedJob]) -> None:
    """Train the batch; after SIGINT/SIGTERM, record what never started and exit 130/143."""
    checked, keys = {}, {}
    for job in jobs:
        try:
            checked[job.idx] = check(job.task_cfg, job.output_dir)
        except UserError as error:  # refused: that job fails, the others go on
            _fail(job, error)
            continue
        finished = checked[job.idx].finished
        if finished is not None:  # trainer.resume=auto: a continued sweep's finished job
            job.start()
            job.finish(recorded_objective(finished, job.task_cfg.objective))
            continue
        geometry, backend = checked[job.idx].geometry, checked[job.idx].backend
        keys[job.idx] = batching.group_key(checked[job.idx].config, geometry, backend)
    ready = [job for job in jobs if not job.finished]
    groups = batching.group_jobs([keys[job.idx] for job in ready])
    if jobs:  # one line, however many jobs (the launcher listed them in its LAUNCH_LOG)
        sweep_dir = Path(str(jobs[0].config.hydra.sweep.dir))
        log.info(
            "Launching %d jobs locally in %d group(s) into %s (listed in %s)",
            len(jobs),
            len(groups),
            sweep_dir,
            sweep_dir / LAUNCH_LOG,
        )
    alone = [ready[g[0]] for g in groups if keys[ready[g[0]].idx] is None]
    if alone:
        log.info(
            "%d job(s) can't be batched (model.backend other than torch, or trainer.cuda_graph):"
            " they run one at a time",
            len(alone),
        )
    for number, indices in enumerate(groups, 1):
        if SWEEP.requested:  # a signal between groups
            _stop(jobs, SWEEP.signal_name)
        members = [ready[i] for i in indices]
        if keys[members[0].idx] is None:
            members[0].run()
            continue
        first = checked[members[0].idx]
        size = batching.max_group_size(first.geometry, first.device)
        for part in batching.split(indices, size):
            signal_name = _train([ready[i] for i in part], number, len(groups), checked)
            if signal_name:
                _stop(jobs, signal_name)


def _train(
    group: list[PreparedJob], number: int, groups: int, checked: dict[int, Checked]
) -> str | None:
    """Train one group; every job ends finished. Returns the signal that stopped it, if any.
    `checked`: each job's `check`, by job number (not repeated by train_group)."""
    for job in group:
        job.start()
    loggers = [_job_logger(job) for job in group]
    first = group[0]
    log.info(
        "group %d of %d: %d job(s) as one program (%s)",
        number,
        groups,
        len(group),
        " ".join(first.overrides) or "defaults",
    )
    try:
        cores = runtime.cores_for_this_job(first.config.hydra.launcher)
        swept = swept_keys(first.config.hydra)  # the same for every job: read once
        results = train_group(
            [
                Job(j.task_cfg, j.output_dir, lg, swept, checked[j.idx])
                for j, lg in zip(group, loggers, strict=True)
            ],
            cores,
        )
        for result, logger in zip(results, loggers, strict=True):
            for line in summary_lines(result):
                logger.info(line)
    except Exception as error:  # a bug or a refusal of the whole group: every job records it
        if not isinstance(error, UserError):
            log.exception("group %d failed", number)
        for job in group:
            if not job.finished:
                _fail(job, error)
        return None
    finally:
        _close(loggers)
    for job, result in zip(group, results, strict=True):
        job.finish(result.objective(job.task_cfg.objective))
    return next((r.signal for r in results if r.signal), None)


def _close(loggers: list[logging.Logger]) -> None:
    """Close and drop the jobs' log files before any job finishes: the end of a Hydra job flushes
    every handler alive in the process, which would be every job's (a sweep's time quadratic in
    its jobs: 1 ms a job at 1,000)."""
    for logger in loggers:
        for handler in list(logger.handlers):
            handler.close()
            logger.removeHandler(handler)


def _fail(job: PreparedJob, error: Exception) -> None:
    if not job.started:
        job.start()
    with job.activate(env=False):
        value = record_failure(job.output_dir, error)
    job.finish(value)


def _stop(jobs: Sequence[PreparedJob], signal_name: str) -> None:
    """After a signal: every job not yet started is recorded as such; the summary is written."""
    for job in jobs:
        if not job.finished:
            job.start()
            record_not_started(job.output_dir)
            job.finish(math.inf)
    end_sweep(Path(jobs[0].config.hydra.sweep.dir), signal_name)


def _job_logger(job: PreparedJob) -> logging.Logger:
    """A logger of the job's own: its lines go to its log file only (not the console, where a
    thousand jobs' progress would be noise). Not registered with `logging`: freed with the job."""
    logger = logging.Logger("kernellab")
    handler = logging.FileHandler(job.output_dir / f"{job.config.hydra.job.name}.log")
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    logger.addHandler(handler)
    return logger
