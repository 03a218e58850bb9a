"""kernellab.job_dirs: a sweep's job as its dir tells it, whatever is there: a finished, failed,
killed or foreign job is a row, never a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kernellab.job_dirs import read_job
from kernellab.rundir import RunLock, write_metrics


def job_dir(tmp_path: Path, name: str = "3", overrides: str | None = "- optim.lr=0.1\n") -> Path:
    directory = tmp_path / name
    (directory / ".hydra").mkdir(parents=True)
    if overrides is not None:
        (directory / ".hydra" / "overrides.yaml").write_text(overrides)
    return directory


def test_a_finished_job_is_its_metrics_and_overrides(tmp_path):
    directory = job_dir(tmp_path)
    (directory / ".hydra" / "hydra.yaml").write_text(
        "hydra:\n  run:\n    dir: x\n  job:\n    name: train\n    num: 7\n  verbose: false\n"
    )
    write_metrics(
        directory,
        {"status": "completed", "final_loss": 0.25, "kernel_error": 0.5, "weight": [[1, -1]]},
    )
    row = read_job(directory)
    assert (row.job, row.status, row.overrides) == (7, "completed", ["optim.lr=0.1"])
    assert (row.final_loss, row.kernel_error, row.weight) == (0.25, 0.5, [[1, -1]])
    assert (row.name, row.label) == ("job 7", "optim.lr=0.1")
    assert row.objective("kernel_error") == 0.5


def test_without_hydra_yaml_the_number_is_the_dirs_leading_one(tmp_path):
    assert read_job(job_dir(tmp_path, "12_optim.lr=0.1")).job == 12
    row = read_job(job_dir(tmp_path, "best", overrides=None))
    assert (row.job, row.name, row.overrides) == (None, "best", [])


def test_a_diverged_job_has_no_objective_and_non_finite_numbers_are_absent(tmp_path):
    directory = job_dir(tmp_path)
    # as a diverged run writes it: metrics_json turns inf/nan into null
    write_metrics(
        directory, {"status": "diverged", "final_loss": float("inf"), "bias": [1.0, None]}
    )
    row = read_job(directory)
    assert row.final_loss is None and row.bias == [1.0, None]
    assert row.objective("final_loss") is None


@pytest.mark.parametrize(
    "content",
    [
        "[1, 2]",  # not an object
        '{"status": "done"}',  # none of kernellab's statuses
        '{"status": "completed", "weight": [["a"]]}',  # not numbers
        '{"status": "completed"',  # cut short
    ],
)
def test_metrics_that_are_not_kernellabs_make_a_failed_row(tmp_path, content):
    directory = job_dir(tmp_path)
    (directory / "metrics.json").write_text(content)
    row = read_job(directory)
    assert row.status == "failed" and row.final_loss is None


def test_a_job_without_metrics_is_not_started_missing_or_running(tmp_path):
    assert read_job(job_dir(tmp_path, "0")).status == "not started"
    trained = job_dir(tmp_path, "1")
    (trained / "events.out.tfevents.1.host").write_bytes(b"")  # it trained, then was killed
    assert read_job(trained).status == "missing"
    # a lock this process holds is its own: only another process's makes a job `running`
    held = job_dir(tmp_path, "2")
    lock = RunLock(held)
    try:
        assert read_job(held).status == "not started"
    finally:
        lock.release()
    elsewhere = job_dir(tmp_path, "3")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(elsewhere)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        assert read_job(elsewhere).status == "running"
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


HOLD_LOCK = """
import sys, time
from pathlib import Path
from kernellab.rundir import RunLock
lock = RunLock(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("content", ["- [optim.lr=0.1\n", "optim.lr: 0.1\n"])
def test_a_half_written_or_foreign_overrides_file_is_no_overrides(tmp_path, content):
    directory = job_dir(tmp_path, overrides=content)
    write_metrics(directory, {"status": "completed", "final_loss": 0.1})
    row = read_job(directory)
    assert (row.overrides, row.status, row.final_loss) == ([], "completed", 0.1)
