"""`kernellab.report` on a real sweep (and on a hand-made one): tables, picture, command line.

Expected values come from the jobs' own files (`metrics.json`, `.hydra/`), never from the report.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from kernellab.report import SweepReport, main, write_report
from kernellab.rundir import write_metrics
from kernellab.studies import numeric_params, swept_values
from kernellab.summary_tables import best_line
from tests.helpers import run_cli

# one xdist worker: the real sweep (a module fixture) is run once, not once per worker
pytestmark = pytest.mark.xdist_group("report")

SUMMARIES = ["summary.csv", "summary_groups.csv", "summary.md", "summary.png"]
COLUMNS = [
    "job",
    "overrides",
    "status",
    "final_loss",
    "kernel_error",
    "weight",
    "bias",
    "wall_time_s",
    "dir",
]
LRS = ["0.001", "0.01", "0.1"]


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real 3-job multirun (0.1 diverges), shared; tests work on copies of it."""
    root = tmp_path_factory.mktemp("report")
    sweep_dir = root / "sweep"
    lrs = ",".join(LRS)
    run_cli(
        "-m",
        f"optim.lr={lrs}",
        "trainer.steps=20",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=root,
        check=True,
    )
    return sweep_dir


def fresh_copy(sweep_dir: Path, dest: Path) -> Path:
    """A private copy of the sweep without any summary a multirun callback may have written."""
    copy = shutil.copytree(sweep_dir, dest)
    for name in SUMMARIES:
        (copy / name).unlink(missing_ok=True)
    return copy


@pytest.fixture
def sweep(real_sweep: Path, tmp_path: Path) -> Path:
    return fresh_copy(real_sweep, tmp_path / "sweep")


@pytest.fixture(scope="module")
def report(real_sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> SweepReport:
    """write_report on a copy of the sweep, once, for the tests that only read its results."""
    return write_report(fresh_copy(real_sweep, tmp_path_factory.mktemp("reported") / "sweep"))


def job_dirs(sweep_dir: Path) -> list[Path]:
    return [d for d in sweep_dir.iterdir() if (d / ".hydra").is_dir()]


def on_disk(job_dir: Path) -> dict[str, Any]:
    """What a job left: its number, overrides and metrics (None when it has no metrics.json)."""
    hydra_cfg = yaml.safe_load((job_dir / ".hydra" / "hydra.yaml").read_text())
    metrics = job_dir / "metrics.json"
    return {
        "num": hydra_cfg["hydra"]["job"]["num"],
        "overrides": yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()),
        "metrics": json.loads(metrics.read_text()) if metrics.exists() else None,
    }


def expected_order(sweep_dir: Path) -> list[Path]:
    """Job dirs by final loss from metrics.json; no metrics or no finite loss last."""

    def key(d: Path) -> tuple[bool, float]:
        loss = (on_disk(d)["metrics"] or {}).get("final_loss")
        finite = loss is not None and math.isfinite(loss)
        return (not finite, loss if finite else 0.0)

    return sorted(job_dirs(sweep_dir), key=key)


def completed_by_loss(sweep_dir: Path) -> list[Path]:
    return [d for d in expected_order(sweep_dir) if _completed(on_disk(d)["metrics"])]


def _completed(metrics: dict[str, Any] | None) -> bool:
    return bool(metrics) and metrics["status"] == "completed" and metrics["final_loss"] is not None


def flat(values: Any) -> list[float]:
    return [x for v in values for x in flat(v)] if isinstance(values, list) else [values]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_report_rows_are_the_jobs_sorted_by_final_loss(report: SweepReport) -> None:
    sweep = report.sweep_dir
    assert len(report.rows) == len(job_dirs(sweep)) == 3
    assert [r.dir for r in report.rows] == expected_order(sweep)
    best_dir = completed_by_loss(sweep)[0]
    assert report.best is not None and report.best.dir == best_dir
    assert report.best.overrides == on_disk(best_dir)["overrides"]
    assert report.failed == sum(
        on_disk(d)["metrics"]["status"] == "failed" for d in job_dirs(sweep)
    )
    assert report.files == [sweep / name for name in SUMMARIES]
    # optim.lr is swept and numeric; trainer.steps is the same in every job, so not swept
    lrs = [
        dict(o.split("=", 1) for o in on_disk(r.dir)["overrides"])["optim.lr"] for r in report.rows
    ]
    assert numeric_params(swept_values(report.rows)) == {"optim.lr": [float(x) for x in lrs]}


