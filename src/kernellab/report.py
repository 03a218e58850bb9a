"""Sweep summary: one row per Hydra multirun job, and the jobs' loss curves, in the sweep dir.

Everything is read back from what the jobs left on disk (`.hydra/`, `metrics.json`, event files),
so a report can be rebuilt for any sweep dir at any time: finished, half-finished (a job without
`metrics.json` is reported as `missing`), or copied back from a cluster. A sweep dir is one holding
Hydra's `multirun.yaml` (callbacks.SweepReport writes it for sweepers that don't). Rows are sorted by
the sweep's `objective` (`final_loss` or `kernel_error`, from a job's `.hydra/config.yaml`).

    python -m kernellab.report SWEEP_DIR
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import logging
import math
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from kernellab import chart
from kernellab._hydra_private import BasicSweeper
from kernellab.checkpoint import CHECKPOINT_FILE
from kernellab.errors import EXIT_USAGE
from kernellab.eventfile import scalar_curve
from kernellab.paths import AUTO_RESUME, path_override
from kernellab.paths import job_dir as subdir_name
from kernellab.rundir import atomic_write, in_use, read_metrics
from kernellab.tracking import LOSS_TAG

log = logging.getLogger(__name__)

CSV_FILE, MD_FILE, PNG_FILE = "summary.csv", "summary.md", "summary.png"
MULTIRUN_YAML = "multirun.yaml"  # Hydra's record of a multirun's config, in the sweep dir
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
MD_COLUMNS = COLUMNS[:-1]  # for people: the dir's name only repeats the job and its overrides
DEFAULT_OBJECTIVE = "final_loss"
FAILED = {"failed", "missing"}  # statuses counted as failures
UNFINISHED = ("interrupted", "not started")  # what continuing a sweep trains
UNSEEN = ("missing", "not started")  # jobs whose dir holds no metrics.json
CONTINUE_SETS = ("hydra.mode", "hydra.sweep.dir")  # a continued sweep's command sets these itself
MAX_LEGEND = 20  # beyond this many curves a legend is unreadable; the table says which is which
# Loss curves drawn: the best jobs' (rows are sorted by the objective). Each is read from its job's
# event files, and beyond a few dozen they are an unreadable tangle; the table has every job.
MAX_CURVES = 50


class ReportError(Exception):
    """A path that can't be reported on: missing, not a sweep dir, or holding no jobs."""


@dataclass
class JobRow:
    """One job as its dir tells it."""

    job: int | None  # hydra.job.num
    dir: Path
    overrides: list[str]
    status: str  # metrics.json's; without one: `running`, `missing` or `not started`
    final_loss: float | None = None  # None when absent or not finite
    kernel_error: float | None = None
    weight: list[Any] | None = None
    bias: float | None = None
    wall_time_s: float | None = None

    @property
    def name(self) -> str:
        return f"job {self.job}" if self.job is not None else self.dir.name

    @property
    def label(self) -> str:
        return " ".join(self.overrides)

    def objective(self, name: str) -> float | None:
        """What the sweeper got from this job (its `objective`); None for a diverged, failed or
        missing job, which the sweeper saw as inf."""
        return getattr(self, name) if self.status in ("completed", "interrupted") else None


@dataclass
class SweepReport:
    sweep_dir: Path
    objective: str  # final_loss | kernel_error: what the rows are sorted by
    rows: list[JobRow]  # by objective, ascending; jobs without a finite one last
    best: JobRow | None  # the completed job with the lowest objective
    failed: int  # rows whose status is `failed` or `missing`
    files: list[Path]  # what write_report wrote
    # a grid sweep (Hydra's basic sweeper) left unfinished: the command that continues it
    continue_with: str | None

    @property
    def unfinished(self) -> list[JobRow]:
        return [row for row in self.rows if row.status in UNFINISHED]

    def short_label(self, row: JobRow) -> str:
        """The row's overrides of the keys that vary across jobs (all of them if none varies)."""
        return self._short_labels[id(row)]

    @functools.cached_property
    def _short_labels(self) -> dict[int, str]:
        varying = swept_values(self.rows)
        labels = {}
        for index, row in enumerate(self.rows):
            parts = [f"{k}={v[index]}" for k, v in varying.items() if v[index] is not None]
            labels[id(row)] = " ".join(parts) if parts else row.label
        return labels


