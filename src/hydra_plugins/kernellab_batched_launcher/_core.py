"""The batched launcher's core: the batch-runner seam and the launch itself.

A launch first *prepares* every job of the batch (composes its config, sets `hydra.job.num/id`,
works out its output dir, builds the config the task function gets and Hydra's view of it: a
`PreparedJob`, in `_jobs`), then hands the list to a *batch runner* if the task function has one,
or runs the jobs one by one through the same per-job plumbing otherwise. With
`hydra.launcher.workers` above 1 the batch is shared out *before* it is composed (`_shares`): each
forked worker process composes, prepares and runs its share, and this process gathers every job's
JobReturn.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, filter_overrides, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from ._compose import ComposedJob, SweepComposer
from ._jobs import LaunchStats, PreparedJob, _Launch
from ._logging import JobLogging
from ._private import hydra_view, interpolations_parsed_once, keep_out_of_gc
from ._validation import ValidationSharingLoader, unwrap
from ._workers import cuda_in_use, resolve_workers

if TYPE_CHECKING:
    from ._options import BatchedLauncherConf

log = logging.getLogger("hydra_plugins.kernellab_batched_launcher")

#: The attribute of a task function that holds its batch runner (see `batch_runner`).
BATCH_RUNNER_ATTR = "hydra_batch_runner"
#: ... and the runner's `Sharing`, if it has one.
SHARING_ATTR = "hydra_batch_sharing"
# In the sweep dir: each launch's jobs, one `#N : overrides` line each, as Hydra's launchers print
# them. This launcher prints one line instead (a thousand jobs would be a thousand lines before
# anything trains); a batch runner prints it, with its groups, when there is one.
LAUNCH_LOG = "launch.log"
#: the sweeper's validation pass logs a line every this many jobs it had composed
VALIDATION_PROGRESS = 10_000


class BatchRunner(Protocol):
    """Runs a batch of prepared jobs; see `PreparedJob` for what it must do with each."""

    def __call__(self, jobs: Sequence[PreparedJob], /) -> None: ...


class Sharing(Protocol):
    """How a runner's batch is shared out between worker processes before it is composed
    (`hydra.launcher.workers` above 1). Without one, a runner gets the whole batch composed in
    the launcher's process (`PreparedJob.workers`: it may split it with `run_in_workers`)."""

    #: the task-config keys (dotted) `plan` reads: a job's overrides of other keys are not applied
    #: to the configs `plan` gets (so a thousand seeds are one config to weigh)
    keys: Sequence[str]

    def plan(self, configs: Sequence[DictConfig], parts: int) -> list[list[int]]:
        """Job positions in at most `parts` shares, one per worker (each job in one share)."""
        ...

    def after(self, lost: Sequence[PreparedJob], sweep_dir: Path) -> None:
        """In the launcher's process once every worker has ended: `lost` are the jobs no worker
        finished (each prepared here, `lost` saying why), usually none; finish them (a job left
        unfinished fails), and end the sweep if the runner's way is to after a signal."""
        ...


F = TypeVar("F", bound=Callable[..., Any])


def batch_runner(runner: BatchRunner, sharing: Sharing | None = None) -> Callable[[F], F]:
    """Decorator: give a Hydra task function a batch runner, used by `hydra/launcher=batched`.

        @hydra.main(config_path="conf", config_name="config", version_base="1.3")
        @batch_runner(run_batch)
        def main(cfg): ...

    Above or below `@hydra.main`: the attribute is set on the function and on every function
    it wraps (`__wrapped__`), and Hydra hands the launcher the innermost one. Other launchers,
    and this one with `hydra.launcher.batch_runner=false`, ignore it. With `sharing`, a batch
    given several workers is shared out before it is composed and the runner is called in each
    worker with its share (`PreparedJob.worker`); see `Sharing`.
    """

    def decorate(task_function: F) -> F:
        fn: Any = task_function
        while fn is not None:
            setattr(fn, BATCH_RUNNER_ATTR, runner)
            setattr(fn, SHARING_ATTR, sharing)
            fn = getattr(fn, "__wrapped__", None)
        return task_function

    return decorate


def find_batch_runner(task_function: Any) -> BatchRunner | None:
    return _find(task_function, BATCH_RUNNER_ATTR)


