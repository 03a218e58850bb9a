"""Multiruns as users run them: grids, joblib, submitit_local, Optuna; failures; refused sweeps."""

import csv
import math
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from kernellab.rundir import read_metrics
from kernellab.runtime import available_cores
from kernellab.tracking import read_scalars
from tests.helpers import run_cli

pytestmark = pytest.mark.slow


def sweep(tmp_path, *args, name="sweep", timeout=240):
    sweep_dir = tmp_path / name
    proc = run_cli("-m", *args, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, timeout=timeout)
    return proc, sweep_dir


def jobs(sweep_dir):
    return sorted(
        (p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()),
        key=lambda p: int(p.name.split("_")[0]),
    )


def summary_rows(sweep_dir):
    with open(sweep_dir / "summary.csv") as f:
        return list(csv.DictReader(f))


def test_grid_names_jobs_logs_each_and_reports_the_best(tmp_path):
    proc, sweep_dir = sweep(
        tmp_path, "optim.lr=0.001,0.01,0.1", "model.kernel_size=[1,2],[1,3]", "trainer.steps=10"
    )
    assert proc.returncode == 0, proc.stderr
    names = [p.name for p in jobs(sweep_dir)]
    assert names[3] == "3_model.kernel_size=[1,3],optim.lr=0.01,trainer.steps=10"
    assert len(names) == 6 and all(n.startswith(f"{i}_") for i, n in enumerate(names))
    losses = {}
    for job in jobs(sweep_dir):
        metrics = read_metrics(job)
        assert metrics["status"] in ("completed", "diverged")
        assert len(read_scalars(job)["train/loss"]) == metrics["steps_completed"]
        if metrics["final_loss"] is not None:
            losses[int(job.name.split("_")[0])] = metrics["final_loss"]
    rows = summary_rows(sweep_dir)
    assert len(rows) == 6
    best = min(losses, key=losses.get)
    assert int(rows[0]["job"]) == best
    assert f"best: job {best} " in proc.stdout + proc.stderr
    assert (sweep_dir / "summary.md").exists() and (sweep_dir / "summary.png").stat().st_size > 0


def test_readme_first_sweep_end_to_end(tmp_path):
    """The README's first sweep: 4 jobs complete, the two at lr=0.1 diverge. With the basic
    launcher, whose jobs log to the console (the batched one, the default, keeps a job's lines in
    its train.log)."""
    proc, sweep_dir = sweep(
        tmp_path, "hydra/launcher=basic", "optim.lr=0.001,0.01,0.1", "model.kernel_size=[1,2],[1,3]"
    )
    assert proc.returncode == 0, proc.stderr
    statuses = {job.name: read_metrics(job)["status"] for job in jobs(sweep_dir)}
    assert sorted(statuses.values()) == ["completed"] * 4 + ["diverged"] * 2, statuses
    assert all(statuses[job.name] == "diverged" for job in jobs(sweep_dir) if "lr=0.1" in job.name)
    assert proc.stderr.count("diverged: the loss at step") == 2

    rows = summary_rows(sweep_dir)
    assert [r["status"] for r in rows] == ["completed"] * 4 + ["diverged"] * 2
    losses = [float(r["final_loss"]) for r in rows[:4]]
    assert losses == sorted(losses) and all(r["kernel_error"] for r in rows)
    best = rows[0]
    assert f"best: job {best['job']} ({best['overrides']}) final_loss=" in proc.stdout
    md = (sweep_dir / "summary.md").read_text()
    assert f"| {best['job']} | {best['overrides']} | completed |" in md

    for job in jobs(sweep_dir):  # every job's pictures and curves, diverged ones included
        scalars = read_scalars(job)
        assert {"train/loss", "kernel/error", "kernel/target_0_0"} <= set(scalars), job.name
        assert len(scalars["kernel/error"]) == read_metrics(job)["steps_completed"]


def test_a_failing_job_is_recorded_and_the_sweep_exits_nonzero(tmp_path):
    proc, sweep_dir = sweep(tmp_path, "model.padding=-1,0,1", "trainer.steps=5")
    assert proc.returncode == 1
    failed, *others = (read_metrics(job) for job in jobs(sweep_dir))
    assert failed["status"] == "failed" and "model.padding=-1: must be" in failed["error"]
    assert [m["status"] for m in others] == ["completed", "completed"]
    statuses = {row["job"]: row["status"] for row in summary_rows(sweep_dir)}
    assert statuses == {"0": "failed", "1": "completed", "2": "completed"}
    assert "1 job(s) failed" in proc.stderr


def test_joblib_workers_times_threads_fit_the_cores(tmp_path):
    # a 512x512 image: big enough that `auto` would use every core if it ignored the workers
    proc, sweep_dir = sweep(
        tmp_path,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "optim.lr=0.000001,0.000002",  # stable for 512² (see docs/images.md, Photos)
        "task.image=random",
        "task.height=512",
        "task.width=512",
        "model.kernel_size=3",
        "trainer.steps=3",
    )
    assert proc.returncode == 0, proc.stderr
    threads = [read_metrics(job)["num_threads"] for job in jobs(sweep_dir)]
    assert len(threads) == 2
    assert all(2 * t <= max(2, available_cores()) for t in threads)
    assert len({read_metrics(job)["final_loss"] for job in jobs(sweep_dir)}) == 2


