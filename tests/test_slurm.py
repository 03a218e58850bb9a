"""`hydra/launcher=slurm` against a real SLURM cluster: a sweep, a time limit, scancel, a refusal.

Needs a cluster whose default partition runs jobs on this machine: `scripts/slurm-cluster.sh up`
starts one (CI does, before `make test`). Without one (`sinfo` does not answer) these tests are
skipped, with that reason in pytest's summary. The time-limit test waits for SLURM's one-minute
limit with its job paused (SIGSTOP), so the wait costs no CPU.
"""

from __future__ import annotations

import csv
import glob
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kernellab.paths import resume_override
from kernellab.rundir import read_metrics
from tests.helpers import run_cli, start_cli
from tests.test_training import raw_scalar_steps


def _sinfo_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


pytestmark = [
    pytest.mark.slow,
    pytest.mark.slurm,
    pytest.mark.skipif(
        not _sinfo_answers(),
        reason="no SLURM cluster: `sinfo` does not answer (scripts/slurm-cluster.sh up starts one)",
    ),
    pytest.mark.timeout(600),
]

SLURM = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
# Slowly converging, so the final kernel depends on every step (a restart from scratch would show).
SLOW_TASK = [
    "task.image=random",
    "task.height=16",
    "task.width=16",
    "model.kernel_size=3",
    "optim.lr=2e-6",
    "logger.log_every=10",
    "trainer.print_every=10000",
]


def slurm_sweep(tmp_path: Path, *args: str, timeout: float = 300):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(
        "-m", *SLURM, *args, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, timeout=timeout
    )
    return proc, sweep_dir


def job_dir(sweep_dir: Path, num: int) -> Path:
    (found,) = sweep_dir.glob(f"{num}_*")
    return found


def summary(sweep_dir: Path) -> dict[str, str]:
    with open(sweep_dir / "summary.csv") as f:
        return {row["job"]: row["status"] for row in csv.DictReader(f)}


def logged_steps(run_dir: Path) -> list[int]:
    """Every step that logged train/loss, over the run's event files in the order written (raw:
    TensorBoard's reader would hide a repeated step behind a resumed session's purge)."""
    return [step for step, _ in raw_scalar_steps(run_dir, "train/loss")]


def every_10_and_last(last: int) -> list[int]:
    """The steps logged with logger.log_every=10 by a run that ended at step `last`."""
    return sorted({*range(10, last + 1, 10), last})


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_sweep_runs_as_slurm_jobs(tmp_path):
    proc, sweep_dir = slurm_sweep(tmp_path, "optim.lr=0.01,0.005")
    assert proc.returncode == 0, proc.stderr
    assert summary(sweep_dir) == {"0": "completed", "1": "completed"}
    final_loss = read_metrics(job_dir(sweep_dir, 0))["final_loss"]
    assert f"best: job 0 (optim.lr=0.01) final_loss={final_loss:.4g}" in proc.stdout + proc.stderr
    tasks = sorted(
        p.name.split("_")[1] for p in (sweep_dir / ".submitit").glob("*_*") if p.is_dir()
    )
    assert tasks == ["0", "1"]  # one SLURM array of two tasks


# A one-minute limit with SLURM's warning (SIGUSR2) 5 s before it: the warning comes 25-55 s into
# the job (slurmctld looks every 30 s).
TIME_LIMIT = ["hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=5"]
# Few enough to train twice (once on SLURM, once as the reference) in seconds; enough that job 0
# still trains when the test pauses it at step 10000 (a machine that finishes first: retried).
TIME_LIMITED_STEPS = 40000


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def wait_until_trains(sweep_dir: Path, num: int, timeout: float = 180) -> None:
    """Until job `num` of the sweep has logged its 10000th step (SLOW_TASK's first progress line)."""

    def trains() -> bool:
        logs = glob.glob(str(sweep_dir / f"{num}_*" / "train.log"))
        return bool(logs) and "step 10000," in Path(logs[0]).read_text()

    wait_for(trains, timeout, f"job {num} to train")


def outlive_the_time_limit(
    sweep: subprocess.Popen[str], sweep_dir: Path, slurm_id: Callable[[], str]
) -> str:
    """Pause SLURM job `slurm_id()` (SIGSTOP, through scancel) once job 0 trains, so that it is
    still training when its one-minute limit comes without spending a core on it; the sweep's
    stderr when it has ended. SLURM's time-limit warning (SIGUSR2) wakes the paused job: slurmstepd
    sends SIGCONT with a signal (seen on this cluster's Slurm; a job left paused would be killed at
    its limit and the test fail, not hang)."""
    try:
        wait_until_trains(sweep_dir, 0)
        subprocess.run(["scancel", "--signal=STOP", slurm_id()], check=True)
        return sweep.communicate(timeout=400)[1]
    finally:
        sweep.kill()


