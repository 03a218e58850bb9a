"""`hydra/launcher=slurm_batched` against a real SLURM cluster (`scripts/slurm-cluster.sh up`):
the same sweep as the local batched launcher, job for job; values reaching Optuna; refusals.

Skipped without a cluster (`sinfo` does not answer), except the refusal that needs none.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import pytest
import yaml

from kernellab.rundir import read_metrics
from tests.helpers import run_cli
from tests.test_slurm import _sinfo_answers

pytestmark = [
    pytest.mark.slow,
    pytest.mark.slurm,
    pytest.mark.timeout(600),
    # one cluster: under pytest-xdist (make test) these run one after another, on one worker
    pytest.mark.xdist_group("slurm"),
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
