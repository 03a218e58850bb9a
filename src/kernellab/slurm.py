"""kernellab on SLURM (`hydra/launcher=slurm`): time limits, requeued jobs, cancelled jobs, refusals.

The launcher (`hydra_plugins.kernellab_slurm.launcher.KernellabSlurmLauncher`, Hydra's submitit
SLURM launcher with these additions) calls the functions here.

Inside a job:

- SLURM sends **SIGUSR2** `signal_delay_s` before the time limit: the preset asks for it
  (`--signal=USR2@…`, submitit's default) and submitit's in-job handler is bound to it. kernellab's
  `StopRequest` takes it over while training, so the current step finishes, TensorBoard is flushed
  and checkpoint.pt and metrics.json (`interrupted`, `SIGUSR2`) are written; then
  `requeue_after_time_limit` hands over to submitit's own handler, which requeues the job
  (`scontrol requeue`, counted against `max_num_timeout`) or, out of requeues, ends it.
- A requeued job (`SLURM_RESTART_COUNT` > 0) continues in its own dir: `with_resume` adds
  `trainer.resume=auto` to its overrides (its checkpoint, or a fresh start if it saved none). The
  same happens after a preemption that requeues the job (SIGTERM: kernellab saves, SLURM requeues).

On the submitting side:

- `result_or_inf`: a job that ends without submitit's result (scancel, a kill, out of requeues)
  gives the sweeper inf and one log line, instead of an exception that ends the sweep; its
  metrics.json (`interrupted`, or none at all: `missing`) is what the sweep summary shows.
- `refused`: sbatch refusing the jobs becomes one line with SLURM's reason (exit 2, no traceback),
  and a sweep dir holding nothing but Hydra's and submitit's files is removed.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn

from kernellab.errors import UserError
from kernellab.paths import AUTO_RESUME

log = logging.getLogger("kernellab")

# The signal SLURM sends before the time limit: the preset asks for it, submitit handles it, and
# kernellab's StopRequest stops on it. submitit reads its name from this variable (default USR2).
TIME_LIMIT_SIGNAL = signal.SIGUSR2
SUBMITIT_SIGNAL_VARIABLE = "SUBMITIT_PREEMPT_SIGNAL"
# the status cli.run exits with after that signal (the shell's convention: 128 + its number)
EXIT_TIME_LIMIT = 128 + TIME_LIMIT_SIGNAL

SWEEP_FILES = {"multirun.yaml", ".submitit"}  # what a sweep dir holds before any job has run


class SubmissionRefused(UserError):
    """sbatch refused the jobs: SLURM's reason, in one line."""


def check_submission() -> None:
    """What sbatch can't tell: SLURM's commands are here, and the time-limit signal submitit asks
    for is the one kernellab saves a checkpoint on."""
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise UserError(
            "hydra/launcher=slurm: SLURM's sbatch and srun are not on this machine's PATH "
            "(hydra/launcher=submitit_local runs the jobs here)"
        )
    name = os.environ.get(SUBMITIT_SIGNAL_VARIABLE, "USR2")
    if f"SIG{name}" != TIME_LIMIT_SIGNAL.name:
        raise UserError(
            f"{SUBMITIT_SIGNAL_VARIABLE}={name}: hydra/launcher=slurm has SLURM send "
            f"{TIME_LIMIT_SIGNAL.name} before the time limit, the signal kernellab saves a "
            f"checkpoint on; unset {SUBMITIT_SIGNAL_VARIABLE}"
        )


# ---- inside a job ---------------------------------------------------------------------------------


