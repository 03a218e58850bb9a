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
import dataclasses
import functools
import io
import logging
import math
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from kernellab import chart
from kernellab._hydra_private import BasicSweeper
from kernellab.checkpoint import CHECKPOINT_FILE
from kernellab.errors import EXIT_USAGE
from kernellab.eventfile import scalar_curves
from kernellab.group_runs import CURVE_TAGS, Curves, quantile_curve, write_group_runs
from kernellab.paths import AUTO_RESUME, path_override
from kernellab.paths import job_dir as subdir_name
from kernellab.rundir import atomic_write, in_use, read_metrics
from kernellab.studies import (
    GROUP_COLUMNS,
    Group,
    StudySettings,
    group_jobs,
    group_names,
    group_table,
    has_replicates,
    settings_of,
    verdict,
)
from kernellab.tracking import LOSS_TAG

log = logging.getLogger(__name__)

CSV_FILE, MD_FILE, PNG_FILE = "summary.csv", "summary.md", "summary.png"
GROUPS_CSV_FILE = "summary_groups.csv"
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
    settings: StudySettings = field(default_factory=StudySettings)
    groups: list[Group] = field(default_factory=list)  # by number
    group_rows: list[dict[str, Any]] = field(default_factory=list)  # studies.GROUP_COLUMNS

    @property
    def replicated(self) -> bool:
        """Some group holds several jobs: the sweep answers as a study."""
        return has_replicates(self.groups)

    @property
    def verdict(self) -> str:
        return verdict(self.group_rows, self.groups, self.settings)

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


def write_report(sweep_dir: Path, **study: Any) -> SweepReport:
    """Summarise every job under `sweep_dir` into summary.csv, summary.md and summary.png there;
    a grid sweep's jobs that never made a dir are rows too (`not started`)."""
    report = read_report(sweep_dir, **study)
    outputs = {CSV_FILE: _csv_table, GROUPS_CSV_FILE: _groups_csv, MD_FILE: _md_table}
    outputs[PNG_FILE] = _png
    # every job's curves for a study's groups; without replicates, those summary.png draws
    curves = read_curves(report.rows if report.replicated else report.rows[:MAX_CURVES])
    for name, render in outputs.items():
        data = render(report, curves) if render is _png else render(report)
        atomic_write(report.sweep_dir / name, data)
        report.files.append(report.sweep_dir / name)
    if report.replicated:  # else each group is one job: its run is already there
        report.files.append(write_group_runs(report, curves))
    return report


def read_report(sweep_dir: Path, **study: Any) -> SweepReport:
    """Every job of the sweep in `sweep_dir` and its groups, as their files tell them; writes
    nothing. `study`: StudySettings fields to use instead of the sweep's own (`replicates`,
    `recovered_within`), to look at a finished sweep another way."""
    sweep_dir = Path(sweep_dir)
    jobs = find_jobs(sweep_dir)
    settings = dataclasses.replace(read_settings(jobs), **study)
    objective = settings.objective
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
    continue_with = continue_command(sweep_dir, grid) if unfinished else None
    groups = group_jobs(rows, settings.replicates)
    table = group_table(groups, settings)
    return SweepReport(
        sweep_dir, objective, rows, best, failed, [], continue_with, settings, groups, table
    )


@dataclass
class Study:
    """A sweep as data: `jobs` keyed as summary.csv's columns, `groups` as summary_groups.csv's;
    numbers as numbers, a missing value None."""

    sweep_dir: Path
    jobs: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    verdict: str

    def to_pandas(self) -> tuple[Any, Any]:
        """(jobs, groups) as pandas DataFrames (pandas is not a dependency of kernellab)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Study.to_pandas needs pandas: pip install pandas") from None
        return pandas.DataFrame(self.jobs, columns=COLUMNS), pandas.DataFrame(
            self.groups, columns=GROUP_COLUMNS
        )


def load(sweep_dir: Path | str, **study: Any) -> Study:
    """The study in `sweep_dir`, read from its jobs' files (as `python -m kernellab.report`
    summarises it; nothing is written). `study`: as read_report's."""
    report = read_report(Path(sweep_dir), **study)
    jobs = [
        dict(zip(COLUMNS, _job_values(row, report.sweep_dir), strict=True)) for row in report.rows
    ]
    return Study(report.sweep_dir, jobs, [dict(row) for row in report.group_rows], report.verdict)


