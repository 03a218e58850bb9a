"""kernellab.slurm_tasks: the sweep's list of SLURM ids, and a summary written while they are
still queued or running (no cluster needed: squeue's answer is stood in for)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernellab import slurm_tasks
from kernellab.report import read_report
from tests.helpers import run_cli


def test_record_merges_and_a_job_submitted_again_takes_its_newest_id(tmp_path):
    slurm_tasks.record(tmp_path, {"10_0": [0, 1], "10_1": [2, 3]})
    slurm_tasks.record(tmp_path, {"11": [3]})  # job 3 submitted again (continued)
    saved = json.loads((tmp_path / slurm_tasks.TASKS_FILE).read_text())["tasks"]
    assert saved == {"10_0": [0, 1], "10_1": [2], "11": [3]}


def test_scancel_takes_each_array_once():
    assert slurm_tasks.scancel_ids(["10_0", "10_1", "9", "100_3"]) == ["9", "10", "100"]


def test_without_a_list_or_an_answer_from_squeue_nothing_is_queued(tmp_path, monkeypatch):
    assert slurm_tasks.still_queued(tmp_path) == {}
    slurm_tasks.record(tmp_path, {"10_0": [0]})
    monkeypatch.setattr(slurm_tasks.shutil, "which", lambda name: None)  # no squeue here
    assert slurm_tasks.still_queued(tmp_path) == {}


@pytest.fixture(scope="module")
def half_done_sweep(tmp_path_factory) -> Path:
    """A two-job grid whose job 1 is as a slurm_batched task leaves it before it starts."""
    tmp = tmp_path_factory.mktemp("sweep")
    sweep_dir = tmp / "sweep"
    run_cli(
        "-m", "seed=1,2", "trainer.steps=5", f"hydra.sweep.dir={sweep_dir}", cwd=tmp, check=True
    )
    (job_1,) = sweep_dir.glob("1_*")
    (job_1 / "metrics.json").unlink()  # written when it ends
    for f in [*job_1.glob("events.*"), *job_1.glob("checkpoint.pt")]:
        f.unlink()
    return sweep_dir


def test_a_job_whose_task_is_still_queued_is_running_with_the_scancel_that_stops_it(
    half_done_sweep, monkeypatch
):
    slurm_tasks.record(half_done_sweep, {"77_0": [0], "77_1": [1]})
    monkeypatch.setattr(slurm_tasks, "_squeue", lambda: {"77_1", "5"})
    report = read_report(half_done_sweep)
    assert {row.job: row.status for row in report.rows} == {0: "completed", 1: "running"}
    assert report.scancel == "scancel 77"
    assert report.still_running is not None
    assert report.still_running.startswith("1 job(s) still queued or running on SLURM: ")
    assert report.continue_with is None  # it would train job 1 twice

    monkeypatch.setattr(slurm_tasks, "_squeue", lambda: set())  # the task has ended, unfinished
    report = read_report(half_done_sweep)
    assert {row.job: row.status for row in report.rows} == {0: "completed", 1: "not started"}
    assert report.still_running is None and report.continue_with is not None
