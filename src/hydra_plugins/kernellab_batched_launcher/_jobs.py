"""A batch's jobs once composed and placed (`PreparedJob`), their JobReturns, and the state the jobs
of one launch share (`_Launch`).

The per-job plumbing reproduces `hydra.core.utils.run_job` (what the basic launcher calls) step for
step: HydraConfig, the job dir, `hydra.job.chdir`, the job's log file,
`.hydra/{config,hydra,overrides}.yaml`, `hydra.job.env_set`, the `on_job_start`/`on_job_end`
callbacks and the JobReturn. `_core` makes these objects; batch runners drive them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import dedent
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, env_override
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from ._compose import ComposedJob
from ._logging import JobLogging
from ._private import deprecation_warning, flush_loggers


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
    #: set in the launcher's process on a job a worker process never finished: why (the worker's
    #: end), for the runner's `Sharing.after` to record
    lost: str | None = None

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
        """The worker processes this launch gives the batch the runner was handed
        (`hydra.launcher.workers`, resolved): above 1 only for a runner without `Sharing`, which
        may split the batch over them itself with `run_in_workers`."""
        return self._launch.workers if self._launch else 1

    @property
    def worker(self) -> tuple[int, int] | None:
        """`(k, n)` when this job runs in worker process k (from 0) of the n the launcher forked
        for the batch (with a runner's `Sharing`, or without a runner): its process's share of
        the batch, composed there. The launcher's process gathers the results and ends the sweep.
        None: the launcher's own process."""
        return self._launch.worker if self._launch else None

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


class GatheredReturn(JobReturn):
    """The JobReturn of a job that ran in a worker process, made in the launcher's process from
    what the worker sent (`result_of`); its `cfg` and `hydra_cfg` are composed here when first
    read (`compose`: the job's PreparedJob), as the worker composed them: sweepers read the value,
    rarely the configs, and composing every job again would undo what the workers saved."""

    def __init__(
        self,
        compose: Callable[[], PreparedJob],
        status: JobStatus,
        value: Any,
        overrides: list[str],
        working_dir: str,
        task_name: Any,
    ) -> None:
        super().__init__(overrides=overrides, working_dir=working_dir, task_name=task_name)
        self.__dict__["_compose"] = compose
        self.status = status
        self.return_value = value

    def _composed(self) -> None:
        compose = self.__dict__.pop("_compose", None)
        if compose is not None:
            job = compose()
            if self.__dict__.get("_cfg") is None:
                self.__dict__["_cfg"] = job.task_cfg
            if self.__dict__.get("_hydra_cfg") is None:
                self.__dict__["_hydra_cfg"] = OmegaConf.masked_copy(job.config, "hydra")

    @property  # type: ignore[override]
    def cfg(self) -> DictConfig | None:
        self._composed()
        return self.__dict__.get("_cfg")

    @cfg.setter
    def cfg(self, value: DictConfig | None) -> None:
        self.__dict__["_cfg"] = value

    @property  # type: ignore[override]
    def hydra_cfg(self) -> DictConfig | None:
        self._composed()
        return self.__dict__.get("_hydra_cfg")

    @hydra_cfg.setter
    def hydra_cfg(self, value: DictConfig | None) -> None:
        self.__dict__["_hydra_cfg"] = value


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
        self.workers = 1  # resolved hydra.launcher.workers for the batch handed to the runner
        self.worker: tuple[int, int] | None = None  # in a forked worker: (k, n)
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