def restart_count() -> int:
    """How many times SLURM has requeued this job (0 on its first run or outside SLURM)."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def with_resume(overrides: Sequence[str]) -> list[str]:
    """A requeued job's overrides: `trainer.resume=auto`, so it continues from the checkpoint its
    own dir holds, or starts over if it had saved none (see kernellab.checks.check)."""
    overrides = list(overrides)
    if restart_count() == 0:
        return overrides
    log.info("requeued (restart %d): continuing in its own dir", restart_count())
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "trainer.resume"]
    return [*kept, f"trainer.resume={AUTO_RESUME}"]


@contextmanager
def requeue_after_time_limit() -> Iterator[None]:
    """Around a job: after kernellab has stopped and saved on the time-limit signal, let
    submitit's handler for that signal (installed before the job started) requeue the job.

    Called from a normal frame rather than the signal handler, submitit's handler no longer
    interrupts a training step: it dumps the job for its next run, runs `scontrol requeue` and
    exits; out of requeues (`max_num_timeout`) it raises, and the job ends with its checkpoint.
    """
    submitit_handler = signal.getsignal(TIME_LIMIT_SIGNAL)
    try:
        yield
    except SystemExit as stop:
        if stop.code == EXIT_TIME_LIMIT and _is_submitit_handler(submitit_handler):
            submitit_handler(TIME_LIMIT_SIGNAL, None)
        raise


def _is_submitit_handler(handler: Any) -> bool:
    from submitit.core.job_environment import SignalHandler

    return isinstance(getattr(handler, "__self__", None), SignalHandler)


RESOURCES_FILE = "{job_id}_resources.json"  # in the task's submitit folder, by its log files


def record_task_resources(jobs: int) -> None:
    """In a slurm_batched task: its peak RSS (this process's, and its children's: workers, if it
    forked any) and its jobs, next to its submitit logs; a requeued task keeps the highest peak."""
    import json
    import resource

    import submitit

    from kernellab.rundir import atomic_write

    env = submitit.JobEnvironment()
    path = Path(env.paths.folder) / RESOURCES_FILE.format(job_id=env.job_id)
    mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    before = _read_json(path)
    record = {
        "peak_rss_mib": round(max(mine, before.get("peak_rss_mib", 0.0)), 1),
        "children_peak_rss_mib": round(max(children, before.get("children_peak_rss_mib", 0.0)), 1),
        "jobs": jobs,
        "runs": before.get("runs", 0) + 1,
    }
    try:
        atomic_write(path, json.dumps(record).encode())
    except OSError as error:  # a full disk: the jobs' own files matter more
        log.warning("%s: could not record the task's peak RSS (%s)", path, error)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def task_resources(tasks: Sequence[Any]) -> list[dict[str, Any]]:
    """What each submitted task recorded (`record_task_resources`); none for a task that didn't."""
    found = [
        _read_json(Path(task.paths.folder) / RESOURCES_FILE.format(job_id=task.job_id))
        for task in tasks
    ]
    return [record for record in found if "peak_rss_mib" in record]


def resources_line(tasks: Sequence[Any]) -> str:
    """One log line: the tasks' peak RSS, largest and median, and this process's."""
    import resource
    import statistics

    mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peaks = [r["peak_rss_mib"] + r.get("children_peak_rss_mib", 0.0) for r in task_resources(tasks)]
    if not peaks:
        return f"peak RSS: this process {mine:.0f} MiB; no task recorded its own"
    return (
        f"peak RSS of {len(peaks)} SLURM task(s): max {max(peaks):.0f} MiB, median "
        f"{statistics.median(peaks):.0f} MiB (workers included); this process {mine:.0f} MiB"
    )


# ---- on the submitting side ---------------------------------------------------------------------------


def result_or_inf(job: Any, job_num: int, overrides: Sequence[str]) -> Any:
    """The job's JobReturn; for a job that ended without one, a JobReturn with objective inf."""
    result = _result_or_none(job, f"job {job_num} ({' '.join(overrides)})")
    return result[0] if result is not None else _inf_return(overrides)


def task_results_or_inf(
    task: Any, jobs: Sequence[tuple[int, Sequence[str]]], output_subdir: str | None = ".hydra"
) -> list[Any]:
    """The JobReturns of a slurm_batched task's `jobs` (number, overrides), from the outcomes it
    returned (hydra_plugins.kernellab_batched_launcher.result_of); a task that ended without them
    (scancel, a kill, out of requeues) gives each of its jobs inf (their dirs say what happened).
    Their `cfg` and `hydra_cfg` are read from the job's `output_subdir` when first asked for."""
    from hydra.core.utils import JobStatus

    numbers = f"{jobs[0][0]}-{jobs[-1][0]}" if len(jobs) > 1 else str(jobs[0][0])
    result = _result_or_none(task, f"jobs {numbers} ({len(jobs)} job(s))")
    outcomes = {outcome[0]: outcome for outcome in (result[0] if result is not None else [])}
    returns = []
    for num, overrides in jobs:
        if num not in outcomes:
            returns.append(_inf_return(overrides))
            continue
        _, status, value, working_dir, task_name = outcomes[num]
        ret = SavedJobReturn(
            overrides=list(overrides), working_dir=working_dir, task_name=task_name
        )
        ret.output_subdir = output_subdir
        ret.status, ret.return_value = JobStatus[status], value
        returns.append(ret)
    return returns