@pytest.mark.slow
def test_csv_and_markdown_tables_hold_each_jobs_own_values(report: SweepReport) -> None:
    sweep = report.sweep_dir
    rows = read_csv(sweep / "summary.csv")
    assert list(rows[0]) == COLUMNS
    assert [sweep / r["dir"] for r in rows] == expected_order(sweep)
    for row in rows:
        job = on_disk(sweep / row["dir"])
        metrics = job["metrics"]
        assert int(row["job"]) == job["num"]
        assert row["overrides"] == " ".join(job["overrides"])
        assert row["status"] == metrics["status"]
        if metrics["final_loss"] is None:
            assert row["final_loss"] == ""
        else:
            assert float(row["final_loss"]) == metrics["final_loss"]
        assert float(row["kernel_error"]) == metrics["kernel_error"]
        if metrics["status"] == "completed":  # 4 significant digits
            assert flat(json.loads(row["weight"])) == pytest.approx(
                flat(metrics["weight"]), rel=1e-3
            )
            assert float(row["bias"]) == pytest.approx(metrics["bias"], rel=1e-3)

    table = [
        line for line in (sweep / "summary.md").read_text().splitlines() if line.startswith("|")
    ]
    assert len(table) == 2 + 3  # header, rule, one row per job
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in table[2:]]
    assert [c[0] for c in cells] == [r["job"] for r in rows]
    # only what varies across the jobs: optim.lr, not trainer.steps=20
    lrs = [dict(o.split("=") for o in r["overrides"].split())["optim.lr"] for r in rows]
    assert [c[1] for c in cells] == [f"optim.lr={lr}" for lr in lrs]


@pytest.mark.slow
def test_png_is_a_real_picture(report: SweepReport) -> None:
    png = report.sweep_dir / "summary.png"
    assert png.stat().st_size > 10_000
    with Image.open(png) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width >= 800 and height >= 400
    assert not list(report.sweep_dir.glob(".summary*"))  # no temporary files left behind


