"""A batch shared out between forked worker processes before it is composed
(`hydra.launcher.workers` above 1, for a task function without a batch runner or with a runner's
`Sharing`).

Composing and placing a job (its config, `.hydra/` files, log file) costs about as much as
training it in a big batched sweep, so it must not stay in one process while the others train.
This process plans the shares from the jobs' overrides alone: the runner's `Sharing.plan` weighs
configs that are each job's base (one per list of config-group choices, composed here once and
inherited by every worker) with only its overrides of `Sharing.keys` applied, so a thousand
seeds are one config; without a runner the shares are runs of consecutive jobs. Then it forks
one worker per share (`fork_workers`). Each worker composes and places its share, and waits at a
barrier until every worker has: a job that can't be composed stops them all before anything is
written, and this process composes that job again to raise Hydra's own error, as the sweeper's
validation pass would have. Then each runs its share (the runner with `PreparedJob.worker` set,
or the jobs one by one) and sends each job's outcome as it ends (`result_of`, with the job's
`hydra.overrides.task`). This process turns them into JobReturns (`GatheredReturn`: the configs
composed again only if read), prepares any job a worker didn't finish (it died) and hands those to
`Sharing.after`, which also ends the sweep after a signal; a job still unfinished then fails.
Signals reaching this process are passed on to every worker (`fork_workers`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from ._jobs import GatheredReturn, PreparedJob, _Launch
from ._workers import (
    Channel,
    available_cores,
    contiguous,
    fork_workers,
    gpu_assignment,
    result_of,
    visible_gpus,
)

if TYPE_CHECKING:
    from ._core import BatchedLauncherCore, BatchRunner, Sharing

log = logging.getLogger("hydra_plugins.kernellab_batched_launcher")

Numbered = Sequence[tuple[int, Sequence[str]]]


def plan(
    core: BatchedLauncherCore, numbered: Numbered, sharing: Sharing | None, workers: int
) -> list[list[int]]:
    """The jobs' positions in at most `workers` shares (see the module's docstring). Every job's
    base is composed here either way: the workers inherit it, and a JobReturn's configs are made
    from it if read after the launch (when Hydra's own composition may no longer work)."""
    keys = list(sharing.keys) if sharing is not None else []
    configs = core.planning_configs([overrides for _, overrides in numbered], keys)
    if sharing is None:
        return contiguous(len(numbered), workers)
    shares = [share for share in sharing.plan(configs, workers) if share]
    placed = sorted(i for share in shares for i in share)
    if placed != list(range(len(numbered))) or len(shares) > workers:
        raise RuntimeError(f"Sharing.plan gave shares that are not a partition: {shares}")
    return shares


def launch_in_workers(
    core: BatchedLauncherCore,
    launch: _Launch,
    numbered: Numbered,
    runner: BatchRunner | None,
    sharing: Sharing | None,
    workers: int,
    on_ready: Callable[[], Any],
) -> list[JobReturn]:
    """Run the batch in forked workers, each composing its share; every job's JobReturn, in
    order. `on_ready`: called once every worker has composed its share, before any job starts."""
    shares = [[numbered[i] for i in share] for share in plan(core, numbered, sharing, workers)]
    count = len(shares)
    log.info(
        "%d jobs over %d worker processes (%s jobs), %d core(s) each",
        len(numbered),
        count,
        "/".join(str(len(share)) for share in shares),
        max(1, available_cores() // count),
    )

    def work(k: int, channel: Channel) -> None:
        launch.worker, launch.workers = (k, count), 1
        jobs = []
        for idx, overrides in shares[k]:
            try:
                jobs.append(core.prepare(launch, overrides, idx))
            except Exception:
                channel.abort(idx)
                return
        channel.ready()
        launch.on_finished = lambda job: channel.send(
            ("result", result_of(job.idx, job.result), _task_overrides(job))
        )
        if runner is None:
            for job in jobs:
                job.run()
        else:
            core._run_batch(runner, jobs)

    outcomes: dict[int, tuple[Any, ...]] = {}

    def receive(k: int, message: Any) -> None:
        outcomes[message[1][0]] = message[1:]

    gpus = gpu_assignment(count, visible_gpus())
    statuses, aborted = fork_workers(count, work, receive, gpus, barrier=True, on_ready=on_ready)
    if aborted is not None:  # a job that can't be composed: Hydra's error, as validation gives it
        assert core.composer is not None
        core.composer.compose_job(dict(numbered)[aborted])
        raise RuntimeError(f"job {aborted} could not be composed in its worker process")
    worker_of = {idx: k for k, share in enumerate(shares) for idx, _ in share}
    returns: list[JobReturn | PreparedJob] = []
    lost: list[PreparedJob] = []
    for idx, overrides in numbered:
        outcome = outcomes.get(idx)
        if outcome is None:
            job = core.prepare(launch, overrides, idx)
            k = worker_of[idx]
            status = statuses[k]
            job.lost = f"worker {k + 1} of {count} ended (exit status {status}) before this job"
            lost.append(job)
            returns.append(job)
            continue
        (_, status, value, working_dir, task_name), task_overrides = outcome

        def compose(idx: int = idx, overrides: Sequence[str] = overrides) -> PreparedJob:
            return core.prepare(launch, overrides, idx)

        ret = GatheredReturn(
            compose, JobStatus[status], value, task_overrides, working_dir, task_name
        )
        returns.append(ret)
    if sharing is not None:
        sharing.after(lost, Path(str(core.config.hydra.sweep.dir)))  # type: ignore[union-attr]
    for job in lost:
        if not job.finished:
            job.fail(RuntimeError(f"the batch runner did not finish job {job.idx}"))
    return [r.result if isinstance(r, PreparedJob) else r for r in returns]  # type: ignore[misc]


def _task_overrides(job: PreparedJob) -> list[str]:
    """The job's `hydra.overrides.task`, a JobReturn's `overrides`."""
    overrides = OmegaConf.to_container(job.config.hydra.overrides.task)
    assert isinstance(overrides, list)
    return overrides
