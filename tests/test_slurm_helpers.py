"""kernellab.slurm's pieces without a cluster (tests/test_slurm.py runs them on a real one)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from kernellab import paths, slurm
from kernellab.callbacks import SweepSummary
from kernellab.errors import UserError
from kernellab.rundir import write_metrics


@pytest.mark.parametrize(
    "job_dir",
    [
        "/sweep/1_model.kernel_size=[1,3],optim.lr=0.01",
        "relative/0_x=1",
        'odd/"quoted" name',
        "back\\slash\\",
    ],
)
def test_resume_override_gives_hydra_the_dir_unchanged(job_dir):
    (override,) = OverridesParser.create().parse_overrides([paths.resume_override(Path(job_dir))])
    assert override.key_or_group == "trainer.resume"
    assert override.value() == str(Path(job_dir))


def test_a_requeued_job_continues_in_its_own_dir(monkeypatch):
    overrides = ["optim.lr=0.1", "trainer.resume=elsewhere"]
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert slurm.with_resume(overrides) == overrides  # first run: as submitted
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    assert slurm.with_resume(overrides) == ["optim.lr=0.1", "trainer.resume=auto"]


def test_submitting_needs_slurm_and_submitits_usual_signal(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "srun"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv(slurm.SUBMITIT_SIGNAL_VARIABLE, raising=False)
    slurm.check_submission()
    monkeypatch.setenv(slurm.SUBMITIT_SIGNAL_VARIABLE, "USR2")
    slurm.check_submission()
    monkeypatch.setenv(slurm.SUBMITIT_SIGNAL_VARIABLE, "USR1")
    with pytest.raises(UserError, match=r"SUBMITIT_PREEMPT_SIGNAL=USR1: .* SIGUSR2"):
        slurm.check_submission()
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="sbatch and srun are not on this machine's PATH"):
        slurm.check_submission()


def fake_submitit_handler():
    """Stands in for submitit's SignalHandler in a job: records the call, exits as submitit does."""
    from submitit.core.job_environment import SignalHandler

    class Handler(SignalHandler):
        def __init__(self):  # no job environment here
            self.calls = []

        def checkpoint_and_try_requeue(self, signum, frame=None):
            self.calls.append(signum)
            sys.exit(-1)

    return Handler()


@pytest.mark.parametrize(("code", "requeued"), [(140, True), (143, False), (0, False)])
def test_after_a_time_limit_stop_submitit_requeues_the_job(code, requeued):
    fake = fake_submitit_handler()
    previous = signal.signal(signal.SIGUSR2, fake.checkpoint_and_try_requeue)
    try:
        with pytest.raises(SystemExit) as stop, slurm.requeue_after_time_limit():
            sys.exit(code)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert fake.calls == ([signal.SIGUSR2] if requeued else [])
    assert stop.value.code == (-1 if requeued else code)


def test_an_sbatch_refusal_is_one_line():
    error = RuntimeError(
        "sbatch: error: invalid partition specified: gpu\n"
        "sbatch: error: Batch job submission failed: Invalid partition name specified\n"
    )
    assert str(slurm.refused(error)) == (
        "sbatch refused the jobs: invalid partition specified: gpu; "
        "Batch job submission failed: Invalid partition name specified"
    )


def test_an_unstarted_sweep_dir_is_removed_with_the_parents_it_leaves_empty(tmp_path):
    (tmp_path / "outputs" / "keep.txt").parent.mkdir()
    (tmp_path / "outputs" / "keep.txt").touch()
    sweep = tmp_path / "outputs" / "multirun" / "2026-01-01" / "12-00-00"
    (sweep / ".submitit").mkdir(parents=True)
    (sweep / "multirun.yaml").touch()
    slurm.discard_unstarted_sweep(sweep, cwd=tmp_path)
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["keep.txt"]

    started = tmp_path / "started"
    (started / "0_optim.lr=0.1").mkdir(parents=True)
    (started / "multirun.yaml").touch()
    slurm.discard_unstarted_sweep(started, cwd=tmp_path)
    assert (started / "0_optim.lr=0.1").is_dir()  # a job has run: nothing is removed


def test_without_sacct_a_job_squeue_no_longer_lists_has_ended(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in {
        "sacct": "echo 'sacct: error: Problem talking to the database' >&2; exit 1",
        "squeue": "echo '41_0|RUNNING'; echo '41_2|PENDING'",
    }.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{script}\n")
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    watcher = slurm.job_state_watcher()
    states = {job: watcher.get_state(job, mode="force") for job in ("41_0", "41_1", "41_2")}
    assert states == {"41_0": "RUNNING", "41_1": "ENDED", "41_2": "PENDING"}
    assert [watcher.is_done(job, mode="cache") for job in states] == [False, True, False]


def test_sacct_answers_are_used_when_it_answers(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text(
        "#!/bin/sh\nprintf 'JobID|State|NodeList\\n42_0|CANCELLED by 0|vm\\n'\n"
    )
    (bin_dir / "sacct").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert slurm.job_state_watcher().get_state("42_0", mode="force") == "CANCELLED by 0"


def test_an_interrupted_job_makes_the_multirun_exit_1_with_one_line_each(tmp_path, capsys):
    (tmp_path / "multirun.yaml").write_text("{}\n")
    for num, status in enumerate(["completed", "interrupted"]):
        job = tmp_path / f"{num}_optim.lr=0.{num + 1}"
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- optim.lr=0.{num + 1}\n")
        write_metrics(job, {"status": status, "final_loss": 0.5, "signal": "SIGTERM"})
    with pytest.raises(SystemExit) as stop:
        SweepSummary().on_multirun_end(
            OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
        )
    assert stop.value.code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: job 1 (optim.lr=0.2) was interrupted: continue it with python ")
    # the command in the line works in a shell: it hands Hydra the job dir unchanged
    command = line.split("continue it with ", 1)[1]
    args = subprocess.run(
        ["sh", "-c", f'for a in {command.split(" ", 2)[2]}; do echo "$a"; done'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert args == [paths.resume_override(tmp_path / "1_optim.lr=0.2"), "optim.lr=0.2"]