def find_sharing(task_function: Any) -> Sharing | None:
    """The `Sharing` given with the task function's batch runner, if any."""
    return _find(task_function, SHARING_ATTR)


def _find(task_function: Any, attr: str) -> Any:
    fn = task_function
    while fn is not None:
        if getattr(fn, BATCH_RUNNER_ATTR, None) is not None:
            return getattr(fn, attr, None)
        fn = getattr(fn, "__wrapped__", None)
    return None


class BatchedLauncherCore:
    """Everything `BatchedLauncher` does; kept out of the plugin module so that Hydra's plugin
    scan (which re-executes plugin modules) never makes two copies of these classes.

    `options`: `hydra.launcher`'s keys, as `BatchedLauncherConf` (_options.py) defines them and
    their defaults (anything not given takes the dataclass's default). `keeps_validation`: whether
    the sweeper's validation pass keeps its compositions for the launch here; a launcher whose jobs
    run elsewhere (slurm_batched) only validates (a hundred thousand kept configs were ~20 GB).
    """

    def __init__(self, keeps_validation: bool = True, **options: Any) -> None:
        from ._options import BatchedLauncherConf

        self.options: BatchedLauncherConf = BatchedLauncherConf(**options)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.composer: SweepComposer | None = None
        self.stats = LaunchStats()
        self._validated: dict[tuple[str, ...], list[ComposedJob]] = {}
        self.keeps_validation = keeps_validation
        self._checked = 0  # jobs the validation pass composed (for its progress lines)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        keep_out_of_gc()  # what the app imported: torch, Hydra
        loader = unwrap(hydra_context.config_loader)
        self.composer = SweepComposer(loader, config, self.options.fast_compose)
        self._validated.clear()
        if self.options.reuse_validation and self.composer.fast:
            # the sweeper holds the same context: its validation pass becomes our composition
            hydra_context.config_loader = ValidationSharingLoader(loader, self)

    def compose_for_launch(self, overrides: Sequence[str]) -> DictConfig | None:
        """Compose a job (raising Hydra's error if it can't be) and keep it for `launch`. With
        workers possible (`workers` other than 1) nothing is composed here: the launch composes
        each job where it runs (raising the same error, before any job starts)."""
        if self.options.workers not in (1, "1"):
            return None
        assert self.composer is not None
        composed = self.composer.compose_job(overrides)
        if self.keeps_validation:
            self._validated.setdefault(tuple(overrides), []).append(composed)
            keep_out_of_gc()  # the job's config
        self._checked += 1
        if self._checked % VALIDATION_PROGRESS == 0:  # a big sweep's minutes of checking
            log.info(f"{self._checked:,} jobs composed and checked so far")
        return composed.config

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> list[JobReturn]:
        numbered = [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        return self.launch_numbered(numbered)

    def launch_numbered(
        self, numbered: Sequence[tuple[int, Sequence[str]]], list_jobs: bool = True
    ) -> list[JobReturn]:
        """`launch` for jobs numbered by the caller (a share of a sweep run elsewhere, e.g. one
        SLURM task's); `list_jobs=False`: the caller lists them in LAUNCH_LOG itself."""
        with interpolations_parsed_once():
            return self._launch_jobs(numbered, list_jobs)

    def planning_configs(
        self, job_overrides: Sequence[Sequence[str]], keys: Sequence[str]
    ) -> list[DictConfig]:
        """Each job's task config as far as `keys` go (`SweepComposer.planning_config`: jobs
        that agree on them share one object), for planning where jobs run; nothing is written."""
        assert self.composer is not None
        with interpolations_parsed_once():
            return [self.composer.planning_config(o, keys) for o in job_overrides]

    def _launch_jobs(
        self, numbered: Sequence[tuple[int, Sequence[str]]], list_jobs: bool = True
    ) -> list[JobReturn]:
        from ._shares import launch_in_workers

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None and self.composer is not None
        config = self.config
        job_logging = JobLogging(reuse=self.options.reuse_logging)
        job_logging.reset(config.hydra.hydra_logging, config.hydra.verbose)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        before = dict(self.composer.stats)
        launch = _Launch(self.hydra_context, self.task_function, job_logging)
        runner = find_batch_runner(self.task_function) if self.options.batch_runner else None
        sharing = find_sharing(self.task_function) if runner is not None else None
        workers = resolve_workers(self.options.workers, len(numbered))
        if workers > 1 and cuda_in_use():  # a forked CUDA context is unusable
            log.warning("CUDA is in use in this process (an earlier batch): this batch runs in it")
            workers = 1

        def list_them() -> Path:
            listed = _list_jobs(sweep_dir, numbered) if list_jobs else sweep_dir / LAUNCH_LOG
            if runner is None:
                log.info(
                    f"Launching {len(numbered)} jobs locally, one at a time (listed in {listed})"
                )
            return listed

        try:
            if workers > 1 and (runner is None or sharing is not None):
                returns = launch_in_workers(
                    self, launch, numbered, runner, sharing, workers, list_them
                )
            else:
                try:
                    jobs = [self.prepare(launch, overrides, idx) for idx, overrides in numbered]
                finally:
                    self._validated.clear()
                launch.workers = workers
                list_them()
                if runner is None:
                    for job in jobs:
                        job.run()
                else:
                    self._run_batch(runner, jobs)
                returns = [job.result for job in jobs]
        finally:
            self.stats = LaunchStats(
                workers=workers,
                jobs=len(numbered),
                batch_runner=runner is not None,
                composed_fast=self.composer.stats["fast"] - before["fast"],
                composed_full=self.composer.stats["full"] - before["full"],
                base_compositions=self.composer.stats["bases"] - before["bases"],
                logging_configures=job_logging.full_configures,
            )
            job_logging.reset(config.hydra.hydra_logging, config.hydra.verbose)
        keep_out_of_gc()  # what the jobs left, their returns included
        return returns  # type: ignore[return-value]

    def prepare(self, launch: _Launch, overrides: Sequence[str], idx: int) -> PreparedJob:
        """Compose (or take the validated config), number and place one job."""
        assert self.composer is not None
        validated = self._validated.get(tuple(overrides))
        composed = validated.pop(0) if validated else self.composer.compose_job(overrides)
        config = composed.config
        composed.set_hydra({"job": {"id": idx, "num": idx}})
        instance = HydraConfig.instance()
        saved = instance.cfg
        try:
            # As run_job: HydraConfig is this job's while its output dir is resolved (a view of
            # the whole config reads the same values as set_config's copy of the hydra node).
            instance.cfg = config  # type: ignore[assignment]
            sweep_dir = str(OmegaConf.select(config, "hydra.sweep.dir"))
            subdir = str(OmegaConf.select(config, "hydra.sweep.subdir"))
            sweep_path = os.path.join(sweep_dir, subdir)
        finally:
            instance.cfg = saved
        output_dir = os.path.abspath(sweep_path)
        composed.set_hydra({"runtime": {"output_dir": output_dir}})
        OmegaConf.set_readonly(config.hydra, True)  # as HydraConfig.set_config does
        job = PreparedJob(
            idx=idx,
            overrides=list(overrides),
            config=config,
            task_cfg=composed.task_config(),
            hydra_cfg=hydra_view(config),
            output_dir=Path(output_dir),
            _launch=launch,
            _composed=composed,
            _sweep_path=sweep_path,
        )
        keep_out_of_gc()  # the job's configs
        return job

    @staticmethod
    def _run_batch(runner: BatchRunner, jobs: list[PreparedJob]) -> None:
        try:
            runner(jobs)
        except Exception as error:
            for job in jobs:
                if not job.finished:
                    job.fail(error)
            return
        for job in jobs:
            if not job.finished:
                job.fail(RuntimeError(f"the batch runner did not finish job {job.idx}"))


def _list_jobs(sweep_dir: Path, numbered: Sequence[tuple[int, Sequence[str]]]) -> Path:
    """Append the launch and its jobs to the sweep's LAUNCH_LOG (a search launches many times),
    in the words of Hydra's own launch list; returns the file."""
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    lines = [f"[{stamp}] Launching {len(numbered)} jobs locally\n"]
    lines += [
        f"[{stamp}] \t#{idx} : {' '.join(filter_overrides(list(overrides)))}\n"
        for idx, overrides in numbered
    ]
    path = sweep_dir / LAUNCH_LOG
    with open(path, "a") as file:
        file.writelines(lines)
    return path
