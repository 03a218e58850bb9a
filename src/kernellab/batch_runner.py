"""`hydra/launcher=batched` for kernellab: a batch of sweep jobs trained as few programs as can be;
an adapter over kernellab.lifecycle (each job's check, records and summary) around
kernellab.training.train_group.

The launcher (src/hydra_plugins/kernellab_batched_launcher) composes and places every job of a
batch, then hands them here. Jobs are grouped by `batching.group_key`; each group (split to fit
the device's memory) trains as one program with `train_group`, and every job still gets its own
dir, `.hydra/`, log file, metrics, checkpoint, event file and return value. A job that can't be
batched runs alone, in this process, through the ordinary task function.

With `hydra.launcher.workers` > 1 the launcher shares the batch out before composing it
(kernellab.packing.WORKER_SHARING: steps x pixels, likely groups together) between that many forked
worker processes, and calls `run_batch` in each with its share (`PreparedJob.worker`): it checks,
groups and trains it as above on its share of the cores; after a signal it records its share's
jobs and returns. In the launcher's process `after_workers` then fails any job a dead worker left
and, after a signal, ends the sweep.

In a SLURM task of `hydra/launcher=slurm_batched` (kernellab_slurm/batched.py) the batch is the
task's share of the sweep: after a signal the task records its share and exits with the signal's
status (SIGUSR2: kernellab.slurm requeues it), and the submitting process ends the sweep.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra_plugins.kernellab_batched_launcher import LAUNCH_LOG, PreparedJob
from kernellab import batching, console, lifecycle, runtime
from kernellab.checks import Checked
from kernellab.errors import UserError
from kernellab.signals import SWEEP, exit_status
from kernellab.training import Job, train_group

log = logging.getLogger("kernellab")

FILE_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # as conf/hydra/job_logging


def run_batch(jobs: Sequence[PreparedJob]) -> None:
    """Train the batch; after SIGINT/SIGTERM, record what never started and exit 130/143 (in a
    worker process: record its share and return; `after_workers` ends the sweep)."""
    worker = jobs[0].worker if jobs else None
    if worker is not None:
        _run_share(jobs, *worker)
        return
    in_task = lifecycle.in_submitit_job()  # a SLURM task of hydra/launcher=slurm_batched
    if in_task and not SWEEP.installed:
        SWEEP.install()  # a scancel between groups stops the task before its next group
    signal_name = _run(jobs)
    if signal_name and in_task:  # the sweep is the submitting process's: it summarises
        _record_not_started(jobs)
        sys.exit(exit_status(signal_name))  # SIGUSR2: kernellab.slurm requeues the task
    if signal_name:
        _stop(jobs, signal_name)


def _run_share(jobs: Sequence[PreparedJob], k: int, workers: int) -> None:
    """Worker k of `workers`: its share of the batch, on its share of the cores."""
    console.LIVE = False  # one live progress line per terminal: workers log theirs
    SWEEP.runs_sweep = False  # the launcher's process ends the sweep (after_workers), not a job
    cores = max(1, runtime.cores_for_this_job(jobs[0].config.hydra.launcher) // workers)
    if _run(jobs, cores, f" (worker {k + 1} of {workers})"):
        _record_not_started(jobs)


def after_workers(lost: Sequence[PreparedJob], sweep_dir: Path) -> None:
    """In the launcher's process once its workers have ended: a job a worker left (it died:
    killed, out of memory) fails, or after a signal is `not started`; after a signal the sweep
    ends here (summary, exit 130/143)."""
    for job in lost:
        if SWEEP.requested:
            _record_not_started([job])
        else:
            _fail(job, RuntimeError(job.lost or "its worker process ended before this job"))
    if SWEEP.requested:
        lifecycle.end_sweep(sweep_dir, SWEEP.signal_name or "SIGINT")


def _run(jobs: Sequence[PreparedJob], cores: int | None = None, worker: str = "") -> str | None:
    """Train these jobs; returns the signal that stopped them, if one did. `cores`: this
    process's share (default: the launcher's); `worker`: which worker this is, for log lines."""
    checked, keys = {}, {}
    for job in jobs:
        try:
            checked[job.idx] = lifecycle.check_job(job.task_cfg, job.output_dir)
        except UserError as error:  # refused: that job fails, the others go on
            _fail(job, error)
            continue
        finished = checked[job.idx].finished
        if finished is not None:  # trainer.resume=auto: a continued sweep's finished job
            job.start()
            job.finish(lifecycle.objective(finished, job.task_cfg.objective))
            continue
        geometry, backend = checked[job.idx].geometry, checked[job.idx].backend
        keys[job.idx] = batching.group_key(checked[job.idx].config, geometry, backend)
    ready = [job for job in jobs if not job.finished]
    groups = batching.group_jobs([keys[job.idx] for job in ready])
    if jobs and not worker:  # one line, however many jobs (the launcher listed them in LAUNCH_LOG)
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
            return SWEEP.signal_name
        members = [ready[i] for i in indices]
        if keys[members[0].idx] is None:
            members[0].run()
            continue
        first = checked[members[0].idx]
        size = batching.max_group_size(first.geometry, first.device)
        for part in batching.split(indices, size):
            members = [ready[i] for i in part]
            signal_name = _train(members, number, len(groups), checked, cores, worker)
            if signal_name:
                return signal_name
    return SWEEP.signal_name if SWEEP.requested else None


def _train(
    group: list[PreparedJob],
    number: int,
    groups: int,
    checked: dict[int, Checked],
    cores: int | None = None,
    worker: str = "",
) -> str | None:
    """Train one group; every job ends finished. Returns the signal that stopped it, if any.
    `checked`: each job's `check`, by job number (not repeated by train_group)."""
    for job in group:
        job.start()
    loggers = [_job_logger(job) for job in group]
    first = group[0]
    log.info(
        "group %d of %d%s: %d job(s) as one program (%s)",
        number,
        groups,
        worker,
        len(group),
        " ".join(first.overrides) or "defaults",
    )
    try:
        cores = cores or runtime.cores_for_this_job(first.config.hydra.launcher)
        swept = lifecycle.swept_keys(first.config.hydra)  # the same for every job: read once
        results = train_group(
            [
                Job(j.task_cfg, j.output_dir, lg, swept, checked[j.idx])
                for j, lg in zip(group, loggers, strict=True)
            ],
            cores,
        )
        for result, logger in zip(results, loggers, strict=True):
            lifecycle.report(result, logger)
    except Exception as error:  # a bug or a refusal of the whole group: every job records it
        if not isinstance(error, UserError | OSError):  # a bug: its traceback in the log
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
        value = lifecycle.record_failure(job.output_dir, error)
    job.finish(value)


def _stop(jobs: Sequence[PreparedJob], signal_name: str) -> None:
    """After a signal: every job not yet started is recorded as such; the summary is written."""
    _record_not_started(jobs)
    lifecycle.end_sweep(Path(jobs[0].config.hydra.sweep.dir), signal_name)


def _record_not_started(jobs: Sequence[PreparedJob]) -> None:
    for job in jobs:
        if not job.finished:
            job.start()
            lifecycle.record_not_started(job.output_dir)
            job.finish(math.inf)


def _job_logger(job: PreparedJob) -> logging.Logger:
    """A logger of the job's own: its lines go to its log file only (not the console, where a
    thousand jobs' progress would be noise). Not registered with `logging`: freed with the job."""
    logger = logging.Logger("kernellab")
    handler = logging.FileHandler(job.output_dir / f"{job.config.hydra.job.name}.log")
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    logger.addHandler(handler)
    return logger