def write_report(sweep_dir: Path) -> SweepReport:
    """Summarise every job under `sweep_dir` into summary.csv, summary.md and summary.png there;
    a grid sweep's jobs that never made a dir are rows too (`not started`)."""
    sweep_dir = Path(sweep_dir)
    jobs = find_jobs(sweep_dir)
    objective = read_objective(jobs)
    rows = [read_job(d) for d in jobs]
    grid = _grid(sweep_dir)
    if grid is not None:
        rows += _not_started(sweep_dir, grid, {row.job for row in rows})
    if not rows:
        raise ReportError(f"{sweep_dir}: no jobs (no directory with .hydra/ in it)")
    rows.sort(key=lambda row: _by_objective(row, objective))
    best = next(
        (r for r in rows if r.status == "completed" and r.objective(objective) is not None), None
    )
    failed = sum(r.status in FAILED for r in rows)
    unfinished = grid is not None and any(row.status in UNFINISHED for row in rows)
    continue_with = _continue_command(sweep_dir, grid) if unfinished else None
    report = SweepReport(sweep_dir, objective, rows, best, failed, [], continue_with)
    outputs = {CSV_FILE: _csv_table, MD_FILE: _md_table, PNG_FILE: _png}
    for name, render in outputs.items():
        atomic_write(sweep_dir / name, render(report))
        report.files.append(sweep_dir / name)
    return report


def find_jobs(sweep_dir: Path) -> list[Path]:
    """Every dir under `sweep_dir` holding `.hydra/`; skips multirun.yaml, .submitit/ and the like.

    Searched at any depth, so a custom `hydra.sweep.subdir` with a `/` in it is still found.
    """
    if not sweep_dir.exists():
        raise ReportError(f"{sweep_dir}: no such directory")
    if not sweep_dir.is_dir():
        raise ReportError(f"{sweep_dir}: not a directory")
    if not (sweep_dir / MULTIRUN_YAML).is_file():
        raise ReportError(f"{sweep_dir}: not a multirun dir (no {MULTIRUN_YAML} in it)")
    return sorted(p.parent for p in sweep_dir.rglob(".hydra") if p.is_dir())


def _grid(sweep_dir: Path) -> DictConfig | None:
    """The hydra node of a grid sweep's `multirun.yaml` (Hydra's basic sweeper: every job is known
    from it); None for other sweepers (Optuna samples its trials as it goes) and hand-made dirs."""
    config = OmegaConf.load(sweep_dir / MULTIRUN_YAML)
    if not str(OmegaConf.select(config, "hydra.sweeper._target_")).endswith("BasicSweeper"):
        return None
    return config.hydra


def _planned_jobs(hydra: DictConfig) -> list[list[str]]:
    """Each job's overrides, in job-number order, as the basic sweeper makes them."""
    params = [f"{key}={value}" for key, value in (hydra.sweeper.get("params") or {}).items()]
    overrides = OverridesParser.create().parse_overrides([*params, *hydra.overrides.task])
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def _not_started(sweep_dir: Path, hydra: DictConfig, seen: set[int | None]) -> list[JobRow]:
    """Rows for the planned jobs without a dir, named as kernellab's `hydra.sweep.subdir` does."""
    dirname = hydra.job.config.override_dirname
    rows = []
    for num, overrides in enumerate(_planned_jobs(hydra)):
        if num in seen:
            continue
        parsed = OverridesParser.create().parse_overrides(overrides)
        items = sorted(o.input_line for o in parsed if o.key_or_group not in dirname.exclude_keys)
        name = dirname.item_sep.join(items).replace("=", dirname.kv_sep)
        rows.append(JobRow(num, sweep_dir / subdir_name(num, name), overrides, "not started"))
    return rows


def _continue_command(sweep_dir: Path, hydra: DictConfig) -> str:
    """The command that continues a sweep: its own, in its dir, with `trainer.resume=auto`."""
    settings = [o for o in hydra.overrides.hydra if _key_value(o)[0] not in CONTINUE_SETS]
    task = [o for o in hydra.overrides.task if _key_value(o)[0] != "trainer.resume"]
    sweep = path_override("hydra.sweep.dir", sweep_dir)
    resume = f"trainer.resume={AUTO_RESUME}"
    return shlex.join(["python", f"{hydra.job.name}.py", "-m", *settings, sweep, *task, resume])


def read_job(job_dir: Path) -> JobRow:
    try:
        metrics = read_metrics(job_dir)
    except FileNotFoundError:  # still running, or killed before it could write one
        metrics = {"status": _without_metrics(job_dir)}
    except (OSError, ValueError) as error:  # not kernellab's (it writes atomically), but say so
        log.warning("%s: unreadable metrics: %s", job_dir, error)
        metrics = {"status": "failed"}
    overrides = _read_yaml(job_dir / ".hydra" / "overrides.yaml")
    return JobRow(
        job=_job_number(job_dir),
        dir=job_dir,
        overrides=[str(o) for o in overrides] if isinstance(overrides, list) else [],
        status=str(metrics.get("status", "missing")),
        final_loss=_finite(metrics.get("final_loss")),
        kernel_error=_finite(metrics.get("kernel_error")),
        weight=metrics.get("weight"),
        bias=_finite(metrics.get("bias")),
        wall_time_s=_finite(metrics.get("wall_time_s")),
    )


