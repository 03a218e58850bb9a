"""Hydra callbacks (registered in conf/config.yaml under `hydra.callbacks`).

`Preflight` refuses what would fail or half-write a run or sweep before anything is created;
`SweepReport` summarises every multirun and makes it exit non-zero when a job failed or was
interrupted.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shlex
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from kernellab.artifacts import RunLock, ensure_no_run, ensure_writable, locked_runs
from kernellab.errors import EXIT_JOBS_FAILED, ConfigError, UserError, exit_with_error
from kernellab.runtime import child_processes, joblib_workers, jobs_run_in_this_process
from kernellab.signals import DEFERRED, SWEEP, exit_status

log = logging.getLogger("kernellab")

_MISSING = object()


class Preflight(Callback):
    """Refuses a bad run or sweep before Hydra creates its dir: nothing is written."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from kernellab.train import check  # imports torch: not before it is needed

        def checks() -> None:
            run_dir = str(config.hydra.run.dir).strip()
            if not run_dir:
                raise ConfigError("hydra.run.dir", run_dir, "must be a directory path")
            check(config, Path(run_dir))
            ensure_writable(Path(run_dir))
            if not config.trainer.resume:
                ensure_no_run(Path(run_dir))
            RunLock(Path(run_dir)).release()  # another process training there: refused now

        self._guard(checks)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        def checks() -> None:
            _check_sweep(config)
            ensure_writable(Path(config.hydra.sweep.dir))

        self._guard(checks)
        _plain_optuna_logs_off_terminal(config)

    @staticmethod
    def _guard(checks) -> None:
        try:
            checks()
        except UserError as error:
            exit_with_error(error)


def _check_sweep(config: DictConfig) -> None:
    """Refuse an empty sweep, a key that is not in the config, and n_jobs < 1."""
    n_jobs = config.hydra.launcher.get("n_jobs")
    if n_jobs is not None and joblib_workers(n_jobs) < 1:
        raise ConfigError(
            "hydra.launcher.n_jobs", n_jobs, "must be >= 1 (or -1 for all cores, as in joblib)"
        )
    parser = OverridesParser.create()
    for override in parser.parse_overrides(list(config.hydra.overrides.task)):
        is_group = override.key_or_group in config.hydra.runtime.choices  # e.g. optim=adam
        if is_group or override.is_add() or override.is_delete() or override.is_force_add():
            continue
        key, value = override.input_line.split("=", 1)
        if not _in_config(config, override.key_or_group):
            raise ConfigError(key, value, "is not a config key (see `python train.py --cfg job`)")
        if override.is_sweep_override() and not list(override.sweep_iterator()):
            raise ConfigError(key, value, "the sweep has no values")
    sweeper = config.hydra.sweeper
    for key, space in (sweeper.get("params") or {}).items():
        if not _in_config(config, key):
            raise ConfigError(
                f"hydra.sweeper.params.{key}", space, "searches a key that is not in the config"
            )
    for key in ("n_trials", "n_jobs"):  # Optuna's trial count and batch size
        if sweeper.get(key) is not None and sweeper[key] < 1:
            raise ConfigError(f"hydra.sweeper.{key}", sweeper[key], "must be >= 1")


def _plain_optuna_logs_off_terminal(config: DictConfig) -> None:
    """Optuna 2.x logs through colorlog with colour codes even into a file or a pipe.

    colorlog leaves them out when its formatter knows the stream is not a terminal: tell it the
    stream Optuna's handler writes to (stderr). On a terminal the lines stay coloured.
    """
    if "optuna" not in str(config.hydra.sweeper.get("_target_", "")):
        return
    import optuna  # noqa: F401  (the sweeper imports it next; this sets up Optuna's handler)

    for handler in logging.getLogger("optuna").handlers:
        formatter = handler.formatter
        if isinstance(handler, logging.StreamHandler) and getattr(formatter, "stream", 0) is None:
            formatter.stream = handler.stream


