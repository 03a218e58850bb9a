"""Ctrl-C and SIGTERM end a run cleanly; `trainer.resume` continues it exactly (CPU, bitwise)."""

import os
import signal
import subprocess
import sys

import pytest

from kernellab import signals
from kernellab.rundir import read_metrics
from kernellab.signals import StopRequest
from kernellab.tracking import read_scalars
from tests.helpers import TRAIN_PY, run_cli

LONG_RUN = ["trainer.steps=100000000", "trainer.print_every=200", "optim.lr=0.001"]


def interrupt_after_progress(run_dir, sig: signal.Signals) -> subprocess.CompletedProcess:
    """Start a very long run, wait until it has printed (so logged) some steps, then signal it."""
    proc = subprocess.Popen(
        [sys.executable, str(TRAIN_PY), *LONG_RUN, f"hydra.run.dir={run_dir}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        for line in proc.stdout:
            if line.startswith("step "):
                proc.send_signal(sig)
                break
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGUSR2, 140)]
)
def test_signal_saves_everything_and_exits_with_shell_code(tmp_path, sig, code):
    proc = interrupt_after_progress(tmp_path / "run", sig)
    assert proc.returncode == code, proc.stderr
    assert f"{sig.name} received" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    metrics = read_metrics(tmp_path / "run")
    done = metrics["steps_completed"]
    assert metrics["status"] == "interrupted" and metrics["signal"] == sig.name
    assert 200 <= done < 100000000
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    losses = read_scalars(tmp_path / "run")["train/loss"]
    assert [step for step, _ in losses] == list(range(1, done + 1))  # flushed to the last step


@pytest.mark.slow
def test_interrupted_then_resumed_equals_uninterrupted_bitwise(tmp_path):
    run_dir = tmp_path / "interrupted"
    assert interrupt_after_progress(run_dir, signal.SIGTERM).returncode == 143
    total = read_metrics(run_dir)["steps_completed"] + 150  # resume extends past the stop

    resumed = run_cli(
        f"trainer.resume={run_dir}", f"trainer.steps={total}", *LONG_RUN[1:], cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run_dir} at step" in resumed.stdout
    assert not (tmp_path / "outputs").exists(), "a resumed run writes into its own dir"
    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert "trainer.steps=100000000" in overrides, "the run's own record of its config is kept"
    (resume_record,) = (run_dir / ".hydra").glob("resume-*/overrides.yaml")
    assert f"trainer.resume={run_dir}" in resume_record.read_text()
    straight = tmp_path / "straight"
    run_cli(
        f"trainer.steps={total}",
        *LONG_RUN[1:],
        f"hydra.run.dir={straight}",
        cwd=tmp_path,
        check=True,
    )

    a, b = read_metrics(run_dir), read_metrics(straight)
    assert a["status"] == "completed" and a["steps_completed"] == total
    for key in ("weight", "bias", "final_loss", "initial_loss"):
        assert a[key] == b[key], key  # bitwise: JSON floats round-trip exactly
    losses = read_scalars(run_dir)["train/loss"]
    assert [step for step, _ in losses] == list(range(1, total + 1))  # no gap, no duplicate
    assert losses == read_scalars(straight)["train/loss"]


@pytest.mark.slow
def test_sigkill_after_a_periodic_checkpoint_loses_at_most_the_interval(tmp_path):
    import time

    import torch

    from tests.test_training import raw_scalar_steps

    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(TRAIN_PY),
            *LONG_RUN,
            "trainer.checkpoint_every_s=0.5",
            f"hydra.run.dir={run_dir}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "checkpoint.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.2)  # more steps logged after that checkpoint (and maybe another checkpoint)
    finally:
        proc.kill()
        proc.wait()
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)["step"]
    logged = max(s for s, _ in raw_scalar_steps(run_dir, "train/loss"))
    assert 0 < saved <= logged
    total = saved + 100
    resumed = run_cli(
        f"trainer.resume={run_dir}", f"trainer.steps={total}", *LONG_RUN[1:], cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    raw = [s for s, _ in raw_scalar_steps(run_dir, "train/loss")]
    assert raw == list(range(1, total + 1))  # no step missing, none repeated, for any reader
    assert [s for s, _ in read_scalars(run_dir)["train/loss"]] == list(range(1, total + 1))


@pytest.mark.slow
def test_two_processes_cannot_train_in_one_dir(tmp_path):
    run_dir = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, str(TRAIN_PY), *LONG_RUN, f"hydra.run.dir={run_dir}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        next(line for line in first.stdout if line.startswith("step "))
        second = run_cli(f"hydra.run.dir={run_dir}", cwd=tmp_path)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert second.returncode == 2
    assert second.stderr.startswith(f"error: output dir {run_dir} ")
    assert "in use by another run" in second.stderr or "already holds a run" in second.stderr
    assert read_metrics(run_dir)["status"] == "interrupted"  # the first run's, intact


def test_a_signal_delivered_twice_at_once_is_one_request_and_a_later_one_interrupts(monkeypatch):
    """A launcher's process may pass on a Ctrl-C its job also got: the copy must not cut short
    the checkpoint the first asked for; a second Ctrl-C later still stops at once."""
    with StopRequest() as stop:
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # the forwarded copy: no KeyboardInterrupt
        assert stop.requested and stop.signal_name == "SIGINT"
        monkeypatch.setattr(signals, "SAME_SIGNAL_S", 0.0)  # as if a second had passed
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _a_ctrl_c_while_the_worker_starts() -> dict[str, object]:
    """In a joblib worker: the mask it started with; a Ctrl-C before its job installs the sweep's
    handlers (held, not raised in loky's loop); whether the sweep's stop was noted before and after
    that install; the mask after it."""
    seen: dict[str, object] = {"blocked": signal.pthread_sigmask(signal.SIG_BLOCK, set())}
    try:
        os.kill(os.getpid(), signal.SIGINT)
        seen["noted before"] = signals.SWEEP.requested
        signals.SWEEP.install()
    except KeyboardInterrupt:  # what loky's loop would have got
        seen["raised"] = True
    seen["noted after"] = signals.SWEEP.requested
    seen["blocked after"] = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    return seen


@pytest.mark.slow
def test_a_joblib_worker_holds_a_ctrl_c_until_its_job_can_handle_it(monkeypatch):
    """A Ctrl-C that reached a starting worker used to end it in loky's own loop; loky then took
    the pool for broken and SIGKILLed the other workers, a job saving its checkpoint among them."""
    from joblib.externals.loky import ProcessPoolExecutor
    from joblib.externals.loky.backend import fork_exec

    from kernellab._joblib_private import workers_defer_signals

    monkeypatch.setattr(fork_exec, "fork_exec", fork_exec.fork_exec)  # restored afterwards
    workers_defer_signals()
    with ProcessPoolExecutor(max_workers=1) as pool:
        seen = pool.submit(_a_ctrl_c_while_the_worker_starts).result(60)
    assert {signal.SIGINT, signal.SIGTERM} <= seen["blocked"], seen
    assert "raised" not in seen and seen["noted before"] is False, seen  # held meanwhile
    assert seen["noted after"] is True, seen  # then handled by the sweep's handler
    assert not {signal.SIGINT, signal.SIGTERM} & seen["blocked after"], seen
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # not this process