@pytest.mark.slow
def test_command_line_rebuilds_the_files_and_prints_the_best_job(sweep: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kernellab.report", str(sweep)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert proc.returncode == 0, proc.stderr
    *paths, best = proc.stdout.splitlines()
    assert paths == [str(sweep / name) for name in SUMMARIES]  # no replicates: no group runs
    assert all(Path(p).is_file() for p in paths)
    job = on_disk(completed_by_loss(sweep)[0])
    varying = " ".join(o for o in job["overrides"] if o.startswith("optim.lr="))
    final_loss = job["metrics"]["final_loss"]
    assert best == f"best: job {job['num']} ({varying}) final_loss={final_loss:.4g}"


@pytest.mark.slow
def test_half_finished_sweep_reports_the_unfinished_job_as_missing(sweep: Path) -> None:
    first, second = completed_by_loss(sweep)[:2]
    (first / "metrics.json").unlink()  # as if the best job were still running

    report = write_report(sweep)

    assert len(report.rows) == 3
    assert report.rows[-1].dir == first and report.rows[-1].status == "missing"
    assert report.failed == 1
    assert report.best is not None and report.best.dir == second
    assert read_csv(sweep / "summary.csv")[-1]["status"] == "missing"


@pytest.mark.parametrize("kind", ["missing", "file", "run dir", "no multirun.yaml", "no jobs"])
def test_a_path_that_is_not_a_sweep_is_one_line_and_exit_2(
    tmp_path: Path, kind: str, capsys
) -> None:
    path = tmp_path / "sweep"
    if kind == "file":
        path.write_text("")
    elif kind == "run dir":  # a single run: .hydra/ and metrics.json, no multirun.yaml
        (path / ".hydra").mkdir(parents=True)
        write_metrics(path, {"status": "completed", "final_loss": 0.5})
    elif kind == "no multirun.yaml":  # job dirs, as if copied without the sweep's own file
        (path / "0_optim.lr=0.1" / ".hydra").mkdir(parents=True)
    elif kind == "no jobs":
        path.mkdir()
        (path / "multirun.yaml").write_text("hydra: {}\n")
    before = sorted(tmp_path.rglob("*"))

    assert main([str(path)]) == 2  # returned, not raised: no traceback
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"error: {path}: ") and err.count("\n") == 1
    if kind in ("run dir", "no multirun.yaml"):
        assert "not a multirun dir (no multirun.yaml in it)" in err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_hand_made_sweep_skips_non_job_dirs_and_counts_failures(tmp_path: Path) -> None:
    """The launcher's and sweeper's own files are not jobs; names give the job number as a fallback."""
    sweep = tmp_path / "sweep"
    (sweep / ".submitit" / "123_0").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    (sweep / "optimization_results.yaml").write_text("best_value: 0.1\n")
    jobs = [
        (
            0,
            ["model.kernel_size=[1,2]", "optim.lr=0.1"],
            {"status": "completed", "final_loss": 0.5},
        ),
        (
            1,
            ["model.kernel_size=[1,3]", "optim.lr=0.01"],
            {"status": "completed", "final_loss": 0.25},
        ),
        (2, ["model.kernel_size=[1,3]", "optim.lr=1"], {"status": "failed", "final_loss": None}),
        (3, ["model.kernel_size=[1,2]", "optim.lr=1"], None),  # killed before metrics.json
        (4, ["model.kernel_size=[1,2]", "optim.lr=2"], None),  # stopped before it trained
    ]
    for num, overrides, metrics in jobs:
        job_dir = sweep / f"{num}_{','.join(overrides)}"  # no hydra.yaml: the number is in the name
        (job_dir / ".hydra").mkdir(parents=True)
        (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        if metrics is not None:
            write_metrics(job_dir, {**metrics, "weight": [[-1.0, 1.0]], "bias": 0.0})
        if num == 3:
            (job_dir / "events.out.tfevents.0.host.1.0").write_bytes(b"")  # it had trained

    report = write_report(sweep)

    assert [(r.job, r.status) for r in report.rows] == [
        (1, "completed"),
        (0, "completed"),
        (2, "failed"),
        (3, "missing"),
        (4, "not started"),
    ]
    assert report.failed == 2  # a job that never trained is not a failure: continuing runs it
    assert (
        best_line(report) == "best: job 1 (model.kernel_size=[1,3] optim.lr=0.01) final_loss=0.25"
    )
    # kernel_size is swept but not a number: only optim.lr gets a final-loss panel
    assert list(numeric_params(swept_values(report.rows))) == ["optim.lr"]
    assert all((sweep / name).is_file() for name in SUMMARIES)  # a picture even with no events


def test_best_line_says_so_when_no_job_succeeded(tmp_path: Path) -> None:
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "0" / "checkpoint.pt").write_bytes(b"")  # trained, then killed
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")

    line = best_line(write_report(tmp_path))

    assert line.startswith("best: none") and "1 failed or missing" in line