class SavedJobReturn(JobReturn):
    """A JobReturn whose `cfg` and `hydra_cfg` are the files the job saved (`.hydra/config.yaml`,
    `hydra.yaml`), read when first asked for: a task sends back each job's outcome only (100,000
    jobs' configs would not fit its result), and Hydra's sweepers read only the value."""

    output_subdir: str | None = None

    def _saved(self, name: str, file: str) -> Any:
        if self.__dict__.get(name) is None and self.working_dir and self.output_subdir:
            from omegaconf import OmegaConf

            path = Path(self.working_dir) / self.output_subdir / file
            if path.is_file():
                self.__dict__[name] = OmegaConf.load(path)
        return self.__dict__.get(name)

    @property  # type: ignore[override]
    def cfg(self) -> Any:
        return self._saved("_cfg", "config.yaml")

    @cfg.setter
    def cfg(self, value: Any) -> None:
        self.__dict__["_cfg"] = value

    @property  # type: ignore[override]
    def hydra_cfg(self) -> Any:
        return self._saved("_hydra_cfg", "hydra.yaml")

    @hydra_cfg.setter
    def hydra_cfg(self, value: Any) -> None:
        self.__dict__["_hydra_cfg"] = value


def _result_or_none(job: Any, what: str) -> Any:
    """submitit's results of a SLURM job, or None (with one log line) if it ended without them."""
    from submitit.core.utils import UncompletedJobError

    try:
        return job.results()
    except UncompletedJobError as error:  # includes FailedJobError: submitit's own error result
        reason = _job_error(str(error)) or job.watcher.get_state(job.job_id, mode="cache")
        log.warning(
            "%s: SLURM job %s ended without a result (%s); logs: %s",
            what,
            job.job_id,
            reason,
            job.paths.stderr,
        )
    return None


def _inf_return(overrides: Sequence[str]) -> Any:
    from hydra.core.utils import JobReturn, JobStatus

    ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
    ret.return_value = math.inf
    return ret


def job_state_watcher() -> Any:
    """submitit's poller of job states, with squeue as a fallback for sacct.

    submitit asks sacct, which needs SLURM's accounting database (slurmdbd). Where sacct fails,
    submitit keeps such a job's state UNKNOWN and waits for its result forever; this poller then
    asks squeue instead, and a job that squeue no longer lists has ended (`ENDED`), so a job that
    died without a result is still seen as done.
    """
    import getpass
    import subprocess
    import time

    from submitit.slurm.slurm import SlurmInfoWatcher

    def run(command: list[str]) -> str:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=60, check=True
        ).stdout

    class Watcher(SlurmInfoWatcher):
        def update(self) -> None:
            command = self._make_command()
            if command is None:
                return
            self._num_calls += 1
            try:
                self._info_dict.update(self.read_info(run(command)))
            except (OSError, subprocess.SubprocessError):
                self._info_dict.update(self._from_squeue())
            self._last_status_check = time.time()
            for job_id in self._registered - self._finished:
                if self.is_done(job_id, mode="cache"):
                    self._finished.add(job_id)

        def _from_squeue(self) -> dict[str, dict[str, str]]:
            try:
                listing = run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T"])
            except (OSError, subprocess.SubprocessError):
                return {}  # no answer from SLURM at all: states stay as they were
            listed = dict(line.split("|", 1) for line in listing.splitlines() if "|" in line)
            return {
                job_id: {"JobID": job_id, "State": listed.get(job_id, "ENDED")}
                for job_id in self._registered - self._finished
            }

    return Watcher(delay_s=600)  # as submitit's: every 2 s at first, then less and less often


def _job_error(message: str) -> str:
    """From submitit's error for a job: the job's own last error (e.g. out of requeues), if any."""
    lines = [line for line in message.splitlines() if line.startswith("submitit.core.utils.")]
    return lines[-1].split(": ", 1)[-1].rstrip(".") if lines else ""


def refused(error: Exception) -> SubmissionRefused:
    """sbatch's complaint (`sbatch: error: …` lines) as one line."""
    reasons = [
        re.sub(r"^sbatch: error: ", "", line.strip())
        for line in str(error).splitlines()
        if line.strip()
    ]
    return SubmissionRefused(f"sbatch refused the jobs: {'; '.join(reasons) or error}")


def discard_unstarted_sweep(sweep_dir: Path, cwd: Path | None = None) -> None:
    """Remove a sweep dir that holds only multirun.yaml and .submitit/, and the parents that
    leaves empty below the working dir (outputs/multirun/<date>/: Preflight made them)."""
    sweep_dir = Path(sweep_dir).absolute()
    if not sweep_dir.is_dir() or {p.name for p in sweep_dir.iterdir()} - SWEEP_FILES:
        return
    shutil.rmtree(sweep_dir, ignore_errors=True)
    cwd = (cwd or Path.cwd()).absolute()
    for parent in sweep_dir.parents:
        if parent == cwd or cwd not in parent.parents:
            break
        try:
            parent.rmdir()  # only if empty
        except OSError:
            break


def submit_quietly(submit: Callable[[], Any]) -> Any:
    """Run `submit`, keeping submitit from printing sbatch's stderr itself (it becomes one line)."""
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):
        return submit()
