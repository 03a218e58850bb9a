"""Ctrl-C and SIGTERM in a sweep: every job is recorded, the summary is written, nothing is left
running, and the one command the sweep prints continues it to the end."""

from __future__ import annotations

import csv
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernellab.rundir import read_metrics
from kernellab.tracking import read_scalars
from tests.helpers import TRAIN_PY

pytestmark = pytest.mark.slow

STEPS = 3000  # a few seconds a job: long enough to be interrupted, short enough to continue
SWEEP = ["seed=range(4)"]
NEVER_ENDS = 100_000_000  # steps: hours
LAUNCHERS = {
    "basic": ["hydra/launcher=basic"],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local"],
    "batched-workers": ["hydra/launcher=batched", "hydra.launcher.workers=2"],
}


def interrupt_sweep(
    sweep_dir: Path,
    launcher: list[str],
    sig: signal.Signals,
    whole_group: bool,
    steps: int = STEPS,
):
    """Start the sweep in a session of its own; once a job trains (holds its run dir's lock), send
    `sig` to every process (as a terminal's Ctrl-C or SLURM's scancel do) or to the sweep's own."""
    log = sweep_dir.parent / "sweep.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(TRAIN_PY),
                "-m",
                *launcher,
                *SWEEP,
                f"trainer.steps={steps}",
                f"hydra.sweep.dir={sweep_dir}",
            ],
            cwd=sweep_dir.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not list(sweep_dir.rglob(".lock")) and time.monotonic() < deadline:
            time.sleep(0.05)
        (os.killpg if whole_group else os.kill)(proc.pid, sig)
        proc.wait(timeout=90)
    finally:
        proc.kill()
    return proc, log.read_text()


def still_running(session: int, grace_s: float = 10) -> list[str]:
    """The processes of a session alive after `grace_s` (workers told to exit take a moment;
    zombies are dead, awaiting their parent)."""
    deadline = time.monotonic() + grace_s
    while True:
        ps = subprocess.run(
            ["ps", "-o", "pid=,stat=,args=", "-s", str(session)], capture_output=True
        )
        alive = [line for line in ps.stdout.decode().splitlines() if line.split()[1][0] != "Z"]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def summary_statuses(sweep_dir: Path) -> dict[str, str]:
    with open(sweep_dir / "summary.csv") as file:
        return {row["job"]: row["status"] for row in csv.DictReader(file)}


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize(
    ("sig", "whole_group"), [(signal.SIGINT, True), (signal.SIGTERM, False)], ids=["ctrl-c", "term"]
)
def test_interrupted_sweep_records_every_job_and_leaves_nothing_running(
    tmp_path, launcher, sig, whole_group
):
    sweep_dir = tmp_path / "sweep"
    # sent to the sweep's process alone, the signal reaches running jobs FORWARD_AFTER_S later, or
    # later still on a loaded machine: no job may finish before it (30,000 steps once did, in 3 s,
    # while submitit's other jobs were still starting: 'completed' and 3 'not started', nothing
    # `interrupted`). These sweeps are never continued, so their jobs need no end.
    steps = STEPS if whole_group else NEVER_ENDS
    proc, output = interrupt_sweep(sweep_dir, LAUNCHERS[launcher], sig, whole_group, steps)

    assert proc.returncode == 128 + sig.value, output
    assert "Traceback" not in output
    statuses = summary_statuses(sweep_dir)
    assert sorted(statuses) == ["0", "1", "2", "3"]  # jobs never started are rows too
    assert {"interrupted", "not started"} & set(statuses.values())  # the sweep was cut short
    if not whole_group:  # the sweep's process passed the signal on to the jobs still training
        assert "interrupted" in statuses.values()
    assert set(statuses.values()) <= {"completed", "interrupted", "not started"}
    for job_dir in sweep_dir.glob("*_seed=*"):  # a job stopped before training may have no metrics
        if (job_dir / "metrics.json").exists() and read_metrics(job_dir)["status"] == "interrupted":
            assert (job_dir / "checkpoint.pt").is_file()
    assert still_running(proc.pid) == []
    assert "continue the sweep with python train.py -m " in output


@pytest.mark.parametrize("launcher", ["joblib", "batched-workers"])
def test_the_printed_command_continues_an_interrupted_sweep_to_the_end(tmp_path, launcher):
    sweep_dir = tmp_path / "sweep"
    proc, output = interrupt_sweep(sweep_dir, LAUNCHERS[launcher], signal.SIGINT, True)
    assert proc.returncode == 130, output
    interrupted = [d for d in sweep_dir.glob("*_seed=*") if (d / "checkpoint.pt").exists()]
    command = shlex.split(output.split("continue the sweep with ", 1)[1].splitlines()[0])
    assert command[:3] == ["python", "train.py", "-m"] and "trainer.resume=auto" in command

    continued = subprocess.run(
        [sys.executable, str(TRAIN_PY), *command[2:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,  # 4 jobs of 3,000 steps: ~10 s quiet, past 120 s beside two CPU hogs
    )

    assert continued.returncode == 0, continued.stderr
    assert set(summary_statuses(sweep_dir).values()) == {"completed"}
    job_dirs = sorted(sweep_dir.glob("*_seed=*"))
    assert len(job_dirs) == 4  # the same dirs: nothing started over elsewhere
    for job_dir in job_dirs:
        assert read_metrics(job_dir)["steps_completed"] == STEPS
        steps = [step for step, _ in read_scalars(job_dir)["train/loss"]]
        assert steps == list(range(1, STEPS + 1))  # a resumed job neither repeats nor skips
    assert interrupted and all(list((d / ".hydra").glob("resume-*")) for d in interrupted)

    finished = [read_metrics(d) for d in job_dirs]
    again = subprocess.run(
        [sys.executable, str(TRAIN_PY), *command[2:]], cwd=tmp_path, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert [read_metrics(d) for d in job_dirs] == finished  # a finished sweep: nothing retrained
