"""`hydra/launcher=slurm_batched` (conf/hydra/launcher/slurm_batched.yaml): a sweep's jobs trained
batched on SLURM, in at most `hydra.launcher.tasks` array tasks.

The submitting process validates every job (the sweeper's validation pass, with the batched
launcher's composition; nothing kept), packs them into tasks of about equal work by their
planning configs (kernellab.packing: steps x pixels, likely groups together, a too-big group split;
a thousand seeds are one config to weigh) and submits one job array with the `slurm`
preset's options (`KernellabSlurmLauncher._executor`). Each task (`BatchTask`, pickled by
submitit) composes its share again and runs it as `hydra/launcher=batched` runs a batch, in the
sweep's one dir with the usual job numbers and dir names, and returns each job's outcome; the
submitting process turns them into JobReturns, so any sweeper sees every value, and the usual
end of a sweep (kernellab.lifecycle) writes one summary.

In a task: a time limit (SIGUSR2) saves every running job and requeues the task, whose jobs then
continue (`trainer.resume=auto`: finished ones return their results); SIGTERM (scancel) saves,
records the rest `not started` and ends the task, whose jobs the sweep then gets as inf.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.kernellab_slurm.launcher import KernellabSlurmLauncher

log = logging.getLogger(__name__)

Numbered = list[tuple[int, list[str]]]  # (job number, overrides): a task's share of the sweep


class KernellabSlurmBatchLauncher(KernellabSlurmLauncher):
    def __init__(self, tasks: Any = 4, **params: Any) -> None:
        super().__init__(**params)  # the slurm preset's options, for the executor
        self.tasks = tasks
        self._core: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra_plugins.kernellab_batched_launcher import BatchedLauncherCore

        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        # what tasks get: Hydra's own loader (the core wraps the context's in its own, next)
        self.task_context = HydraContext(hydra_context.config_loader, hydra_context.callbacks)
        self._core = BatchedLauncherCore(keeps_validation=False, workers=1)  # tasks compose
        self._core.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from kernellab import slurm, slurm_tasks

        assert self.config is not None
        sweep_dir = self._sweep_dir()
        tasks = self._checked(lambda: parse_tasks(self.tasks))
        self._checked(slurm.check_submission)
        shares = self._plan(job_overrides, initial_job_idx, tasks)
        task = BatchTask(self.config, self.task_context, self.task_function)
        submitted = self._submit_array(lambda executor: executor.map_array(task, shares))
        slurm_tasks.record(
            sweep_dir,
            {
                job.job_id: [num for num, _ in share]
                for job, share in zip(submitted, shares, strict=True)
            },
        )
        listed = _list_tasks(sweep_dir, submitted, shares)
        log.info(
            f"Submitted {len(job_overrides)} jobs as {len(shares)} SLURM array task(s) "
            f"({'/'.join(str(len(s)) for s in shares)} jobs) into {sweep_dir} "
            f"(listed in {listed})"
        )
        subdir = self.config.hydra.output_subdir
        returns = _gather(submitted, shares, None if subdir is None else str(subdir))
        log.info(slurm.resources_line(submitted))
        return [returns[initial_job_idx + i] for i in range(len(job_overrides))]

    def _plan(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int, tasks: int
    ) -> list[Numbered]:
        """The jobs' shares, one per task (kernellab.packing.pack)."""
        from kernellab import packing

        configs = self._core.planning_configs(job_overrides, packing.WEIGHT_KEYS)
        return [
            [(initial_job_idx + i, list(job_overrides[i])) for i in share]
            for share in packing.plan(configs, tasks)
        ]


class BatchTask:
    """One SLURM array task: its share of the sweep, run as hydra/launcher=batched runs a batch,
    in one process (its `cpus_per_task` are that process's threads; workers inside a task: not
    yet, see docs/sweeps.md). Returns each job's outcome (`result_of`)."""

    def __init__(
        self,
        config: DictConfig,
        hydra_context: HydraContext,
        task_function: TaskFunction,
    ) -> None:
        import cloudpickle  # submitit's own pickler

        # Unpickled only after Singleton.set_state in the task: restoring it re-executes Hydra's
        # plugin modules, so submitit's SlurmQueueConf, which types the config's launcher node,
        # becomes another class. A config unpickled before would hold the old one, and the
        # batched composer, which copies configs by pickling, could no longer pickle it.
        self.payload = cloudpickle.dumps((config, hydra_context, task_function))
        self.singleton_state = Singleton.get_state()

    def __call__(self, share: Numbered) -> list[tuple[Any, ...]]:
        import cloudpickle

        from hydra_plugins.kernellab_batched_launcher import BatchedLauncherCore, result_of
        from kernellab import slurm

        Singleton.set_state(self.singleton_state)
        config, hydra_context, task_function = cloudpickle.loads(self.payload)
        share = [(num, slurm.with_resume(overrides)) for num, overrides in share]
        core = BatchedLauncherCore(workers=1, reuse_validation=False)
        core.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        try:
            with slurm.requeue_after_time_limit():
                returns = core.launch_numbered(share, list_jobs=False)
        finally:
            slurm.record_task_resources(len(share))
        return [result_of(num, ret) for (num, _), ret in zip(share, returns, strict=True)]

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """For submitit's requeue: the same task again (its jobs continue: with_resume)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _gather(
    submitted: Sequence[Any], shares: Sequence[Numbered], output_subdir: str | None
) -> dict[int, JobReturn]:
    """Every job's JobReturn, by job number, as its task ends (one state poller for them all)."""
    from kernellab import slurm

    watcher = slurm.job_state_watcher()
    for job in submitted:
        job.watcher = watcher
    returns: dict[int, JobReturn] = {}
    for job, share in zip(submitted, shares, strict=True):
        for (num, _), ret in zip(
            share, slurm.task_results_or_inf(job, share, output_subdir), strict=True
        ):
            returns[num] = ret
    return returns


def parse_tasks(setting: Any) -> int:
    """`hydra.launcher.tasks`: a whole number >= 1, or one line (exit 2)."""
    from kernellab.errors import ConfigError

    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ConfigError(
            "hydra.launcher.tasks", setting, "must be a number of SLURM array tasks >= 1"
        )
    return setting


def _list_tasks(sweep_dir: Path, submitted: Sequence[Any], shares: Sequence[Numbered]) -> Path:
    """Each task's SLURM job id and jobs, in the sweep's launch list (as the batched launcher's)."""
    from hydra_plugins.kernellab_batched_launcher import LAUNCH_LOG

    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    count = sum(len(share) for share in shares)
    lines = [f"[{stamp}] Launching {count} jobs on SLURM in {len(shares)} array task(s)\n"]
    for job, share in zip(submitted, shares, strict=True):
        lines.append(f"[{stamp}] SLURM job {job.job_id}: {len(share)} jobs\n")
        lines += [f"[{stamp}] \t#{num} : {' '.join(filter_overrides(o))}\n" for num, o in share]
    path = sweep_dir / LAUNCH_LOG
    with open(path, "a") as file:
        file.writelines(lines)
    return path