def _job_values(row: JobRow, sweep_dir: Path) -> list[Any]:
    """A job's summary.csv cells as values."""
    return [
        row.job,
        row.label,
        row.status,
        row.final_loss,
        row.kernel_error,
        row.weight,
        row.bias,
        row.wall_time_s,
        row.dir.relative_to(sweep_dir).as_posix(),
    ]


def read_curves(rows: list[JobRow]) -> Curves:
    """Each job's `train/loss` and `kernel/error` curves, read from its event files: what the
    group runs and summary.png draw. Jobs without event files are left out."""
    return {
        row.dir: scalar_curves(row.dir, CURVE_TAGS)
        for row in rows
        if any(row.dir.glob("events.out.tfevents.*"))
    }


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
    try:
        config = OmegaConf.load(sweep_dir / MULTIRUN_YAML)
        if not str(OmegaConf.select(config, "hydra.sweeper._target_")).endswith("BasicSweeper"):
            return None
        _planned_jobs(config.hydra)  # the grid must be readable to be of use
    except Exception as error:  # any damage: OmegaConf's and Hydra's parsers raise their own
        log.warning(
            "%s is unreadable (%s: %s): the report lists the job dirs found, and can't say which "
            "jobs never started",
            sweep_dir / MULTIRUN_YAML,
            type(error).__name__,
            str(error).splitlines()[0] if str(error) else "",
        )
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


def continue_command(sweep_dir: Path, hydra: DictConfig) -> str:
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
        metrics = _unreadable(job_dir, str(error))
    else:
        if problem := _malformed(metrics):
            metrics = _unreadable(job_dir, problem)
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


STATUSES = ("completed", "diverged", "interrupted", "failed", "not started")  # metrics.json's


def _malformed(metrics: Any) -> str | None:
    """What makes a metrics.json unlike any kernellab writes, or None."""
    if not isinstance(metrics, dict):
        return f"holds a {type(metrics).__name__}, not an object"
    if metrics.get("status") not in STATUSES:
        return f"status {metrics.get('status')!r} is none of {', '.join(STATUSES)}"
    weight = metrics.get("weight")
    if weight is not None and not _numbers_in_lists(weight):
        return "weight is not a nested list of numbers"
    return None


def _numbers_in_lists(value: Any) -> bool:
    if isinstance(value, list):
        return all(_numbers_in_lists(v) for v in value)
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _unreadable(job_dir: Path, why: str) -> dict[str, Any]:
    """A job whose metrics.json can't be read: a `failed` row; the console says why."""
    log.warning("%s: unreadable metrics.json (%s): reported as failed", job_dir, why)
    return {"status": "failed"}


def _without_metrics(job_dir: Path) -> str:
    """A job without metrics.json: `running` (another process holds its lock, e.g. a SLURM job
    the sweep's process no longer waits for), `missing` (it trained: a checkpoint or events, then
    was killed) or `not started`."""
    if in_use(job_dir):
        return "running"
    trained = (job_dir / CHECKPOINT_FILE).exists() or any(job_dir.glob("events.out.tfevents.*"))
    return "missing" if trained else "not started"


def read_settings(jobs: list[Path]) -> StudySettings:
    """The sweep's `objective` and `study.*`, from the first job whose `.hydra/config.yaml` can
    be read (they are the same in every job of a sweep)."""
    for job_dir in jobs:
        config = _read_yaml(job_dir / ".hydra" / "config.yaml")
        if isinstance(config, dict) and isinstance(config.get("objective"), str):
            return settings_of(config)
    return StudySettings()


def headline(report: SweepReport) -> str:
    """What a sweep answers in one line: the study's verdict when some setting was repeated
    (`study.replicates`), else its best job."""
    return report.verdict if report.replicated else best_line(report)


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


