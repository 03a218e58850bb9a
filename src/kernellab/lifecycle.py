"""A job's and a sweep's lifecycle, in one place: where a job starts, ends, is recorded and is
summarised, and where a sweep is checked, started and ended.

A job: `check_job` (values, device, memory, resume) → already finished (`trainer.resume=auto`)?
its recorded `objective` → train (kernellab.training) → `report` its summary lines → its
`objective` for the sweeper. A job that fails is `record_failure`d, one the sweep's stop came
before `record_not_started`; both give the sweeper inf.

A sweep: `before_sweep` (refuse a bad one: the checks are kernellab.preflight's, as are a single
run's command-line checks in `check_run`) → `start_sweep` (multirun.yaml, the stop on a signal)
→ its jobs → `end_multirun` (summary, exit 1 if a job failed); after SIGINT/SIGTERM `end_sweep`
(summary, what to do next, exit 130/143), waiting first for jobs running in other processes
(`_stop_workers`).

The adapters over this module, none of which imports another: kernellab.hydra_job (Hydra's task
function: one job, every launcher), kernellab.batch_runner (`hydra/launcher=batched`: a batch as
few programs), kernellab.slurm with hydra_plugins.kernellab_slurm (a SLURM job: requeue,
continue), kernellab.callbacks (Hydra's callbacks). docs/architecture.md draws the paths.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import signal
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from kernellab.console import number, numbers
from kernellab.errors import EXIT_JOBS_FAILED, ConfigError, UserError, exit_with_error
from kernellab.paths import MULTIRUN_YAML, resume_override
from kernellab.preflight import (
    check_additions,
    check_study,
    check_sweep,
    check_sweep_dir,
    command_line_overrides,
)
from kernellab.rundir import RunLock, ensure_no_run, ensure_writable, locked_runs, write_metrics
from kernellab.runtime import child_processes, jobs_run_in_this_process
from kernellab.signals import SWEEP, exit_status

if TYPE_CHECKING:
    from kernellab.checks import Checked
    from kernellab.results import TrainResult

log = logging.getLogger("kernellab")

# ---- a job ----------------------------------------------------------------------------------------


def check_job(cfg: Any, run_dir: Path | None) -> Checked:
    """Everything training would refuse, before anything is written: the values first, before
    torch is imported (kernellab.validation: a refusal answers at once), then the rest with torch
    (kernellab.checks: device, memory, pictures, optimizer, resume)."""
    from kernellab.resolved import resolved
    from kernellab.validation import validate

    values = resolved(cfg)
    geometry = validate(values)
    from kernellab.checks import check

    return check(values, run_dir, geometry)


def check_run(config: DictConfig) -> None:
    """A single run, before Hydra creates its dir: its values, its dir writable and free."""
    check_additions(config)
    check_study(config)
    run_dir = str(config.hydra.run.dir).strip()
    if not run_dir:
        raise ConfigError("hydra.run.dir", run_dir, "must be a directory path")
    check_job(config, Path(run_dir))
    ensure_writable(Path(run_dir))
    if not config.trainer.resume:
        ensure_no_run(Path(run_dir))
    RunLock(Path(run_dir)).release()  # another process training there: refused now


def objective(record: Mapping[str, Any], name: str = "final_loss") -> float:
    """What a sweeper minimises (`objective`: final_loss or kernel_error), from a run's result or
    its metrics.json; inf when the run has none (it diverged)."""
    value = None if record["status"] == "diverged" else record.get(name)
    return math.inf if value is None else value


def summary_lines(result: TrainResult) -> list[str]:
    """A trained job's last lines: its kernel, bias and distance from the target."""
    lines = [f"weight: {numbers(result.weight)}"]
    if result.bias is not None:
        lines.append(f"bias: {numbers(result.bias)}")
    return [*lines, f"kernel_error: {number(result.kernel_error)}"]


def report(result: TrainResult, logger: logging.Logger = log) -> None:
    for line in summary_lines(result):
        logger.info(line)


def record_not_started(run_dir: Path) -> None:
    write_metrics(run_dir, {"status": "not started", "final_loss": None})


def record_failure(run_dir: Path, error: Exception) -> float:
    """A failed sweep job: metrics.json says why (if its dir can still be written); the sweeper
    sees inf."""
    message = failure_line(error)
    log.error("error: %s", message)
    try:
        write_metrics(run_dir, {"status": "failed", "error": message, "final_loss": None})
    except OSError as lost:  # the dir is gone or the disk full: the summary lists it as missing
        log.error("error: %s: the failure could not be recorded (%s)", run_dir, failure_line(lost))
    return math.inf


