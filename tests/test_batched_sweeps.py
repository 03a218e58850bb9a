"""`hydra/launcher=batched` on kernellab: each job gets what the basic launcher gives it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from kernellab.eventfile import scalar_curve
from kernellab.rundir import read_metrics
from tests.helpers import TRAIN_PY, run_cli

pytestmark = pytest.mark.slow

# several lrs and seeds, two kernel sizes (two groups), a refused value (lr 0), a diverging lr
GRID = ["optim.lr=0,0.01,0.1", "seed=0,1", "model.kernel_size=[1,2],[1,3]"]


def sweep(tmp_path, name, *args, check_exit=0):
    sweep_dir = tmp_path / name
    proc = run_cli("-m", *args, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, timeout=300)
    assert proc.returncode == check_exit, proc.stderr
    return sweep_dir, proc


def jobs(sweep_dir):
    return {p.parent.name: p.parent for p in sweep_dir.glob("*/.hydra")}


def test_a_mixed_grid_equals_the_basic_launchers(tmp_path):
    basic, _ = sweep(
        tmp_path, "basic", "hydra/launcher=basic", *GRID, check_exit=1
    )  # refused: fail
    batched, proc = sweep(tmp_path, "batched", "hydra/launcher=batched", *GRID, check_exit=1)
    assert "group 2 of 2: 4 job(s) as one program" in proc.stdout + proc.stderr
    theirs, ours = jobs(basic), jobs(batched)
    assert sorted(ours) == sorted(theirs) and len(ours) == 12
    statuses = set()
    for name, job_dir in theirs.items():
        want, got = read_metrics(job_dir), read_metrics(ours[name])
        statuses.add(want["status"])
        assert got["status"] == want["status"], name
        if want["status"] == "failed":
            assert (
                got["error"]
                == want["error"]
                == "optim.lr=0: must be a number > 0 and at most float32's max (3.403e+38)"
            )
            continue
        assert got["steps_completed"] == want["steps_completed"]
        for row_got, row_want in zip(got["weight"], want["weight"], strict=True):
            assert row_got == pytest.approx(row_want, rel=1e-6, abs=1e-6), name
        if want["final_loss"] is not None:
            assert got["final_loss"] == pytest.approx(want["final_loss"], rel=1e-5), name
        steps = [s for s, _ in scalar_curve(job_dir, "train/loss")]
        assert [s for s, _ in scalar_curve(ours[name], "train/loss")] == steps, name
    assert statuses == {"completed", "diverged", "failed"}
    assert (batched / "summary.md").exists()


def test_optuna_trials_in_batches(tmp_path):
    sweep_dir, proc = sweep(
        tmp_path,
        "optuna",
        "hparams_search=edge_optuna",
        "hydra/launcher=batched",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.n_jobs=4",
    )
    done = [read_metrics(d)["status"] for d in jobs(sweep_dir).values()]
    assert len(done) == 8 and set(done) <= {"completed", "diverged"}
    assert "Best value" in proc.stdout + proc.stderr


def test_ctrl_c_checkpoints_the_running_group_and_records_the_rest(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=batched", "trainer.steps=100000000", "optim.lr=0.001"]
    args += ["seed=0,1", "model.kernel_size=[1,2],[1,3]", f"hydra.sweep.dir={sweep_dir}"]
    proc = subprocess.Popen(
        [sys.executable, str(TRAIN_PY), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        next(line for line in proc.stdout if "group 1 of 2" in line)
        import time

        time.sleep(2)  # some steps trained and logged
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    statuses = {name: read_metrics(d)["status"] for name, d in jobs(sweep_dir).items()}
    assert sorted(statuses.values()) == ["interrupted"] * 2 + ["not started"] * 2, statuses
    assert (sweep_dir / "summary.md").exists()
    interrupted = next(d for n, d in jobs(sweep_dir).items() if statuses[n] == "interrupted")
    done = read_metrics(interrupted)["steps_completed"]
    assert done > 0 and (interrupted / "checkpoint.pt").exists()
    overrides = [
        o for o in (interrupted / ".hydra" / "overrides.yaml").read_text().split("\n") if o
    ]
    resumed = run_cli(
        f"trainer.resume='{interrupted}'",  # quoted: the dir's name holds = and [ ]
        f"trainer.steps={done + 10}",
        "optim.lr=0.001",
        *[o.removeprefix("- ") for o in overrides if "trainer.steps" not in o],
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert read_metrics(interrupted)["status"] == "completed"
    steps = [s for s, _ in scalar_curve(interrupted, "train/loss")]
    assert steps == list(range(1, done + 11))


WORKERS = ["hydra/launcher=batched", "seed=range(6)", "model.kernel_size=[1,2],[1,3]"]


def test_two_workers_give_what_one_does(tmp_path):
    one, _ = sweep(tmp_path, "one", *WORKERS, "hydra.launcher.workers=1")
    two, proc = sweep(tmp_path, "two", *WORKERS, "hydra.launcher.workers=2")
    output = proc.stdout + proc.stderr
    assert "12 jobs over 2 worker processes (6/6 jobs)" in output
    assert "(worker 2 of 2): 6 job(s) as one program" in output  # whole groups
    ones, twos = jobs(one), jobs(two)
    assert sorted(ones) == sorted(twos) and len(ones) == 12
    for name, job_dir in ones.items():
        want, got = read_metrics(job_dir), read_metrics(twos[name])
        assert got["status"] == want["status"] == "completed", name
        assert got["steps_completed"] == want["steps_completed"]
        for row_got, row_want in zip(got["weight"], want["weight"], strict=True):
            assert row_got == pytest.approx(row_want, rel=1e-6, abs=1e-6), name
        assert got["final_loss"] == pytest.approx(want["final_loss"], rel=1e-6, abs=1e-6), name
        curve = scalar_curve(job_dir, "train/loss")
        assert [s for s, _ in scalar_curve(twos[name], "train/loss")] == [s for s, _ in curve]
        assert (twos[name] / "train.log").read_text().count("kernel_error") == 1
    assert "[1,2] recovers the kernel in 17% of 6 seeds" in output  # the answer, from every job


def test_optuna_sees_every_value_from_two_workers(tmp_path):
    sweep_dir, proc = sweep(
        tmp_path,
        "optuna",
        "hparams_search=edge_optuna",
        "hydra/launcher=batched",
        "hydra.launcher.workers=2",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.n_jobs=4",
        "hydra.sweeper.sampler.seed=0",
    )
    errors = [read_metrics(d)["kernel_error"] for d in jobs(sweep_dir).values()]
    assert len(errors) == 8
    best = float(proc.stdout.split("Best value: ")[1].split()[0])
    assert best == pytest.approx(min(e for e in errors if e is not None), rel=1e-6)


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_bad_workers_is_one_line(tmp_path, value):
    sweep_dir, proc = sweep(
        tmp_path,
        "bad",
        "hydra/launcher=batched",
        "seed=0,1",
        f"hydra.launcher.workers={value}",
        check_exit=2,
    )
    assert proc.stderr.strip().splitlines() == [
        f"error: hydra.launcher.workers={value}: must be auto or a number >= 1"
    ]
    assert not sweep_dir.exists()


def test_more_workers_than_cores_is_clamped_with_a_warning(tmp_path):
    cores = len(os.sched_getaffinity(0))
    args = ["hydra/launcher=batched", "seed=range(4)", f"hydra.launcher.workers={cores + 5}"]
    _, proc = sweep(tmp_path, "many", *args)
    assert (
        f"warning: hydra.launcher.workers={cores + 5}: this process may use {cores} core(s); "
        f"using {cores} worker(s)"
    ) in proc.stderr


def test_a_plain_multirun_trains_batched_with_one_launch_line(tmp_path):
    """`-m` alone is the batched launcher; its console says how many jobs, in how many groups,
    where, in one line (Hydra's launchers print a line per job before anything trains); the
    per-job list is in the sweep's launch.log. `hydra/launcher=basic` keeps Hydra's list."""
    sweep_dir, proc = sweep(tmp_path, "seeds", "seed=range(100)", "trainer.steps=2")
    console = proc.stdout + proc.stderr
    assert not re.search(r"#\d+ : ", console), console
    (launching,) = [line for line in console.splitlines() if "Launching" in line]
    assert launching.endswith(
        f"Launching 100 jobs locally in 1 group(s) into {sweep_dir} "
        f"(listed in {sweep_dir / 'launch.log'})"
    )
    assert "group 1 of 1: 100 job(s) as one program" in console
    listed = (sweep_dir / "launch.log").read_text().splitlines()
    assert listed[0].endswith("Launching 100 jobs locally")
    assert [line.split("\t", 1)[1] for line in listed[1:]] == [
        f"#{i} : seed={i} trainer.steps=2" for i in range(100)
    ]
    assert len(jobs(sweep_dir)) == 100

    _, basic = sweep(tmp_path, "basic", "hydra/launcher=basic", "seed=0,1", "trainer.steps=2")
    assert "#0 : seed=0 trainer.steps=2" in basic.stdout + basic.stderr
    assert "#1 : seed=1 trainer.steps=2" in basic.stdout + basic.stderr


def test_a_grid_of_multi_channel_seeds_equals_the_basic_launchers(tmp_path):
    import numpy as np

    from tests.helpers import TRUTH_2X3, kernel_override, write_rgb_picture

    grid = [
        f"task.image={write_rgb_picture(tmp_path)}",
        "task.channels=rgb",
        kernel_override(TRUTH_2X3),
        "optim.lr=0.0005",  # SGD is stable below 1 / (143 outputs × 3 × 2 × 2 × 1/3) ≈ 0.0017
        "trainer.steps=10",
        "seed=0,1,2",
    ]
    basic, _ = sweep(tmp_path, "basic", "hydra/launcher=basic", *grid)
    batched, proc = sweep(tmp_path, "batched", "hydra/launcher=batched", *grid)
    assert "3 job(s) as one program" in proc.stdout + proc.stderr
    theirs, ours = jobs(basic), jobs(batched)
    assert sorted(ours) == sorted(theirs) and len(ours) == 3
    for name, job_dir in theirs.items():
        want, got = read_metrics(job_dir), read_metrics(ours[name])
        assert got["status"] == want["status"] == "completed", name
        assert np.shape(got["weight"]) == (2, 3, 2, 2), name
        np.testing.assert_allclose(got["weight"], want["weight"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got["bias"], want["bias"], rtol=1e-6, atol=1e-6)
        assert got["final_loss"] == pytest.approx(want["final_loss"], rel=1e-5), name