def _without_metrics(job_dir: Path) -> str:
    """A job without metrics.json: `running` (another process holds its lock, e.g. a SLURM job
    the sweep's process no longer waits for), `missing` (it trained: a checkpoint or events, then
    was killed) or `not started`."""
    if in_use(job_dir):
        return "running"
    trained = (job_dir / CHECKPOINT_FILE).exists() or any(job_dir.glob("events.out.tfevents.*"))
    return "missing" if trained else "not started"


def read_objective(jobs: list[Path]) -> str:
    """The sweep's `objective`, from the first job whose `.hydra/config.yaml` names one."""
    for job_dir in jobs:
        config = _read_yaml(job_dir / ".hydra" / "config.yaml")
        if isinstance(config, dict) and isinstance(config.get("objective"), str):
            return config["objective"]
    return DEFAULT_OBJECTIVE


def best_line(report: SweepReport) -> str:
    best, objective = report.best, report.objective
    if best is None:
        counts = f"{len(report.rows)} jobs, {report.failed} failed or missing"
        return f"best: none: no job completed with a finite {objective} ({counts})"
    label = report.short_label(best)
    overrides = f" ({label})" if label else ""
    return f"best: {best.name}{overrides} {objective}={best.objective(objective):.4g}"


def _job_number(job_dir: Path) -> int | None:
    """hydra.job.num from .hydra/hydra.yaml; failing that, the leading number of the dir's name.

    Only the file's `hydra.job` section is parsed: the whole file takes about 1 ms to parse, a
    second for a 1,000-job sweep's report."""
    try:
        section = _JOB_SECTION.search((job_dir / ".hydra" / "hydra.yaml").read_text())
        return int(yaml.load("job:\n" + section.group(1), Loader=_LOADER)["job"]["num"])
    except (OSError, AttributeError, TypeError, KeyError, ValueError, yaml.YAMLError):
        match = re.match(r"(\d+)(_|$)", job_dir.name)
        return int(match.group(1)) if match else None


# `  job:` and its lines (indented deeper) in a hydra.yaml, as Hydra and yaml.dump write it
_JOB_SECTION = re.compile(r"^  job:\n((?:    .*\n)*)", re.MULTILINE)


def _read_yaml(path: Path) -> Any:
    """The file's content, or None when it is absent or half-written (Hydra writes in place)."""
    try:
        return yaml.load(path.read_text(), Loader=_LOADER)  # libyaml: 1,000 jobs' files
    except (OSError, ValueError, yaml.YAMLError):
        return None


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _finite(value: Any) -> float | None:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if is_number and math.isfinite(value) else None


def _by_objective(row: JobRow, objective: str) -> tuple[Any, ...]:
    # without a value: ended badly, then never ended, then never started
    job = row.job if row.job is not None else math.inf
    value = row.objective(objective)
    return (
        value is None,
        value or 0.0,
        UNSEEN.index(row.status) + 1 if row.status in UNSEEN else 0,
        job,
        str(row.dir),
    )


# --- tables ---


def _g(value: float | None) -> str:
    """4 significant digits; empty when there is no value."""
    return "" if value is None else f"{value:.4g}"


def _compact(value: Any) -> str:
    """A nested list as `[[-0.998,0.997]]`: one cell, 4 significant digits."""
    if isinstance(value, list):
        return "[" + ",".join(_compact(v) for v in value) + "]"
    return "null" if value is None else _g(value)


def _cells(row: JobRow, sweep_dir: Path, label: str, final_loss: str, error: str) -> list[str]:
    return [
        "" if row.job is None else str(row.job),
        label,
        row.status,
        final_loss,
        error,
        "" if row.weight is None else _compact(row.weight),
        _g(row.bias),
        _g(row.wall_time_s),
        row.dir.relative_to(sweep_dir).as_posix(),
    ]


def _csv_table(report: SweepReport) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in report.rows:
        # full precision: they are what the rows are sorted by; all the overrides
        loss = "" if row.final_loss is None else repr(row.final_loss)
        error = "" if row.kernel_error is None else repr(row.kernel_error)
        writer.writerow(_cells(row, report.sweep_dir, row.label, loss, error))
    return out.getvalue().encode()


