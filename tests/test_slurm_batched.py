"""`hydra/launcher=slurm_batched` against a real SLURM cluster (`scripts/slurm-cluster.sh up`):
the same sweep as the local batched launcher, job for job; values reaching Optuna; refusals.

Skipped without a cluster (`sinfo` does not answer), except the refusal that needs none.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kernellab.rundir import read_metrics
from tests.helpers import run_cli, start_cli
from tests.test_slurm import (
    SLOW_TASK,
    TIME_LIMIT,
    TIME_LIMITED_STEPS,
    _sinfo_answers,
    error_lines,
    job_dir,
    logged_steps,
    outlive_the_time_limit,
    scancel_once_job_1_trains,
    wait_for,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.slurm,
    pytest.mark.timeout(600),
]
needs_cluster = pytest.mark.skipif(
    not _sinfo_answers(),
    reason="no SLURM cluster: `sinfo` does not answer (scripts/slurm-cluster.sh up starts one)",
)

SLURM_BATCHED = [
    "hydra/launcher=slurm_batched",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
]
# two groups (kernel sizes), each with jobs that complete and jobs that diverge (lr 0.1)
GRID = ["seed=range(4)", "optim.lr=0.01,0.1", "model.kernel_size=[1,2],[1,3]", "trainer.steps=30"]
COMPARED = ("status", "steps_completed", "final_loss", "initial_loss", "kernel_error")


def sweep(tmp_path: Path, name: str, *args: str, timeout: float = 300):
    sweep_dir = tmp_path / name
    proc = run_cli("-m", *args, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, timeout=timeout)
    return proc, sweep_dir


def job_dirs(sweep_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in sweep_dir.iterdir() if p.is_dir() and p.name[0].isdigit()}


def files(run_dir: Path) -> list[str]:
    """A run dir's files, an event file by its kind (its name holds the time, host and pid)."""
    return sorted(
        p.name.split(".")[0] if p.name.startswith("events.") else p.name for p in run_dir.iterdir()
    )


def summary_rows(sweep_dir: Path) -> dict[str, dict[str, str]]:
    with open(sweep_dir / "summary.csv") as f:
        return {row["job"]: row for row in csv.DictReader(f)}


def assert_close(got: object, want: object, what: str) -> None:
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), what
        for g, w in zip(got, want, strict=True):
            assert_close(g, w, what)
    elif isinstance(want, float) and isinstance(got, float):
        assert got == pytest.approx(want, rel=1e-6, abs=1e-6) or got == want, what
    else:
        assert got == want, what


@needs_cluster
def test_a_slurm_batched_sweep_equals_the_local_batched_one_job_for_job(tmp_path):
    proc, cluster = sweep(tmp_path, "cluster", *SLURM_BATCHED, "hydra.launcher.tasks=3", *GRID)
    assert proc.returncode == 0, proc.stderr
    local_proc, local = sweep(tmp_path, "local", "hydra/launcher=batched", *GRID)
    assert local_proc.returncode == 0, local_proc.stderr

    assert "as 3 SLURM array task(s)" in proc.stdout + proc.stderr
    tasks = {p.name for p in (cluster / ".submitit").glob("*_*") if p.is_dir()}
    assert len(tasks) == 3  # one array of three tasks (.submitit/<array>_<task>)
    got, want = job_dirs(cluster), job_dirs(local)
    assert sorted(got) == sorted(want) and len(got) == 16  # the same job numbers and dir names
    for name, run_dir in got.items():
        mine, theirs = read_metrics(run_dir), read_metrics(want[name])
        for key in (*COMPARED, "weight", "bias"):
            assert_close(mine[key], theirs[key], f"{name}: {key}")
        assert files(run_dir) == files(want[name]), name
    statuses = {row["status"] for row in summary_rows(cluster).values()}
    assert statuses == {"completed", "diverged"}
    rows, local_rows = summary_rows(cluster), summary_rows(local)
    assert [rows[j]["status"] for j in sorted(rows)] == [
        local_rows[j]["status"] for j in sorted(local_rows)
    ]
    assert (cluster / "summary_groups.csv").is_file() and (cluster / "summary.md").is_file()
    listed = (cluster / "launch.log").read_text()
    assert listed.count("\t#") == 16 and listed.count("SLURM job ") == 3
    # each task recorded its peak RSS; the submitting process sums them up in one line
    assert "peak RSS of 3 SLURM task(s): max " in proc.stdout + proc.stderr
    for task in task_dirs(cluster):
        record = json.loads((task / f"{task.name}_resources.json").read_text())
        assert record["peak_rss_mib"] > 0 and record["jobs"] >= 1


