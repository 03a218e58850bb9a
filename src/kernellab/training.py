"""Training runs, read top to bottom: check, lock, build, fit, save, clean up.

`train(cfg, run_dir)` trains one run; `train_group(jobs)` trains several runs whose tensor programs
have the same shape (see batching.group_key) as one program. A single run is a group of one, so
divergence, signals, logging, checkpoints and resume have one implementation. Both are pure of
Hydra's runtime: tests and notebooks call them directly; the Hydra job around them is
kernellab.hydra_job (and kernellab.batch_runner for `hydra/launcher=batched`).

Each phase is a module of its own: kernellab.checks (what a run is refused for), kernellab.build
(task, model, optimizer), kernellab.loop (the step and the loop), kernellab.run_log (what the run
logs at its start), kernellab.results (metrics.json and the checkpoint).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from omegaconf import DictConfig

from kernellab import build, run_log, runtime
from kernellab.checkpoint import CHECKPOINT_FILE, Checkpoint
from kernellab.checks import Checked, check, require_cuda_for_graphs
from kernellab.console import Heartbeat
from kernellab.errors import ConfigError
from kernellab.eventfile import remove_events, truncate_after
from kernellab.loop import CudaGraphStep, Progress, Schedule, fit, make_step, share_storage
from kernellab.paths import AUTO_RESUME
from kernellab.resolved import AnyConfig
from kernellab.results import TrainResult, checkpoint_of, finish
from kernellab.rundir import RunLock, atomic_write_all, ensure_no_run
from kernellab.signals import StopRequest
from kernellab.tracking import log_snapshots
from kernellab.validation import Geometry

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One run to train: its config, its dir, and the logger its progress lines go to."""

    cfg: AnyConfig
    run_dir: Path
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("kernellab"))
    swept: tuple[str, ...] = ()  # the config keys its sweep varies (HParams marks them)
    checked: Checked | None = None  # what `check(cfg)` gave, if the caller has checked it already


def train(cfg: DictConfig, run_dir: Path, cores: int | None = None) -> TrainResult:
    """Train one run in `run_dir`: metrics.json, checkpoint.pt and TensorBoard events there.

    `cores`: the CPU cores this run may use (`trainer.num_threads=auto`); default all it may run on.
    A user mistake raises UserError before anything is written.
    """
    return train_group([Job(cfg, Path(run_dir))], cores)[0]


def train_group(jobs: list[Job], cores: int | None = None) -> list[TrainResult]:
    """Train jobs that share one tensor program together: one step trains them all.

    Phases: check every job and what it resumes; build each job's task and model from its own seed
    (exactly as a single run does); fit; leave each job's results in its dir.
    """
    checked = [job.checked or check(job.cfg, job.run_dir) for job in jobs]
    # from here on each job reads its config resolved to plain Python (the values check read)
    jobs = [replace(job, cfg=found.config) for job, found in zip(jobs, checked, strict=True)]
    for job, found in zip(jobs, checked, strict=True):
        if found.finished is not None:
            raise ConfigError(
                "trainer.resume",
                AUTO_RESUME,
                f"{job.run_dir} holds a finished run ({found.finished['status']}): nothing to do",
            )
    geometries = [c.geometry for c in checked]
    resumed = [c.resumed for c in checked]
    device = checked[0].device
    if jobs[0].cfg.trainer.device == "auto":
        log.info("device: %s (trainer.device=auto)", device)
    locks = []
    try:
        for job, state in zip(jobs, resumed, strict=True):
            locks.append(RunLock(job.run_dir))  # makes the dir; refuses one it can't write
            if state is not None:  # a kill after its checkpoint may have logged later steps
                truncate_after(job.run_dir, state.step)
            elif job.cfg.trainer.resume == AUTO_RESUME:  # no checkpoint: whatever it logged goes
                remove_events(job.run_dir)
            else:
                ensure_no_run(job.run_dir)
        return _train_locked(jobs, geometries, resumed, device, cores)
    finally:
        for lock in locks:
            lock.release()


def _train_locked(
    jobs: list[Job],
    geometries: list[Geometry],
    resumed: list[Checkpoint | None],
    device: torch.device,
    cores: int | None,
) -> list[TrainResult]:
    first = jobs[0].cfg
    # by one job's size: a group of tiny jobs is many tiny problems (1 thread measured 10x faster
    # than 2 for 1,000 seed-task jobs), and a big job's group is small anyway (batching.max_group_size)
    threads = runtime.choose_num_threads(
        first.trainer.num_threads,
        build.multiply_adds(geometries[0]),
        cores or runtime.available_cores(),
    )
    if first.trainer.num_threads not in ("auto", threads):
        log.warning(
            "trainer.num_threads=%s: more than the %d core(s) available here; using %d",
            first.trainer.num_threads,
            threads,
            threads,
        )
    torch.set_num_threads(threads)

    members = [build.member(*args, device) for args in zip(jobs, geometries, resumed, strict=True)]
    models = [m.model for m in members]
    parameters = share_storage(models)
    schedule = Schedule(
        done=[m.resumed.step if m.resumed else 0 for m in members],
        last=[m.job.cfg.trainer.steps for m in members],
    )
    active = [True] * len(members)
    step = make_step(models, [m.optimizer for m in members], *build.stacked_data(members), active)
    if first.trainer.cuda_graph:
        require_cuda_for_graphs(device)
        step = CudaGraphStep(step)

    trackers = [run_log.tracker(m) for m in members]
    run_log.log_run_starts(members, trackers)
    progress = Progress(
        [run_log.job_log(m, tracker) for m, tracker in zip(members, trackers, strict=True)],
        parameters,
        tuple(models[0].kernel.shape),  # (kh, kw), or (out, in, kh, kw) with channels
        0 if models[0].bias is None else models[0].bias.numel(),
        schedule,
        Heartbeat(min(schedule.done) + 1, max(schedule.last), logging.getLogger("kernellab")),
        log_snapshots,
    )
    start = time.perf_counter()

    def save_checkpoints() -> None:  # every trainer.checkpoint_every_s: a kill loses at most that
        wall = time.perf_counter() - start
        atomic_write_all(
            [
                (
                    m.job.run_dir / CHECKPOINT_FILE,
                    checkpoint_of(m, progress.snapshot(j), wall).encode(),
                )
                for j, m in enumerate(members)
                if progress.diverged_at[j] is None
            ]
        )

    with StopRequest() as stop:
        outcomes = fit(
            step,
            active,
            schedule,
            progress,
            stop,
            first.trainer.checkpoint_every_s,
            save_checkpoints,
        )
    wall = time.perf_counter() - start
    results, files = [], []
    for member, outcome, tracker in zip(members, outcomes, trackers, strict=True):
        result, written = finish(member, outcome, tracker, device, threads, wall)
        results.append(result)
        files += written
    atomic_write_all(files)
    return results