def failure_line(error: Exception) -> str:
    """A job's failure in one line: a user's mistake as said; a file the disk or a vanished dir
    wouldn't take (not a bug: no traceback) by its reason and path; else the exception."""
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return f"{type(error).__name__}: {error}"


def in_submitit_job() -> bool:
    return "SUBMITIT_EXECUTOR" in os.environ


def swept_keys(hydra_cfg: DictConfig) -> tuple[str, ...]:
    """The config keys this run's sweep varies, the same in every job; for a single run, the keys
    its command line overrides. A group override counts by its group name (`optim=adam`: `optim`).

    A sweep's keys are its sweeper's search space (Optuna's `hydra.sweeper.params`) and the
    sweep overrides of its command line, from `<sweep dir>/multirun.yaml` (each job's own
    overrides hold single values only).
    """
    parser = OverridesParser.create()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        overrides = parser.parse_overrides(command_line_overrides(hydra_cfg))
        return tuple(sorted({o.key_or_group for o in overrides}))
    keys = set(hydra_cfg.sweeper.get("params") or {})
    multirun_yaml = Path(hydra_cfg.sweep.dir) / MULTIRUN_YAML
    if multirun_yaml.exists():
        task = OmegaConf.load(multirun_yaml).hydra.overrides.task
        keys |= {
            o.key_or_group
            for o in parser.parse_overrides(OmegaConf.to_container(task))
            if o.is_sweep_override()
        }
    return tuple(sorted(keys))


# ---- a sweep --------------------------------------------------------------------------------------


def before_sweep(config: DictConfig) -> None:
    """Refuse a bad sweep before Hydra creates its dir; then Optuna's log lines, if it searches,
    go uncoloured to a file or a pipe."""
    check_sweep(config)
    check_sweep_dir(config)
    ensure_writable(Path(config.hydra.sweep.dir))
    if "optuna" in str(config.hydra.sweeper.get("_target_", "")):
        from kernellab._optuna_private import plain_logs_off_terminal

        plain_logs_off_terminal()


_running_sweep: list[Path] = []  # the sweep this process runs, once started: for end_broken_sweep


def start_sweep(config: DictConfig) -> None:
    """Every sweep dir gets the `multirun.yaml` Hydra's basic sweeper writes (Optuna's doesn't):
    what marks a dir as a sweep for `python -m kernellab.report`, and the sweep's command line.
    From here a signal ends the sweep with every job recorded."""
    sweep_dir = Path(config.hydra.sweep.dir)
    _running_sweep[:] = [sweep_dir]
    multirun_yaml = sweep_dir / MULTIRUN_YAML
    if not multirun_yaml.exists():
        multirun_yaml.parent.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, multirun_yaml)  # as the basic sweeper does: unresolved
    if jobs_run_in_this_process(config.hydra.launcher):
        SWEEP.install(runs_sweep=True)  # the running job stops; the next is `not started`
    elif _on_slurm(config.hydra.launcher):
        SWEEP.install(runs_sweep=True, on_signal=lambda name: _leave_to_slurm(sweep_dir, name))
    else:
        # submitit_local's children are one controller per job, alive exactly as long as it;
        # joblib's are a pool of workers that outlive their jobs
        per_job = str(config.hydra.launcher.get("_target_", "")).endswith(".LocalLauncher")
        SWEEP.install(
            runs_sweep=True, on_signal=lambda name: _stop_workers(sweep_dir, name, per_job)
        )
        if "joblib" in str(config.hydra.launcher.get("_target_", "")):
            from kernellab._joblib_private import workers_defer_signals

            workers_defer_signals()
    if str(config.hydra.launcher.get("_target_", "")).endswith(".LocalLauncher"):
        from kernellab._submitit_private import controllers_ignore_ctrl_c

        controllers_ignore_ctrl_c()


def end_multirun(config: DictConfig) -> None:
    """The sweep's last job has returned: the summary; exit 1 if a job failed or is unfinished."""
    from kernellab.report import ReportError

    sweep_dir = Path(config.hydra.sweep.dir)
    if SWEEP.requested:  # a signal came after the last job had started
        end_sweep(sweep_dir, SWEEP.signal_name)
    try:
        if not (sweep_dir / MULTIRUN_YAML).is_file():  # deleted while the sweep ran: what's left
            sweep_dir.mkdir(parents=True, exist_ok=True)  # is summarised, not lost
            OmegaConf.save(config, sweep_dir / MULTIRUN_YAML)
        problems = finish_sweep(sweep_dir)
    except (OSError, ReportError) as error:
        exit_with_error(f"{sweep_dir}: no summary could be written: {error}", EXIT_JOBS_FAILED)
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