def swept_keys(hydra_cfg: DictConfig) -> tuple[str, ...]:
    """The config keys this run's sweep varies, the same in every job; for a single run, the keys
    its command line overrides. A group override counts by its group name (`optim=adam`: `optim`).

    A sweep's keys are its sweeper's search space (Optuna's `hydra.sweeper.params`) and the
    sweep overrides of its command line, from `<sweep dir>/multirun.yaml` (each job's own
    overrides hold single values only).
    """
    from kernellab.report import MULTIRUN_YAML

    parser = OverridesParser.create()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        overrides = parser.parse_overrides(list(hydra_cfg.overrides.task))
        return tuple(sorted({o.key_or_group for o in overrides}))
    keys = set(hydra_cfg.sweeper.get("params") or {})
    multirun_yaml = Path(hydra_cfg.sweep.dir) / MULTIRUN_YAML
    if multirun_yaml.exists():
        task = OmegaConf.load(multirun_yaml).hydra.overrides.task
        keys |= {
            o.key_or_group for o in parser.parse_overrides(list(task)) if o.is_sweep_override()
        }
    return tuple(sorted(keys))


def _in_config(config: DictConfig, key: str) -> bool:
    """Whether `key` names a node of the config (a null value counts; a missing key doesn't)."""
    return OmegaConf.select(config, key, default=_MISSING) is not _MISSING


class SweepReport(Callback):
    """Writes summary.csv/.md/.png into the sweep dir and prints the best job; ends the sweep on
    SIGINT/SIGTERM with every job recorded."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Every sweep dir gets the `multirun.yaml` Hydra's basic sweeper writes (Optuna's doesn't):
        what marks a dir as a sweep for `python -m kernellab.report`, and the sweep's command line."""
        from kernellab.report import MULTIRUN_YAML

        sweep_dir = Path(config.hydra.sweep.dir)
        multirun_yaml = sweep_dir / MULTIRUN_YAML
        if not multirun_yaml.exists():
            multirun_yaml.parent.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(config, multirun_yaml)  # as the basic sweeper does: unresolved
        if jobs_run_in_this_process(config.hydra.launcher):
            SWEEP.install(runs_sweep=True)  # the running job stops; the next is `not started`
        else:
            SWEEP.install(runs_sweep=True, on_signal=lambda name: _stop_workers(sweep_dir, name))
            if "joblib" in str(config.hydra.launcher.get("_target_", "")):
                _joblib_workers_defer_signals()
        if str(config.hydra.launcher.get("_target_", "")).endswith(".LocalLauncher"):
            _submitit_controllers_ignore_ctrl_c()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if SWEEP.requested:  # a signal came after the last job had started
            end_sweep(sweep_dir, SWEEP.signal_name)
        problems = finish_sweep(sweep_dir)
        for problem in problems[:-1]:
            print(f"error: {problem}", file=sys.stderr)
        if problems:
            exit_with_error(problems[-1], EXIT_JOBS_FAILED)


FORWARD_AFTER_S = 2.0
# ... and again as long as a job trains: a job still starting when the first came (submitit's
# ignores SIGTERM until it trains, and its controller drops one that comes before the job starts)
# would otherwise train to its end, the sweep waiting for it. A job already stopping takes a repeat
# as nothing (see signals.StopRequest: its previous handler, the sweep's or submitit's, notes it).
FORWARD_AGAIN_S = 2.0
# A worker signalled while it starts a job takes the job's lock a moment later, then saves it
SETTLE_S = 1.0


def _stop_workers(sweep_dir: Path, signal_name: str) -> None:
    """The sweep's own process, its jobs running in others (joblib's workers, submitit's): wait
    until every running job has saved its checkpoint, then end the sweep.

    A Ctrl-C or SLURM's scancel reaches every process; a signal sent to this process alone is
    passed on (as SIGTERM, which submitit's local controller forwards) after FORWARD_AFTER_S,
    and every FORWARD_AGAIN_S after that while a job holds its lock.
    For SETTLE_S it waits even with no job locked: a job being started is about to be.
    """
    log.warning(
        "%s received: the running jobs save their checkpoints, then the sweep ends", signal_name
    )
    now = time.monotonic()
    forward_at, settled_at = now + FORWARD_AFTER_S, now + SETTLE_S
    while (children := child_processes()) and (
        locked_runs(sweep_dir) or time.monotonic() < settled_at
    ):
        if time.monotonic() >= forward_at:
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            forward_at = time.monotonic() + FORWARD_AGAIN_S
        time.sleep(0.05)
    end_sweep(sweep_dir, signal_name)