def _md_table(report: SweepReport) -> bytes:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [f"# Sweep summary: {report.sweep_dir.name}", "", best_line(report), ""]
    if report.continue_with:
        lines += [f"Continue it: `{report.continue_with}`", ""]
    lines += [line(MD_COLUMNS), line(["---"] * len(MD_COLUMNS))]
    rows = [
        _cells(r, report.sweep_dir, report.short_label(r), _g(r.final_loss), _g(r.kernel_error))
        for r in report.rows
    ]
    rows = [cells[: len(MD_COLUMNS)] for cells in rows]
    lines += [line(cells) for cells in rows]
    return ("\n".join(lines) + "\n").encode()


# --- plot ---


def swept_values(rows: list[JobRow]) -> dict[str, list[str | None]]:
    """Per override key that differs between jobs, each row's value (None where a job lacks it)."""
    parsed = [dict(_key_value(o) for o in r.overrides) for r in rows]
    keys = dict.fromkeys(k for p in parsed for k in p)  # first-seen order
    values = {k: [p.get(k) for p in parsed] for k in keys}
    return {k: v for k, v in values.items() if len(set(v)) > 1}


def _key_value(override: str) -> tuple[str, str]:
    """`+model.bias=false` -> (`model.bias`, `false`): Hydra's add/delete prefixes don't matter here."""
    key, _, value = override.lstrip("+~").partition("=")
    return key, value


def numeric_params(swept: dict[str, list[str | None]]) -> dict[str, list[float]]:
    """The swept keys whose values all parse as numbers, e.g. optim.lr but not model.kernel_size."""
    numeric = {}
    for key, values in swept.items():
        try:
            numeric[key] = [float(v) for v in values]  # a job without the key: TypeError
        except (TypeError, ValueError):
            continue
    return numeric


def _png(report: SweepReport) -> bytes:
    rows, params = report.rows, numeric_params(swept_values(report.rows))
    labels = [f"{'?' if r.job is None else r.job}: {report.short_label(r)}" for r in rows]
    curves = _loss_curves(rows[:MAX_CURVES], labels)
    panels = [_curves_panel(curves, len(rows), report.objective)]
    panels += [_objective_panel(key, xs, rows, report.objective) for key, xs in params.items()]
    legend = curves if len(curves) <= MAX_LEGEND else []
    return chart.render(panels, legend, legend_columns=len(panels))


def _loss_curves(rows: list[JobRow], labels: list[str]) -> list[chart.Series]:
    """Each job's loss curve as a log scale can show it (NaN, inf and 0 dropped), read from its
    event files; jobs without any are left out."""
    curves = []
    for row, label in zip(rows, labels, strict=False):
        if not any(row.dir.glob("events.out.tfevents.*")):
            continue
        points = [(s, v) for s, v in scalar_curve(row.dir, LOSS_TAG) if 0 < v < math.inf]
        if points:
            colour = chart.COLOURS[len(curves) % len(chart.COLOURS)]
            curves.append(chart.Series(points, label, colour))
    return curves


def _curves_panel(curves: list[chart.Series], jobs: int, objective: str) -> chart.Panel:
    best = f", the best {MAX_CURVES} by {objective}" if jobs > MAX_CURVES else ""
    panel = chart.Panel(
        f"{LOSS_TAG} ({len(curves)} of {jobs} jobs{best})",
        "step",
        series=curves,
        log_y=True,
        note="no loss curves yet",
    )
    if curves:  # a diverging job would squash every other curve into the bottom: let it leave
        panel.y_top = 100 * max(c.points[0][1] for c in curves)
    return panel


def _objective_panel(key: str, xs: list[float], rows: list[JobRow], objective: str) -> chart.Panel:
    # > 0: a log scale can't show 0 (nor a missing value); no line: other swept keys vary along it
    values = [r.objective(objective) for r in rows]
    points = [(x, v) for x, v in zip(xs, values, strict=True) if (v or 0) > 0]
    return chart.Panel(
        f"{objective} vs {key}",
        key,
        objective,
        series=[chart.Series(points, markers=True)] if points else [],
        log_x=min(xs) > 0 and max(xs) / min(xs) >= 10,
        log_y=True,
        note=f"no job has a {objective} above 0",
    )


# --- command line ---


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kernellab.report",
        description=f"Write {CSV_FILE}, {MD_FILE} and {PNG_FILE} into a Hydra sweep dir: one row "
        "per job, sorted by the sweep's objective, and the loss curves. Works on unfinished "
        f"sweeps too; refuses a dir without {MULTIRUN_YAML}.",
    )
    parser.add_argument(
        "sweep_dir", type=Path, help=f"the multirun dir (hydra.sweep.dir, with {MULTIRUN_YAML})"
    )
    args = parser.parse_args(argv)
    try:
        report = write_report(args.sweep_dir)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # e.g. a read-only sweep dir
        print(f"error: {args.sweep_dir}: {error}", file=sys.stderr)
        return 1
    for path in report.files:
        print(path)
    print(best_line(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
