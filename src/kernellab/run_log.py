"""What a run writes to TensorBoard besides its steps: its tracker, its progress settings, and at
its start its config, HParams session and task pictures."""

from __future__ import annotations

import torch
from tensorboard.compat.proto.summary_pb2 import Summary

from kernellab.build import Member
from kernellab.console import print_interval
from kernellab.data import Task
from kernellab.hparams import hparams_summaries, hyperparameters
from kernellab.loop import JobLog
from kernellab.resolved import config_yaml, resolved
from kernellab.tracking import (
    INPUT_TAG,
    TARGET_KERNEL_TAG,
    TARGET_TAG,
    TensorBoardTracker,
    snapshot_interval,
)


def tracker(member: Member) -> TensorBoardTracker:
    done = member.resumed.step if member.resumed else 0
    return TensorBoardTracker(
        member.job.run_dir,
        member.task.kernel,
        purge_step=done + 1 if done else None,
        target_output=member.task.target,
        kernel_shape=tuple(member.model.kernel.shape),
    )


def job_log(member: Member, tracker: TensorBoardTracker) -> JobLog:
    cfg, state = member.job.cfg, member.resumed
    steps = cfg.trainer.steps
    return JobLog(
        tracker=tracker,
        log=member.job.log,
        target=None if member.task.kernel is None else member.task.kernel.flatten().tolist(),
        last_step=steps,
        log_every=cfg.logger.log_every,
        snapshot_every=snapshot_interval(steps, cfg.logger.snapshot_every),
        print_every=cfg.trainer.print_every or print_interval(steps),
        divergence_threshold=cfg.trainer.divergence_threshold,
        resumed=(state.step, state.initial_loss, state.final_loss) if state else (0, None, None),
    )


def log_run_starts(members: list[Member], trackers: list[TensorBoardTracker]) -> None:
    """Each new run's config, HParams session and task pictures. A job whose task equals the
    job's before shares its encoded pictures (the seeds of a group see one picture): the same
    scales, so the same bytes."""
    pictures: list[Summary] = []
    shown: Task | None = None
    for member, tracker in zip(members, trackers, strict=True):
        if member.resumed is not None:  # its run start is in its event files already
            continue
        cfg, task = member.job.cfg, member.task
        if shown is None or not _same_task(task, shown):
            pictures = [tracker.image(tag, values) for tag, values in _task_pictures(task)]
            shown = task
        plain = resolved(cfg).plain
        tracker.log_config(config_yaml(plain))
        used = hyperparameters(plain, member.geometry.kernel_size, member.geometry.target_kernel)
        for summary in hparams_summaries(used, member.job.swept):
            tracker.log_summary(summary)
        for picture in pictures:
            tracker.log_summary(picture)


def _task_pictures(task: Task) -> list[tuple[str, torch.Tensor]]:
    pictures = [(INPUT_TAG, task.image), (TARGET_TAG, task.target)]
    return pictures if task.kernel is None else [*pictures, (TARGET_KERNEL_TAG, task.kernel)]


def _same_task(a: Task, b: Task) -> bool:
    if (a.kernel is None) != (b.kernel is None):
        return False
    pairs = [(a.image, b.image), (a.target, b.target)]
    if a.kernel is not None:
        pairs.append((a.kernel, b.kernel))
    return all(torch.equal(x, y) for x, y in pairs)