def _joblib_workers_defer_signals() -> None:
    """joblib's (loky's) workers start with SIGINT and SIGTERM blocked, until their first job
    installs `signals.SWEEP` (whose `install` unblocks them: one that came meanwhile is handled then).

    A Ctrl-C that reached a worker before that (starting, unpickling its first job, which imports
    torch: seconds on a busy machine) raised KeyboardInterrupt in loky's own loop: the worker
    exited, loky took its pool for broken and SIGKILLed every other worker, so a job that was
    training lost everything, checkpoint included (`missing` in the summary). The mask is set
    around loky's fork+exec of a worker only (the child inherits it); around the whole spawn it
    would not hold: starting loky's resource tracker unblocks both signals on the way."""
    from joblib.externals.loky.backend import fork_exec as module

    fork_exec = module.fork_exec
    if getattr(fork_exec, "defers_signals", False):
        return

    @functools.wraps(fork_exec)
    def fork_exec_deferring_signals(*args: Any, **kwargs: Any) -> Any:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, DEFERRED)
        try:
            return fork_exec(*args, **kwargs)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    fork_exec_deferring_signals.defers_signals = True  # type: ignore[attr-defined]
    module.fork_exec = fork_exec_deferring_signals


def _submitit_controllers_ignore_ctrl_c() -> None:
    """submitit_local starts a controller process per job, which starts the job. On Ctrl-C a
    controller raises KeyboardInterrupt, prints its traceback and SIGKILLs its job a second later,
    whatever the job is writing. Started with SIGINT ignored (inherited), it waits for its job,
    which handles Ctrl-C itself; SIGTERM still reaches the job through it."""
    from submitit.local import local

    start_controller = local.start_controller
    if getattr(start_controller, "ignores_ctrl_c", False):
        return

    @functools.wraps(start_controller)
    def start_ignoring_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return start_controller(*args, **kwargs)
        finally:
            signal.signal(signal.SIGINT, previous)

    start_ignoring_ctrl_c.ignores_ctrl_c = True  # type: ignore[attr-defined]
    local.start_controller = start_ignoring_ctrl_c


def end_sweep(sweep_dir: Path, signal_name: str) -> NoReturn:
    """After SIGINT/SIGTERM: write the summary, say what to do next, exit 130/143."""
    for problem in finish_sweep(sweep_dir):
        print(f"error: {problem}", file=sys.stderr)
    sys.exit(exit_status(signal_name))


def finish_sweep(sweep_dir: Path) -> list[str]:
    """Write the sweep's summary and print its best job; what went wrong, one line each (failed
    jobs, then what was left unfinished and how to continue it), or nothing."""
    from kernellab.report import best_line, write_report

    report = write_report(sweep_dir)
    log.info(best_line(report))
    log.info("summary: %s", sweep_dir / "summary.md")
    problems = []
    if report.failed:
        problems.append(f"{report.failed} job(s) failed: see {sweep_dir / 'summary.md'}")
    running = sum(row.status == "running" for row in report.rows)
    if running:  # SLURM's jobs don't end with the process that submitted them
        problems.append(f"{running} job(s) still running on their own (scancel stops SLURM jobs)")
    unfinished = report.unfinished
    if report.continue_with:
        counts = Counter(row.status for row in unfinished)
        said = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        problems.append(f"{said}: continue the sweep with {report.continue_with}")
    else:  # Optuna's trials can't be replayed: each interrupted one is continued alone
        problems += [_interrupted(row) for row in unfinished if row.status == "interrupted"]
    return problems


def _interrupted(row: Any) -> str:
    """One line for an interrupted job: how to continue it."""
    from kernellab.slurm import resume_override

    # a search preset would make the command a new search: the job's own values are enough
    overrides = [o for o in row.overrides if not o.startswith("hparams_search=")]
    command = shlex.join(["python", "train.py", resume_override(row.dir), *overrides])
    return f"{row.name} ({row.label}) was interrupted: continue it with {command}"