def _groups_csv(report: SweepReport) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(GROUP_COLUMNS)
    for row in report.group_rows:  # full precision, as summary.csv
        writer.writerow(
            [
                "" if row[c] is None else repr(row[c]) if isinstance(row[c], float) else row[c]
                for c in GROUP_COLUMNS
            ]
        )
    return out.getvalue().encode()


# The groups table of summary.md: (heading, how to show a group row's values)
MD_GROUP_COLUMNS = [
    ("group", lambda r: str(r["group"])),
    ("overrides", lambda r: r["overrides"]),
    ("jobs", lambda r: str(r["jobs"])),
    ("completed", lambda r: str(r["completed"])),
    ("diverged", lambda r: str(r["diverged"])),
    ("failed", lambda r: str(r["failed"])),
    ("recovered (95% CI)", lambda r: _share(r)),
    ("kernel_error median [p10, p90]", lambda r: _spread(r, "kernel_error")),
    ("final_loss median [p10, p90]", lambda r: _spread(r, "final_loss")),
    ("best job", lambda r: "" if r["best_job"] is None else str(r["best_job"])),
    ("p vs best", lambda r: "" if r["p_vs_best"] is None else f"{r['p_vs_best']:.2g}"),
]


def _share(row: dict[str, Any]) -> str:
    if row["recovered"] is None:
        return ""
    interval = (
        "" if row["jobs"] < 2 else f" ({row['recovered_low']:.0%}–{row['recovered_high']:.0%})"
    )
    return f"{row['recovered']:.0%}{interval}"


def _spread(row: dict[str, Any], metric: str) -> str:
    median, low, high = (row[f"{metric}_{s}"] for s in ("median", "p10", "p90"))
    return "" if median is None else f"{_g(median)} [{_g(low)}, {_g(high)}]"