def _stop_workers(sweep_dir: Path, signal_name: str, child_per_job: bool) -> None:
    """The sweep's own process, its jobs running in others (joblib's workers, submitit's): wait
    until every running job has saved its checkpoint, then end the sweep.

    A Ctrl-C or SLURM's scancel reaches every process; a signal sent to this process alone is
    passed on (as SIGTERM, which submitit's local controller forwards) after FORWARD_AFTER_S,
    and every FORWARD_AGAIN_S after that while a job holds its lock.
    With a child per job (`child_per_job`: submitit's controllers) it waits until every child
    has exited: a job still starting (importing torch: a minute on a loaded machine) takes its
    lock later, and would train on, recorded `not started`, after the sweep ended. A pool's
    workers outlive their jobs: it waits while a job is locked, and for SETTLE_S even with none
    (a job being started is about to be).
    """
    log.warning(
        "%s received: the running jobs save their checkpoints, then the sweep ends", signal_name
    )
    now = time.monotonic()
    forward_at, settled_at = now + FORWARD_AFTER_S, now + SETTLE_S
    while (children := child_processes()) and (
        child_per_job or locked_runs(sweep_dir) or time.monotonic() < settled_at
    ):
        if time.monotonic() >= forward_at:
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            forward_at = time.monotonic() + FORWARD_AGAIN_S
        time.sleep(0.05)
    end_sweep(sweep_dir, signal_name)


def _on_slurm(launcher: Any) -> bool:
    """Whether the sweep's jobs are SLURM's (hydra/launcher=slurm, slurm_batched, submitit_slurm)."""
    target = str(launcher.get("_target_", ""))
    return "kernellab_slurm" in target or target.endswith(".SlurmLauncher")


def _leave_to_slurm(sweep_dir: Path, signal_name: str) -> None:
    """The submitting process of a SLURM sweep: its jobs are the cluster's and go on; the summary
    of what they have done so far at once (those still queued or running are `running`, with the
    `scancel` that stops them), then exit 130/143."""
    log.warning(
        "%s received: summarising the sweep now; its jobs on SLURM go on (scancel stops them)",
        signal_name,
    )
    end_sweep(sweep_dir, signal_name)


def end_broken_sweep(error: BaseException) -> None:
    """A launcher raised in the middle of a sweep (a joblib worker killed, its dir deleted): the
    summary of what is there, one line saying what broke, exit 1. Returns when no sweep runs."""
    if not _running_sweep:
        return
    sweep_dir = _running_sweep[0]
    problems = []
    try:
        problems = finish_sweep(sweep_dir)
    except Exception as report_error:  # e.g. the sweep dir itself is gone
        problems = [f"no summary could be written in {sweep_dir} ({report_error})"]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
    exit_with_error(f"the sweep ended early: {type(error).__name__}: {reason}", EXIT_JOBS_FAILED)


def end_sweep(sweep_dir: Path, signal_name: str) -> NoReturn:
    """After SIGINT/SIGTERM: write the summary, say what to do next, exit 130/143."""
    for problem in finish_sweep(sweep_dir):
        print(f"error: {problem}", file=sys.stderr)
    sys.exit(exit_status(signal_name))


def finish_sweep(sweep_dir: Path) -> list[str]:
    """Write the sweep's summary and print its best job; what went wrong, one line each (failed
    jobs, then what was left unfinished and how to continue it), or nothing."""
    from kernellab.report import write_report
    from kernellab.summary_tables import headline

    report = write_report(sweep_dir)
    log.info(headline(report))
    log.info("summary: %s", sweep_dir / "summary.md")
    problems = []
    if report.failed:
        problems.append(f"{report.failed} job(s) failed: see {sweep_dir / 'summary.md'}")
    running = sum(row.status == "running" for row in report.rows)
    if report.still_running:  # SLURM's jobs don't end with the process that submitted them
        problems.append(report.still_running)
    elif running:  # a job dir locked by a process of its own
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
    # a search preset would make the command a new search: the job's own values are enough
    overrides = [o for o in row.overrides if not o.startswith("hparams_search=")]
    command = shlex.join(["python", "train.py", resume_override(row.dir), *overrides])
    return f"{row.name} ({row.label}) was interrupted: continue it with {command}"