@needs_cluster
def test_optuna_gets_every_trials_value_from_the_tasks(tmp_path):
    proc, sweep_dir = sweep(
        tmp_path,
        "optuna",
        *SLURM_BATCHED,
        "hydra.launcher.tasks=2",
        "hparams_search=edge_optuna",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=4",
        "trainer.steps=10",
    )
    assert proc.returncode == 0, proc.stderr
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    finite = [
        m["kernel_error"] if m["status"] == "completed" else math.inf
        for m in map(read_metrics, job_dirs(sweep_dir).values())
    ]
    assert len(finite) == 4
    assert results["best_value"] == pytest.approx(min(finite))  # Optuna saw the jobs' values


@needs_cluster
def test_a_refused_partition_is_one_line_and_leaves_nothing(tmp_path):
    proc, sweep_dir = sweep(
        tmp_path,
        "sweep",
        *SLURM_BATCHED,
        "hydra.launcher.partition=no_such_partition",
        "seed=1,2",
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: sbatch refused the jobs: "), proc.stderr
    assert "invalid partition specified: no_such_partition" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stdout == ""
    assert not sweep_dir.exists()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("tasks", ["0", "-2", "x"])
def test_tasks_below_one_are_refused_before_anything_is_written(tmp_path, tasks):
    proc, sweep_dir = sweep(
        tmp_path, "sweep", *SLURM_BATCHED, f"hydra.launcher.tasks={tasks}", "seed=1,2"
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: hydra.launcher.tasks={tasks}: must be a number of SLURM array tasks >= 1\n"
    )
    assert not sweep_dir.exists()


def task_dirs(sweep_dir: Path) -> list[Path]:
    """submitit's dir of each task, by task: .submitit/<array>_<task>, or .submitit/<job> for a
    lone task (submitit submits an array of one as a plain job)."""
    dirs = [p for p in (sweep_dir / ".submitit").iterdir() if p.is_dir()]
    tasks = [p for p in dirs if "_" in p.name]
    return sorted(tasks, key=lambda p: int(p.name.split("_")[1])) if tasks else dirs


def time_limited_sweep(tmp_path: Path, grid: list[str]) -> tuple[Path, Path, str]:
    """`grid` as one SLURM task under a one-minute limit, outlived (`outlive_the_time_limit`), and
    the same batch trained locally meanwhile: (the sweep dir, the reference sweep dir, the task's
    submitit log)."""
    sweep_dir, reference = tmp_path / "cluster", tmp_path / "reference"
    args = [*SLURM_BATCHED, "hydra.launcher.tasks=1", *TIME_LIMIT, *grid]
    proc = start_cli("-m", *args, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    local = ["hydra/launcher=batched", *grid, f"hydra.sweep.dir={reference}"]
    reference_proc = start_cli("-m", *local, cwd=tmp_path)
    try:
        stderr = outlive_the_time_limit(proc, sweep_dir, lambda: task_dirs(sweep_dir)[0].name)
        _, reference_err = reference_proc.communicate(timeout=300)
    finally:
        reference_proc.kill()
    assert proc.returncode == 0, stderr
    assert reference_proc.returncode == 0, reference_err
    (task,) = task_dirs(sweep_dir)
    return sweep_dir, reference, "".join(p.read_text() for p in task.glob("*_log.*"))


@needs_cluster
@pytest.mark.timeout(1500)  # up to three tries
def test_a_time_limited_task_is_requeued_and_its_jobs_end_as_if_never_stopped(tmp_path):
    # Two jobs of one group in one task, paused while they train and woken by the time limit's
    # warning, against the same batch trained locally. A task that ended before it was paused
    # (a fast machine): again with four times the steps.
    steps = TIME_LIMITED_STEPS
    for attempt in range(3):
        grid = [*SLOW_TASK, "seed=1,2", f"trainer.steps={steps}"]
        tries = tmp_path / f"attempt{attempt}"
        tries.mkdir()
        sweep_dir, reference, task_log = time_limited_sweep(tries, grid)
        if "Requeued job" in task_log:
            break
        steps *= 4
    assert "Requeued job" in task_log
    want = job_dirs(reference)
    requeues = {
        len(list((job / ".hydra").glob("resume-*"))) for job in job_dirs(sweep_dir).values()
    }
    assert len(requeues) == 1 and min(requeues) >= 1  # each run continued the last, both jobs
    assert task_log.count("SIGUSR2 received: stopping after this step and saving") == min(requeues)
    for name, job in job_dirs(sweep_dir).items():
        # the task's process got the signal (its log says so); each job's log, each resume
        log = (job / "train.log").read_text()
        assert log.count("resuming ") == min(requeues)
        got, ref = read_metrics(job), read_metrics(want[name])
        assert got["status"] == "completed" and got["steps_completed"] == steps
        assert got["num_threads"] == ref["num_threads"]
        for key in ("weight", "bias", "final_loss", "initial_loss"):
            assert got[key] == ref[key], f"{name}: {key}"  # bitwise
        assert logged_steps(job) == list(range(10, steps + 1, 10))  # none repeated or missing
    assert {row["status"] for row in summary_rows(sweep_dir).values()} == {"completed"}


@needs_cluster
def test_scancel_of_one_task_interrupts_its_jobs_and_the_others_complete(tmp_path):
    sweep_dir = tmp_path / "sweep"
    # by weight, the long job gets a task of its own, the short one the other
    args = [*SLURM_BATCHED, "hydra.launcher.tasks=2", *SLOW_TASK, "trainer.steps=20000,100000000"]
    proc = start_cli("-m", *args, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    stderr = scancel_once_job_1_trains(proc, sweep_dir, lambda: task_dirs(sweep_dir)[1].name)

    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    (line,) = error_lines(stderr)
    assert line.startswith("error: 1 interrupted: continue the sweep with python train.py -m ")
    assert "hydra/launcher=slurm_batched" in line and line.endswith(" trainer.resume=auto")
    assert {j: r["status"] for j, r in summary_rows(sweep_dir).items()} == {
        "0": "completed",
        "1": "interrupted",
    }
    metrics = read_metrics(job_dir(sweep_dir, 1))
    assert metrics["signal"] == "SIGTERM" and metrics["steps_completed"] >= 10000


def squeue_lists(ids: list[str]) -> bool:
    listing = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True)
    return any(line.strip() in ids for line in listing.stdout.splitlines())


@needs_cluster
@pytest.mark.timeout(900)
@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_on_the_submitting_process_summarises_at_once_and_the_tasks_go_on(
    tmp_path, stop, status
):
    # The tasks are paused (SIGSTOP) once a job trains, so that none can end before the summary
    # however fast this machine is, and resumed after it: a few steps are enough.
    sweep_dir = tmp_path / "sweep"
    args = [*SLURM_BATCHED, "hydra.launcher.tasks=2", *SLOW_TASK, "seed=range(4)"]
    args += ["trainer.steps=20000", f"hydra.sweep.dir={sweep_dir}"]
    proc = start_cli("-m", *args, cwd=tmp_path)

    def a_job_trains() -> bool:
        return any("step 10000," in p.read_text() for p in sweep_dir.glob("*/train.log"))

    def signal_tasks(name: str) -> None:
        (array,) = {task.name.split("_")[0] for task in task_dirs(sweep_dir)}
        subprocess.run(["scancel", f"--signal={name}", array], check=True)

    paused = False
    try:
        wait_for(a_job_trains, 180, "a job to train")
        signal_tasks("STOP")
        paused = True
        proc.send_signal(stop)
        signalled = time.monotonic()
        stderr = proc.communicate(timeout=120)[1]
        took = time.monotonic() - signalled
    finally:
        proc.kill()
        if paused:
            signal_tasks("CONT")

    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr
    assert took < 30  # the summary at once: no waiting for the tasks (about 2-4 s here)
    tasks = json.loads((sweep_dir / "slurm_tasks.json").read_text())["tasks"]
    (array,) = {task.split("_")[0] for task in tasks}
    statuses = {j: r["status"] for j, r in summary_rows(sweep_dir).items()}
    running = sum(status == "running" for status in statuses.values())
    assert running >= 1 and set(statuses.values()) <= {"running", "completed"}, statuses
    again = f"python -m kernellab.report {sweep_dir}"
    (line,) = error_lines(stderr)
    assert line == (
        f"error: {running} job(s) still queued or running on SLURM: `scancel {array}` stops "
        f"them; once they have ended, `{again}` summarises the sweep again"
    )
    assert f"`scancel {array}` stops them" in (sweep_dir / "summary.md").read_text()
    assert "continue the sweep" not in stderr  # it would train the running jobs twice

    # the tasks went on; once they have ended, the report reads what they left
    wait_for(lambda: not squeue_lists(list(tasks)), 400, "the tasks to end")
    report = subprocess.run(
        [sys.executable, "-m", "kernellab.report", str(sweep_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "still queued or running" not in report.stdout
    assert {r["status"] for r in summary_rows(sweep_dir).values()} == {"completed"}
    assert "Still running" not in (sweep_dir / "summary.md").read_text()