def time_limited_sweep(tmp_path: Path, steps: int) -> tuple[Path, Path]:
    """A one-job SLURM sweep of `steps` SLOW_TASK steps under a one-minute limit, outlived
    (`outlive_the_time_limit`), and the same run without SLURM, meanwhile on the other core:
    (the job's dir, the reference run's dir)."""
    tmp_path.mkdir()
    args = [*SLOW_TASK, f"trainer.steps={steps}"]
    reference_dir, sweep_dir = tmp_path / "reference", tmp_path / "sweep"
    reference = start_cli(*args, f"hydra.run.dir={reference_dir}", cwd=tmp_path)
    sweep = start_cli(
        "-m", *SLURM, *args, *TIME_LIMIT, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path
    )

    def job_0() -> str:  # submitit submits an array of one as a plain job: .submitit/<job>
        (slurm_id,) = [p.name for p in (sweep_dir / ".submitit").iterdir() if p.is_dir()]
        return slurm_id

    try:
        stderr = outlive_the_time_limit(sweep, sweep_dir, job_0)
        _, reference_err = reference.communicate(timeout=300)
    finally:
        reference.kill()
    assert reference.returncode == 0, reference_err
    assert sweep.returncode == 0, stderr
    assert summary(sweep_dir) == {"0": "completed"}
    return job_dir(sweep_dir, 0), reference_dir


@pytest.mark.timeout(1500)  # up to three tries
def test_a_time_limit_requeues_the_job_which_ends_as_if_never_stopped(tmp_path):
    # The job is paused while it trains and woken by the time limit's warning: it must save and be
    # requeued, and its second run resume. A job that ended before it was paused (a fast machine):
    # again with four times the steps.
    steps = TIME_LIMITED_STEPS
    for attempt in range(3):
        job, reference = time_limited_sweep(tmp_path / f"attempt{attempt}", steps)
        log = (job / "train.log").read_text()
        requeues = log.count("SIGUSR2 received: stopping after this step and saving")
        if requeues:
            break
        steps *= 4
    assert requeues >= 1, log
    assert log.count("Requeued job") == requeues
    assert len(list((job / ".hydra").glob("resume-*"))) == requeues  # each run continued the last
    assert not (job / ".hydra" / "overrides.yaml").read_text().count("trainer.resume")

    got, want = read_metrics(job), read_metrics(reference)
    assert got["status"] == "completed" and got["steps_completed"] == steps
    for key in ("weight", "bias", "final_loss", "initial_loss"):
        assert got[key] == want[key], key  # bitwise: JSON keeps every bit of a float
    expected = list(range(10, steps + 1, 10))
    assert logged_steps(job) == expected  # neither repeated nor missing
    assert logged_steps(reference) == expected


def scancel_once_job_1_trains(
    sweep: subprocess.Popen[str], sweep_dir: Path, slurm_id: Callable[[], str]
) -> str:
    """`scancel` the SLURM job `slurm_id()` names once job 1 has trained 10000 steps; the
    sweep's stderr when it has ended."""
    try:
        wait_until_trains(sweep_dir, 1, timeout=120)
        subprocess.run(["scancel", slurm_id()], check=True)
        return sweep.communicate(timeout=240)[1]
    finally:
        sweep.kill()


def test_scancel_of_one_job_interrupts_it_and_the_sweep_finishes(tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep = start_cli(
        "-m",
        *SLURM,
        *SLOW_TASK,
        "trainer.steps=20000,100000000",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )

    def job_1() -> str:
        (slurm_id,) = [p.name for p in (sweep_dir / ".submitit").glob("*_1")]
        return slurm_id

    stderr = scancel_once_job_1_trains(sweep, sweep_dir, job_1)

    assert sweep.returncode == 1, stderr
    assert "Traceback" not in stderr
    (line,) = error_lines(stderr)
    assert line.startswith("error: 1 interrupted: continue the sweep with python train.py -m ")
    assert "hydra/launcher=slurm" in line and line.endswith(" trainer.resume=auto")
    assert summary(sweep_dir) == {"0": "completed", "1": "interrupted"}
    job = job_dir(sweep_dir, 1)
    metrics = read_metrics(job)
    assert metrics["status"] == "interrupted" and metrics["signal"] == "SIGTERM"
    assert (job / "checkpoint.pt").exists()
    done = metrics["steps_completed"]
    assert done >= 10000
    assert logged_steps(job) == list(range(10, done + 1, 10))

    # later, continued by hand from the job's own dir, with more steps
    resumed = run_cli(
        resume_override(job), *SLOW_TASK, f"trainer.steps={done + 1000}", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    metrics = read_metrics(job)
    assert metrics["status"] == "completed" and metrics["steps_completed"] == done + 1000
    assert logged_steps(job) == every_10_and_last(done + 1000)


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        (
            "hydra.launcher.partition=no_such_partition",
            "invalid partition specified: no_such_partition",
        ),
        ("hydra.launcher.cpus_per_task=4096", "Batch job submission failed: "),
    ],
)
def test_a_refused_submission_is_one_line_and_leaves_nothing(tmp_path, setting, reason):
    proc, sweep_dir = slurm_sweep(tmp_path, setting, "optim.lr=0.01,0.02", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: sbatch refused the jobs: "), proc.stderr
    assert reason in proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stdout == ""
    assert not sweep_dir.exists()
    assert os.listdir(tmp_path) == []