def _md_line(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _md_groups(report: SweepReport) -> list[str]:
    """summary.md's study part: the verdict and a row per group."""
    replicates = ", ".join(report.settings.replicates)
    lines = [
        f"## Groups (jobs alike but for {replicates}; recovered: kernel_error <= "
        f"{report.settings.recovered_within:g})",
        "",
        report.verdict,
        "",
        _md_line([heading for heading, _ in MD_GROUP_COLUMNS]),
        _md_line(["---"] * len(MD_GROUP_COLUMNS)),
    ]
    lines += [_md_line([show(row) for _, show in MD_GROUP_COLUMNS]) for row in report.group_rows]
    return [*lines, "", "## Jobs", ""]


def _continue_line(report: SweepReport) -> list[str]:
    return [f"Continue it: `{report.continue_with}`", ""] if report.continue_with else []


def _md_table(report: SweepReport) -> bytes:
    lines = [f"# Sweep summary: {report.sweep_dir.name}", ""]
    if report.replicated:  # the study first; its jobs below
        lines += _continue_line(report) + _md_groups(report) + [best_line(report), ""]
    else:
        lines += [best_line(report), "", *_continue_line(report)]
    lines += [_md_line(MD_COLUMNS), _md_line(["---"] * len(MD_COLUMNS))]
    rows = [
        _cells(r, report.sweep_dir, report.short_label(r), _g(r.final_loss), _g(r.kernel_error))
        for r in report.rows
    ]
    rows = [cells[: len(MD_COLUMNS)] for cells in rows]
    lines += [_md_line(cells) for cells in rows]
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


def _png(report: SweepReport, curves: Curves) -> bytes:
    if report.replicated:
        return _study_png(report, curves)
    rows, params = report.rows, numeric_params(swept_values(report.rows))
    labels = [f"{'?' if r.job is None else r.job}: {report.short_label(r)}" for r in rows]
    series = _loss_curves(rows[:MAX_CURVES], labels, curves)
    panels = [_curves_panel(series, len(rows), report.objective)]
    panels += [_objective_panel(key, xs, rows, report.objective) for key, xs in params.items()]
    legend = series if len(series) <= MAX_LEGEND else []
    return chart.render(panels, legend, legend_columns=len(panels))


def _loss_curves(rows: list[JobRow], labels: list[str], curves: Curves) -> list[chart.Series]:
    """Each job's loss curve as a log scale can show it (NaN, inf and 0 dropped); jobs without
    any are left out."""
    series = []
    for row, label in zip(rows, labels, strict=False):
        points = [(s, v) for s, v in curves.get(row.dir, {}).get(LOSS_TAG, ()) if 0 < v < math.inf]
        if points:
            colour = chart.COLOURS[len(series) % len(chart.COLOURS)]
            series.append(chart.Series(points, label, colour))
    return series


def _study_png(report: SweepReport, curves: Curves) -> bytes:
    """A colour per group (the best MAX_LEGEND by the objective's median): its median loss curve
    in its p10–p90 band; then the objective's median and p10–p90 against each swept number."""
    names = group_names(report.groups)
    by_number = {group.number: group for group in report.groups}
    series = []
    for row in report.group_rows[:MAX_LEGEND]:
        group = by_number[row["group"]]
        found = quantile_curve([curves[r.dir][LOSS_TAG] for r in group.rows if r.dir in curves])
        points, band = [], []
        for step, median, low, high in zip(
            *(found[k] for k in ("step", "median", "p10", "p90")), strict=True
        ):
            if low > 0 and high < math.inf:  # what a log scale can show
                points.append((step, median))
                band.append((low, high))
        colour = chart.COLOURS[len(series) % len(chart.COLOURS)]
        label = f"{names[group.number]} (n = {row['jobs']})"
        series.append(chart.Series(points, label, colour, band=band))
    shown = [s for s in series if s.points]
    more = (
        f", the best {MAX_LEGEND} of {len(report.groups)} groups"
        if len(report.groups) > MAX_LEGEND
        else ""
    )
    panel = chart.Panel(
        f"{LOSS_TAG}: median and p10-p90 per group{more}",
        "step",
        series=shown,
        log_y=True,
        note="no loss curves yet",
    )
    panels = [panel]
    swept = {
        k: v for k, v in swept_values(report.rows).items() if k not in report.settings.replicates
    }
    panels += [
        _objective_spread(key, xs, report.rows, report.objective)
        for key, xs in numeric_params(swept).items()
    ]
    return chart.render(panels, series, legend_columns=len(panels))


def _objective_spread(key: str, xs: list[float], rows: list[JobRow], objective: str) -> chart.Panel:
    """The objective's median and p10–p90 over the completed jobs at each value of `key`."""
    by_value: dict[float, list[float]] = {}
    for x, row in zip(xs, rows, strict=True):
        value = row.objective(objective) if row.status == "completed" else None
        if value is not None and value > 0:  # a log scale can't show 0
            by_value.setdefault(x, []).append(value)
    points, bars = [], []
    for x, values in sorted(by_value.items()):
        median, low, high = np.quantile(values, (0.5, 0.1, 0.9)).tolist()
        points.append((x, median))
        bars.append((low, high))
    return chart.Panel(
        f"{objective} vs {key} (median, p10-p90)",
        key,
        objective,
        series=[chart.Series(points, markers=True, band=bars)] if points else [],
        log_x=min(xs) > 0 and max(xs) / min(xs) >= 10,
        log_y=True,
        note=f"no job has a {objective} above 0",
    )


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
    parser.add_argument(
        "--replicates",
        help="comma-separated config keys that only repeat an experiment (default: the sweep's "
        "study.replicates)",
    )
    parser.add_argument(
        "--recovered-within",
        type=float,
        help="a job has recovered the target when its kernel_error is at most this (default: the "
        "sweep's study.recovered_within)",
    )
    args = parser.parse_args(argv)
    study: dict[str, Any] = {}
    if args.replicates is not None:
        study["replicates"] = tuple(k for k in args.replicates.split(",") if k)
    if args.recovered_within is not None:
        if not (math.isfinite(args.recovered_within) and args.recovered_within >= 0):
            parser.error(
                f"--recovered-within {args.recovered_within}: must be a finite number >= 0"
            )
        study["recovered_within"] = args.recovered_within
    try:
        report = write_report(args.sweep_dir, **study)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # e.g. a read-only sweep dir
        print(f"error: {args.sweep_dir}: {error}", file=sys.stderr)
        return 1
    for path in report.files:
        print(path)
    print(headline(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