def test_submitit_local_runs_the_same_sweep(tmp_path):
    proc, sweep_dir = sweep(
        tmp_path, "hydra/launcher=submitit_local", "optim.lr=0.01,0.02", "trainer.steps=5"
    )
    assert proc.returncode == 0, proc.stderr
    assert [read_metrics(job)["status"] for job in jobs(sweep_dir)] == ["completed", "completed"]
    assert len(summary_rows(sweep_dir)) == 2


def test_optuna_study_in_memory(tmp_path):
    proc, sweep_dir = sweep(
        tmp_path, "hparams_search=edge_optuna", "hydra.sweeper.n_trials=3", "trainer.steps=10"
    )
    assert proc.returncode == 0, proc.stderr
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    errors = [read_metrics(job)["kernel_error"] for job in jobs(sweep_dir)]  # the objective
    assert len(errors) == 3
    finite = [
        read_metrics(job)["kernel_error"]
        if read_metrics(job)["status"] == "completed"
        else math.inf
        for job in jobs(sweep_dir)
    ]
    assert results["best_value"] == pytest.approx(min(finite))
    assert set(results["best_params"]) == {"optim.lr", "model.kernel_size", "optim"}
    assert not any("hparams_search" in job.name for job in jobs(sweep_dir))
    # Optuna's sweeper writes no multirun.yaml; kernellab does, so the report command takes it
    assert (sweep_dir / "multirun.yaml").is_file()
    summary = (sweep_dir / "summary.md").read_text()
    assert "hparams_search" not in summary  # the same in every job: not a column's worth
    # Optuna's own log lines ("[I ...] A new study created"): no colour codes into a pipe
    assert "A new study created" in proc.stderr and "\x1b[" not in proc.stderr + proc.stdout


def test_optuna_study_in_sqlite_is_continued(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    for i in range(2):
        proc, _ = sweep(
            tmp_path,
            "hparams_search=edge_optuna",
            "hydra.sweeper.n_trials=2",
            f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.study_name=resume_me",
            "trainer.steps=5",
            name=f"sweep{i}",
        )
        assert proc.returncode == 0, proc.stderr
    study = optuna.load_study(study_name="resume_me", storage=storage)
    assert len(study.trials) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert "Using an existing study" in proc.stderr + proc.stdout


def test_refused_sweeps_write_nothing(tmp_path):
    search = tmp_path / "extra" / "hparams_search"
    search.mkdir(parents=True)
    (search / "typo.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /hydra/sweeper: optuna\n"
        "hydra:\n  sweeper:\n    params:\n      optim.lrr: interval(0.001, 0.1)\n"
    )
    cases = [
        (["optim.lr=range(0)"], "optim.lr=range(0): the sweep has no values"),
        (["optim.lrr=0.1,0.2"], "optim.lrr=0.1,0.2: is not a config key"),
        (
            ["hparams_search=typo", f"hydra.searchpath=[file://{tmp_path / 'extra'}]"],
            "hydra.sweeper.params.optim.lrr=interval(0.001, 0.1): searches a key that is not in the config",
        ),
        (
            ["hydra/launcher=joblib", "hydra.launcher.n_jobs=0"],
            "hydra.launcher.n_jobs=0: must be >= 1",
        ),
        (["hydra/launcher=nope"], "Could not find 'hydra/launcher/nope'"),
        (["hydra/sweeper=nope"], "Could not find 'hydra/sweeper/nope'"),
    ]

    def attempt(case):
        args, _ = case
        return case, run_cli("-m", *args, f"hydra.sweep.dir={tmp_path / 'never'}", cwd=tmp_path)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(attempt, cases))
    for (args, expected), proc in results:
        assert proc.returncode != 0, args
        assert expected in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr, args
    assert not (tmp_path / "never").exists()
    assert not os.path.exists(tmp_path / "outputs")


def test_a_kernel_blown_to_inf_still_gets_its_row_and_the_summary(tmp_path):
    """No divergence threshold: at lr=3e38 one step's update overflows float32 (the kernel is
    inf); the job is `diverged`, the sweep's summary written as usual."""
    proc, sweep_dir = sweep(
        tmp_path, "optim.lr=0.01,3e38", "trainer.steps=50", "trainer.divergence_threshold=null"
    )
    assert proc.returncode == 0, proc.stderr  # a diverged job is not a failure
    assert "Traceback" not in proc.stderr
    statuses = {row["job"]: row["status"] for row in summary_rows(sweep_dir)}
    assert statuses == {"0": "completed", "1": "diverged"}
    blown = read_metrics(jobs(sweep_dir)[1])  # strict JSON: a non-finite number is null
    assert blown["final_loss"] is None and blown["diverged_at_step"] >= 1
    assert None in blown["weight"][0]  # the infinite kernel, as strict JSON has it
    assert (sweep_dir / "summary.png").stat().st_size > 0
