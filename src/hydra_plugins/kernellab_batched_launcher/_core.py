"""The batched launcher's machinery: prepared jobs, the batch-runner seam, the launch itself.

A launch first *prepares* every job of the batch (composes its config, sets `hydra.job.num/id`,
works out its output dir, builds the config the task function gets and Hydra's view of it),
then hands the list to a *batch runner* if the task function has one, or runs the jobs one by
one through the same per-job plumbing otherwise. The per-job plumbing reproduces
`hydra.core.utils.run_job` (what the basic launcher calls) step for step: HydraConfig, the job
dir, `hydra.job.chdir`, the job's log file, `.hydra/{config,hydra,overrides}.yaml`,
`hydra.job.env_set`, the `on_job_start`/`on_job_end` callbacks and the JobReturn.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from textwrap import dedent
from typing import Any, Protocol, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobRuntime,
    JobStatus,
    env_override,
    filter_overrides,
    setup_globals,
)
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from ._compose import ComposedJob, SweepComposer
from ._logging import JobLogging
from ._private import (
    deprecation_warning,
    flush_loggers,
    hydra_view,
    interpolations_parsed_once,
    keep_out_of_gc,
)
from ._validation import ValidationSharingLoader, unwrap
from ._workers import resolve_workers, run_in_workers, split

log = logging.getLogger("hydra_plugins.kernellab_batched_launcher")

#: The attribute of a task function that holds its batch runner (see `batch_runner`).
BATCH_RUNNER_ATTR = "hydra_batch_runner"
# In the sweep dir: each launch's jobs, one `#N : overrides` line each, as Hydra's launchers print
# them. This launcher prints one line instead (a thousand jobs would be a thousand lines before
# anything trains); a batch runner prints it, with its groups, when there is one.
LAUNCH_LOG = "launch.log"


class BatchRunner(Protocol):
    """Runs a batch of prepared jobs; see `PreparedJob` for what it must do with each."""

    def __call__(self, jobs: Sequence[PreparedJob], /) -> None: ...


F = TypeVar("F", bound=Callable[..., Any])


def batch_runner(runner: BatchRunner) -> Callable[[F], F]:
    """Decorator: give a Hydra task function a batch runner, used by `hydra/launcher=batched`.

        @hydra.main(config_path="conf", config_name="config", version_base="1.3")
        @batch_runner(run_batch)
        def main(cfg): ...

    Above or below `@hydra.main`: the attribute is set on the function and on every function
    it wraps (`__wrapped__`), and Hydra hands the launcher the innermost one. Other launchers,
    and this one with `hydra.launcher.batch_runner=false`, ignore it.
    """

    def decorate(task_function: F) -> F:
        fn: Any = task_function
        while fn is not None:
            setattr(fn, BATCH_RUNNER_ATTR, runner)
            fn = getattr(fn, "__wrapped__", None)
        return task_function

    return decorate


def find_batch_runner(task_function: Any) -> BatchRunner | None:
    fn = task_function
    while fn is not None:
        runner = getattr(fn, BATCH_RUNNER_ATTR, None)
        if runner is not None:
            return runner
        fn = getattr(fn, "__wrapped__", None)
    return None


@dataclass(eq=False)
class PreparedJob:
    """One job of a batch, composed and placed, not yet started.

    A batch runner receives these and, for every job, either calls `run()` (the normal task
    function, exactly as the sequential path does) or drives it itself:

        job.start()                 # .hydra/ files, log file, on_job_start
        with job.activate():        # HydraConfig, cwd, env, logging = this job's, for a while
            ...                     # as often as needed, e.g. per logged step
        job.finish(value)           # or job.fail(exception): on_job_end, the JobReturn

    Outside `activate()` (and between jobs) log records still reach the console handlers of
    the job logging config but no job's log file. A job the runner leaves unfinished is marked
    failed by the launcher (after `on_job_end`), as is every unfinished job when the runner
    raises.
    """

    idx: int  #: hydra.job.num and hydra.job.id: the job's number in the sweep
    overrides: list[str]  #: the job's overrides, as the sweeper gave them
    config: DictConfig  #: the full job config, hydra node included (read-only hydra node)
    task_cfg: DictConfig  #: the config the task function gets: `config` without `hydra`
    hydra_cfg: DictConfig  #: HydraConfig's view of the job: `{hydra: ...}`, as in hydra.yaml
    output_dir: Path  #: absolute: hydra.runtime.output_dir
    result: JobReturn | None = None  #: set by finish()/fail()/run()
    _launch: _Launch | None = field(default=None, repr=False)
    _composed: ComposedJob | None = field(default=None, repr=False)  # how it was composed
    _started: bool = field(default=False, repr=False)
    _dir_made: bool = field(default=False, repr=False)  # made at the first activation
    _depth: int = field(default=0, repr=False)
    _sweep_path: str = field(default="", repr=False)  # sweep.dir/subdir as given (maybe relative)
    _working_dir: str = field(default="", repr=False)

    @property
    def started(self) -> bool:
        return self._started

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def chdir(self) -> bool:
        return self._launch.chdir(self) if self._launch else False

    @property
    def workers(self) -> int:
        """The worker processes this launch gives its batch (`hydra.launcher.workers`, resolved):
        a batch runner may split the batch over them with `run_in_workers`."""
        return self._launch.workers if self._launch else 1

    @contextlib.contextmanager
    def activate(self, env: bool = True) -> Iterator[PreparedJob]:
        """Make this the current job: HydraConfig, the job dir (created; the cwd with
        hydra.job.chdir), the job's log file and, with `env`, hydra.job.env_set. Re-entrant;
        the outermost exit restores HydraConfig, the cwd and the environment."""
        launch = self._require_launch()
        if self._depth:
            self._depth += 1
            try:
                with env_override(self.hydra_cfg.hydra.job.env_set) if env else _nothing():
                    yield self
            finally:
                self._depth -= 1
            return
        instance = HydraConfig.instance()
        saved_cfg, saved_cwd = instance.cfg, os.getcwd()
        instance.cfg = self.hydra_cfg  # what HydraConfig.set_config(self.config) makes
        chdir = False
        self._depth = 1
        try:
            if not self._dir_made:
                self.output_dir.mkdir(parents=True, exist_ok=True)
                self._dir_made = True
            chdir = launch.chdir(self)
            if chdir:
                os.chdir(self.output_dir)
            composed = self._composed
            launch.logging.switch(self.config, composed and composed.hydra_entry("job_logging"))
            with env_override(self.hydra_cfg.hydra.job.env_set) if env else _nothing():
                yield self
        finally:
            self._depth = 0
            with contextlib.suppress(Exception):
                launch.logging.park()
            instance.cfg = saved_cfg
            if chdir:
                os.chdir(saved_cwd)

    def start(self) -> None:
        """Write `.hydra/` and call `on_job_start` (with the job active, env_set applied)."""
        launch = self._require_launch()
        if self._started:
            raise RuntimeError(f"job {self.idx} already started")
        with self.activate(env=False):
            self._started = True
            # as run_job: the job dir as configured with hydra.job.chdir, else the cwd now
            self._working_dir = self._sweep_path if self.chdir else os.getcwd()
            launch.save_hydra_files(self)
            with env_override(self.hydra_cfg.hydra.job.env_set):
                launch.callbacks.on_job_start(config=self.config, task_function=launch.task)

    def finish(self, return_value: Any = None) -> JobReturn:
        """The job completed with `return_value`: call `on_job_end`, return the JobReturn."""
        return self._end(JobStatus.COMPLETED, return_value)

    def fail(self, error: BaseException) -> JobReturn:
        """The job failed with `error` (raised to the sweeper when it reads the result)."""
        return self._end(JobStatus.FAILED, error)

    def run(self, task_function: TaskFunction | None = None) -> JobReturn:
        """The whole job, as Hydra's basic launcher runs it: start, `task_function(task_cfg)`
        (the app's by default; an Exception fails the job), finish."""
        launch = self._require_launch()
        fn = task_function if task_function is not None else launch.task
        with self.activate(env=False):
            self.start()
            with env_override(self.hydra_cfg.hydra.job.env_set):
                try:
                    value, status = fn(self.task_cfg), JobStatus.COMPLETED
                except Exception as error:
                    value, status = error, JobStatus.FAILED
            return self._end(status, value)

    def _end(self, status: JobStatus, value: Any) -> JobReturn:
        launch = self._require_launch()
        if self.result is not None:
            raise RuntimeError(f"job {self.idx} already finished")
        if not self._started:
            self.start()
        with self.activate(env=False):
            ret = self._return(status, value, self._working_dir, JobRuntime.instance().get("name"))
            flush_loggers()
            launch.callbacks.on_job_end(config=self.config, job_return=ret)
        if launch.on_finished is not None:
            launch.on_finished(self)
        return ret

    def _adopt(self, status: JobStatus, value: Any, working_dir: str, task_name: Any) -> None:
        """The job ran in a worker process, which called its callbacks: its JobReturn here."""
        if self.result is not None:
            raise RuntimeError(f"job {self.idx} already finished")
        self._started = True
        self._return(status, value, working_dir, task_name)

    def _return(self, status: JobStatus, value: Any, working_dir: str, task_name: Any) -> JobReturn:
        ret = _JobReturn(self.config)
        ret.cfg = self.task_cfg
        overrides = OmegaConf.to_container(self.config.hydra.overrides.task)
        assert isinstance(overrides, list)
        ret.overrides = overrides
        ret.working_dir = working_dir
        ret.return_value = value
        ret.status = status
        ret.task_name = task_name
        self.result = ret
        return ret

    def _require_launch(self) -> _Launch:
        if self._launch is None:
            raise RuntimeError("this PreparedJob is not part of a running launch")
        return self._launch


class _JobReturn(JobReturn):
    """A JobReturn whose `hydra_cfg`, run_job's deep copy of HydraConfig's config (the hydra
    node in a root of its own), is made from the job's config when first read: sweepers
    rarely read it, and the copy costs more than composing the job did."""

    def __init__(self, config: DictConfig) -> None:
        super().__init__()
        self._hydra_source: DictConfig | None = config

    @property  # type: ignore[override]
    def hydra_cfg(self) -> DictConfig | None:
        source = self.__dict__.get("_hydra_source")
        if source is not None:
            self.__dict__["_hydra_cfg"] = OmegaConf.masked_copy(source, "hydra")
            self.__dict__["_hydra_source"] = None
        return self.__dict__.get("_hydra_cfg")

    @hydra_cfg.setter
    def hydra_cfg(self, value: DictConfig | None) -> None:
        self.__dict__["_hydra_cfg"] = value
        self.__dict__["_hydra_source"] = None


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


@dataclass
class LaunchStats:
    """What the last launch did (for tests and benchmarks)."""

    jobs: int = 0
    batch_runner: bool = False
    composed_fast: int = 0
    composed_full: int = 0
    base_compositions: int = 0
    logging_configures: int = 0
    workers: int = 1


class _Launch:
    """State shared by the jobs of one launch (one `Launcher.launch` call)."""

    def __init__(
        self,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        logging_: JobLogging,
    ) -> None:
        self.callbacks = hydra_context.callbacks
        self.task = task_function
        self.logging = logging_
        self.workers = 1  # resolved hydra.launcher.workers for this batch
        self.on_finished: Callable[[PreparedJob], None] | None = None  # set in a worker
        self._chdir: bool | None = None

    def chdir(self, job: PreparedJob) -> bool:
        """hydra.job.chdir, with run_job's default (and warning) when it is null."""
        chdir = job.hydra_cfg.hydra.job.chdir
        if chdir is None:
            from hydra import version

            if version.base_at_least("1.2"):
                return False
            if self._chdir is None:
                url = "https://hydra.cc/docs/1.2/upgrades/1.1_to_1.2/changes_to_job_working_dir/"
                deprecation_warning(
                    message=dedent(
                        f"""\
                        Future Hydra versions will no longer change working directory at job runtime by default.
                        See {url} for more information."""
                    ),
                    stacklevel=2,
                )
                self._chdir = True
            return True
        return bool(chdir)

    def save_hydra_files(self, job: PreparedJob) -> None:
        subdir = job.config.hydra.output_subdir
        if subdir is None:
            return
        out = job.output_dir / Path(subdir)
        out.mkdir(parents=True, exist_ok=True)
        composed = job._composed
        assert composed is not None  # every job of a launch is composed by prepare()
        for name, text in (
            ("config.yaml", composed.task_yaml(job.task_cfg)),
            ("hydra.yaml", composed.hydra_yaml()),
            ("overrides.yaml", composed.overrides_yaml()),
        ):
            with open(out / name, "w", encoding="utf-8") as file:
                file.write(text)


def _one_by_one_in_workers(jobs: Sequence[PreparedJob]) -> None:
    """The batch runner of a task function without one, with workers: each job run normally."""

    def run(part: Sequence[PreparedJob], k: int, workers: int) -> None:
        for job in part:
            job.run()

    parts = split([1.0] * len(jobs), jobs[0].workers)
    run_in_workers([[jobs[i] for i in part] for part in parts], run)
    # (a job whose worker died stays unfinished: the launcher fails it)


class BatchedLauncherCore:
    """Everything `BatchedLauncher` does; kept out of the plugin module so that Hydra's plugin
    scan (which re-executes plugin modules) never makes two copies of these classes."""

    def __init__(
        self,
        batch_runner: bool = True,
        fast_compose: bool = True,
        reuse_logging: bool = True,
        reuse_validation: bool = True,
        workers: Any = "auto",
    ) -> None:
        self.use_batch_runner = batch_runner
        self.workers = workers
        self.fast_compose = fast_compose
        self.reuse_logging = reuse_logging
        self.reuse_validation = reuse_validation
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.composer: SweepComposer | None = None
        self.stats = LaunchStats()
        self._validated: dict[tuple[str, ...], list[ComposedJob]] = {}

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        keep_out_of_gc()  # what the app imported: torch, Hydra
        loader = unwrap(hydra_context.config_loader)
        self.composer = SweepComposer(loader, config, self.fast_compose)
        self._validated.clear()
        if self.reuse_validation and self.composer.fast:
            # the sweeper holds the same context: its validation pass becomes our composition
            hydra_context.config_loader = ValidationSharingLoader(loader, self)

    def compose_for_launch(self, overrides: Sequence[str]) -> DictConfig:
        """Compose a job (raising Hydra's error if it can't be) and keep it for `launch`."""
        assert self.composer is not None
        composed = self.composer.compose_job(overrides)
        self._validated.setdefault(tuple(overrides), []).append(composed)
        keep_out_of_gc()  # the job's config
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

    def task_configs(self, job_overrides: Sequence[Sequence[str]]) -> list[DictConfig]:
        """Each job's task config (the config without `hydra`), composed as a launch composes it
        (the sweeper's validation pass reused), for planning where jobs run; nothing is written."""
        assert self.composer is not None
        configs = []
        with interpolations_parsed_once():
            for overrides in job_overrides:
                validated = self._validated.get(tuple(overrides))
                composed = validated.pop(0) if validated else None
                configs.append((composed or self.composer.compose_job(overrides)).task_config())
        self._validated.clear()
        return configs

    def _launch_jobs(
        self, numbered: Sequence[tuple[int, Sequence[str]]], list_jobs: bool = True
    ) -> list[JobReturn]:
        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None and self.composer is not None
        config = self.config
        job_logging = JobLogging(reuse=self.reuse_logging)
        job_logging.reset(config.hydra.hydra_logging, config.hydra.verbose)
        Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        before = dict(self.composer.stats)
        launch = _Launch(self.hydra_context, self.task_function, job_logging)
        try:
            jobs = [self.prepare(launch, overrides, idx) for idx, overrides in numbered]
        finally:
            self._validated.clear()
        runner = find_batch_runner(self.task_function) if self.use_batch_runner else None
        launch.workers = resolve_workers(self.workers, len(jobs))
        self.stats = LaunchStats(
            workers=launch.workers,
            jobs=len(jobs),
            batch_runner=runner is not None,
            composed_fast=self.composer.stats["fast"] - before["fast"],
            composed_full=self.composer.stats["full"] - before["full"],
            base_compositions=self.composer.stats["bases"] - before["bases"],
        )
        sweep_dir = Path(str(config.hydra.sweep.dir))
        listed = _list_jobs(sweep_dir, jobs) if list_jobs else sweep_dir / LAUNCH_LOG
        if runner is None:
            log.info(f"Launching {len(jobs)} jobs locally, one at a time (listed in {listed})")
        try:
            if runner is None and launch.workers > 1:
                self._run_batch(_one_by_one_in_workers, jobs)
            elif runner is None:
                for job in jobs:
                    job.run()
            else:
                self._run_batch(runner, jobs)
        finally:
            self.stats.logging_configures = job_logging.full_configures
            job_logging.reset(config.hydra.hydra_logging, config.hydra.verbose)
        keep_out_of_gc()  # what the jobs left, their returns included
        return [job.result for job in jobs]  # type: ignore[misc]

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


def _list_jobs(sweep_dir: Path, jobs: Sequence[PreparedJob]) -> Path:
    """Append the launch and its jobs to the sweep's LAUNCH_LOG (a search launches many times),
    in the words of Hydra's own launch list; returns the file."""
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    lines = [f"[{stamp}] Launching {len(jobs)} jobs locally\n"]
    lines += [
        f"[{stamp}] \t#{job.idx} : {' '.join(filter_overrides(job.overrides))}\n" for job in jobs
    ]
    path = sweep_dir / LAUNCH_LOG
    with open(path, "a") as file:
        file.writelines(lines)
    return path
