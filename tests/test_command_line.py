"""kernellab.command_line and the run and sweep guards of kernellab.preflight, as a user meets
them: real `python train.py` processes, their exit status, their stderr, and what they left on
disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import TRAIN_PY, run_cli, start_cli

pytestmark = pytest.mark.slow


def refused(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line of a refusal (exit 2, no traceback)."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "warn" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


@pytest.mark.parametrize(
    ("override", "says"),
    [
        (
            "trainer.steps=abc",
            "trainer.steps=abc: Value 'abc' of type 'str' could not be converted",
        ),
        ("model.kernel_size=[1,2", "model.kernel_size=[1,2: Hydra's override grammar can't parse"),
        ("seed=1,", "seed=1,: Hydra's override grammar can't parse"),
        ("task.image=été.png", "quote a value holding spaces"),
        ("seed=${nope}", "seed: Interpolation key 'nope' not found"),
        ("seed=${seed}", "seed: Recursive interpolation detected"),
        ("trainer.resume=${oc.env:KERNELLAB_UNSET}", "Environment variable 'KERNELLAB_UNSET'"),
        ("trainer.resume=${now:}", "TypeError raised while resolving interpolation"),
        ("optim=null", "Config group override must be a string"),
        ("model.kernal_size=3", "Could not override 'model.kernal_size'"),
        ("+foo=1", "foo=1: is not a config key: a `+` override can't add one"),
        ("++task.extra=1", "task.extra=1: is not a config key"),
        ("~seed", "~seed: seed can't be deleted"),
        ("~task", "~task: task can't be deleted"),
        ("~optim", "~optim: optim can't be deleted"),
    ],
)
def test_hydras_errors_are_one_line_and_leave_nothing(
    tmp_path: Path, override: str, says: str
) -> None:
    proc = run_cli(override, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert says in refused(proc)
    assert not (tmp_path / "run").exists()


def test_hydra_full_error_still_gives_hydras_own_report(tmp_path: Path) -> None:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run(
        [sys.executable, str(TRAIN_PY), "trainer.steps=abc"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr


@pytest.mark.parametrize(
    ("sweep", "says"),
    [
        ("seed=glob(*)", "glob() picks options of a config group"),
        ("seed=range(1,5,0)", "range()'s step must not be 0"),
        ("seed=range(5,1)", "the sweep has no values"),
        ("seed=interval(0,1)", "interval() is a search space for Optuna"),
        ("seed=range(1000000000)", "makes a sweep of 1,000,000,000 jobs: at most 1,000,000"),
        ("study.recovered_within=0.1,0.2", "a study setting is one value per sweep"),
    ],
)
def test_sweeps_that_cant_run_are_refused_without_listing_them(
    tmp_path: Path, sweep: str, says: str
) -> None:
    proc = run_cli("-m", sweep, f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path, timeout=60)
    assert says in refused(proc)
    assert not (tmp_path / "s").exists()


def test_a_finished_sweep_is_never_run_over(tmp_path: Path) -> None:
    sweep = tmp_path / "s"
    args = ("-m", "hydra/launcher=basic", "seed=0,1", "trainer.steps=3", f"hydra.sweep.dir={sweep}")
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    before = {p: p.read_bytes() for p in sweep.glob("*/metrics.json")}

    again = refused(run_cli(*args, cwd=tmp_path))
    assert "holds a sweep already: continue it with python train.py -m" in again
    assert "trainer.resume=auto" in again
    other = refused(run_cli(*args[:2], "seed=5,6", *args[3:], "trainer.resume=auto", cwd=tmp_path))
    assert "holds another sweep (seed=0,1 trainer.steps=3)" in other

    assert {p: p.read_bytes() for p in sweep.glob("*/metrics.json")} == before
    continued = run_cli(*args, "trainer.resume=auto", cwd=tmp_path)
    assert continued.returncode == 0, continued.stderr
    assert {p: p.read_bytes() for p in sweep.glob("*/metrics.json")} == before


def test_a_closed_stdout_pipe_ends_quietly(tmp_path: Path) -> None:
    proc = start_cli("trainer.steps=200", "trainer.print_every=1", cwd=tmp_path)
    assert proc.stdout.readline().startswith("step 1")
    proc.stdout.close()  # `| head -1`
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Logging error" not in err


def test_a_closed_buffered_stdout_pipe_ends_quietly(tmp_path: Path) -> None:
    """As above with stdout block-buffered, as a user's pipe is (this machine's environment sets
    PYTHONUNBUFFERED): the lines left in the buffer must not fail the run when the pipe closes."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = start_cli("trainer.steps=200", "trainer.print_every=1", cwd=tmp_path, env=env)
    assert proc.stdout.readline().startswith("step 1")
    proc.stdout.close()  # `| head -1`
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Broken pipe" not in err and "Exception ignored" not in err


def test_a_finished_run_ends_without_teardown_but_with_its_exit_handlers(tmp_path: Path) -> None:
    """kernellab._python_private.end_without_teardown: Python's teardown skipped (an object's
    `__del__` never runs), the atexit handlers run, the log whole, exit 0."""
    script = f"""
import atexit, runpy, sys
atexit.register(lambda: open("atexit", "w").write("ran"))
class Kept:
    def __del__(self):
        sys.stderr.write("torn down")
kept = Kept()
sys.argv = [{str(TRAIN_PY)!r}, "hydra.run.dir=run", "trainer.steps=3"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "torn down" not in proc.stderr
    assert (tmp_path / "atexit").read_text() == "ran"
    assert "kernel_error: " in (tmp_path / "run" / "train.log").read_text().splitlines()[-1]
    assert proc.stdout.splitlines()[-1].startswith("kernel_error: ")


def test_a_profiled_run_ends_as_python_does(tmp_path: Path) -> None:
    """Under a profiler the normal exit: cProfile writes its file after the script returns."""
    proc = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", "prof", str(TRAIN_PY), "trainer.steps=3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "prof").stat().st_size > 0


def test_a_full_output_device_is_one_line(tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, str(TRAIN_PY), "trainer.steps=3"],
            cwd=tmp_path,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: the console output was lost: No space left on device"


def test_a_deleted_current_dir_is_one_line(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    script = f"import os, subprocess, sys; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); "
    script += f"sys.exit(subprocess.run([sys.executable, {str(TRAIN_PY)!r}]).returncode)"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "error: the current directory no longer exists: cd into one that does"
    )


def test_a_killed_joblib_worker_ends_the_sweep_with_its_summary(tmp_path: Path) -> None:
    sweep = tmp_path / "s"
    proc = start_cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "seed=range(4)",
        "trainer.steps=100000000",
        "optim.lr=0.0001",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 120
    while not list(sweep.glob("*/events.out.tfevents.*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    found = subprocess.run(["pgrep", "-f", "popen_loky_posix"], capture_output=True, text=True)
    ours = [int(p) for p in found.stdout.split() if os.readlink(f"/proc/{p}/cwd") == str(tmp_path)]
    if not ours:  # tests run side by side: only this sweep's workers may be killed
        proc.kill()
        pytest.fail("no joblib worker of this sweep found")
    os.kill(ours[0], signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 1
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: the sweep ended early: TerminatedWorker")
    rows = (sweep / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + 4  # every job is a row
    statuses = [json.loads(p.read_text())["status"] for p in sweep.glob("*/metrics.json")]
    assert "completed" not in statuses