def hand_made_sweep(sweep: Path, jobs: list[tuple[int, list[str], dict | None]], **config) -> None:
    (sweep / "multirun.yaml").parent.mkdir(parents=True, exist_ok=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    for num, overrides, metrics in jobs:
        job_dir = sweep / f"{num}_{','.join(overrides)}"
        (job_dir / ".hydra").mkdir(parents=True)
        (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        (job_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": 0, **config}))
        if metrics is not None:
            write_metrics(job_dir, {"weight": [[-1.0, 1.0]], "bias": 0.0, **metrics})


def test_rows_are_sorted_by_the_sweeps_objective(tmp_path: Path) -> None:
    common = "hparams_search=edge_optuna"  # the same in every job: not in the md rows
    jobs = [
        (
            0,
            ["optim.lr=0.1", common],
            {"status": "completed", "final_loss": 0.1, "kernel_error": 0.9},
        ),
        (
            1,
            ["optim.lr=0.2", common],
            {"status": "completed", "final_loss": 0.3, "kernel_error": 0.2},
        ),
        (
            2,
            ["optim.lr=0.3", common],
            {"status": "diverged", "final_loss": None, "kernel_error": 0.01},
        ),
        (
            3,
            ["optim.lr=0.4", common],
            {"status": "completed", "final_loss": 0.2, "kernel_error": 0.5},
        ),
    ]
    hand_made_sweep(tmp_path / "by_error", jobs, objective="kernel_error")
    hand_made_sweep(tmp_path / "by_loss", jobs)  # no objective in the config: final_loss

    by_error = write_report(tmp_path / "by_error")
    by_loss = write_report(tmp_path / "by_loss")

    # a diverged job returned inf to the sweeper, whatever its last kernel's error
    assert [r.job for r in by_error.rows] == [1, 3, 0, 2]
    assert [r.job for r in by_loss.rows] == [0, 3, 1, 2]
    assert best_line(by_error) == "best: job 1 (optim.lr=0.2) kernel_error=0.2"
    assert best_line(by_loss) == "best: job 0 (optim.lr=0.1) final_loss=0.1"
    md = (tmp_path / "by_error" / "summary.md").read_text()
    assert common not in md and "| 1 | optim.lr=0.2 | completed | 0.3 | 0.2 |" in md
    csv_rows = read_csv(tmp_path / "by_error" / "summary.csv")
    assert csv_rows[0]["overrides"] == f"optim.lr=0.2 {common}"  # the CSV keeps them all


@pytest.mark.parametrize(
    "content",
    [
        '{"status": "completed", "final_loss": 0.1, "weight": {"a": 1}}',  # a dict for a matrix
        "[1, 2]",  # a list, not an object
        "NaN",
        '{"status": 3}',
        '{"status": "completed", "weight": [[1, "x"]]}',
        "{not json",
    ],
)
def test_a_job_whose_metrics_are_not_kernellabs_is_a_failed_row_and_the_report_goes_on(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    for num, text in ((0, content), (1, None)):
        job_dir = sweep / f"{num}_seed={num}"
        (job_dir / ".hydra").mkdir(parents=True)
        (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={num}"]))
        if text is None:
            write_metrics(job_dir, {"status": "completed", "final_loss": 0.5, "weight": [[1.0]]})
        else:
            (job_dir / "metrics.json").write_text(text)

    report = write_report(sweep)

    assert [(r.job, r.status) for r in report.rows] == [(1, "completed"), (0, "failed")]
    assert "0_seed=0: unreadable metrics.json" in caplog.text
    assert all((sweep / name).is_file() for name in SUMMARIES)


def test_a_corrupt_multirun_yaml_falls_back_to_the_job_dirs_and_says_so(
    sweep: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (sweep / "multirun.yaml").write_text("hydra: [[[: {\n")
    report = write_report(sweep)
    assert len(report.rows) == len(job_dirs(sweep))
    assert "multirun.yaml is unreadable" in caplog.text
    assert report.continue_with is None


def test_a_job_with_channels_has_its_whole_kernel_and_biases_in_summary_csv(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    job_dir = sweep / "0_seed=0"
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["seed=0"]))
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    weight = [[[[0.299]], [[0.587]], [[0.114]]], [[[0.5]], [[-0.25]], [[0.125]]]]  # (2, 3, 1, 1)
    metrics = {"status": "completed", "final_loss": 0.5, "weight": weight, "bias": [0.25, -0.5]}
    write_metrics(job_dir, metrics)
    write_report(sweep)
    with (sweep / "summary.csv").open() as table:
        (row,) = csv.DictReader(table)
    assert row["weight"] == "[[[[0.299]],[[0.587]],[[0.114]]],[[[0.5]],[[-0.25]],[[0.125]]]]"
    assert row["bias"] == "[0.25,-0.5]"
