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
import dataclasses
import functools
import logging
import math
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from kernellab._hydra_private import BasicSweeper
from kernellab.errors import EXIT_USAGE
from kernellab.eventfile import scalar_curves
from kernellab.group_runs import CURVE_TAGS, Curves, write_group_runs
from kernellab.job_dirs import JobRow, read_job, read_yaml
from kernellab.paths import AUTO_RESUME, MULTIRUN_YAML, path_override
from kernellab.paths import job_dir as subdir_name
from kernellab.rundir import atomic_write
from kernellab.slurm_tasks import scancel_ids, still_queued
from kernellab.studies import (
    GROUP_COLUMNS,
    Group,
    StudySettings,
    group_jobs,
    group_table,
    has_replicates,
    override_key,
    settings_of,
    swept_values,
    verdict,
)
from kernellab.summary_plot import MAX_CURVES, summary_png
from kernellab.summary_tables import (
    COLUMNS,
    csv_table,
    groups_csv,
    headline,
    md_table,
)

log = logging.getLogger(__name__)

CSV_FILE, MD_FILE, PNG_FILE = "summary.csv", "summary.md", "summary.png"
GROUPS_CSV_FILE = "summary_groups.csv"
FAILED = {"failed", "missing"}  # statuses counted as failures
UNFINISHED = ("interrupted", "not started")  # what continuing a sweep trains
UNSEEN = ("missing", "not started")  # jobs whose dir holds no metrics.json
# what a job's SLURM task, still queued or running, may yet train: `running` while it is there
SLURM_PENDING = ("interrupted", "not started", "missing")
CONTINUE_SETS = ("hydra.mode", "hydra.sweep.dir")  # a continued sweep's command sets these itself


class ReportError(Exception):
    """A path that can't be reported on: missing, not a sweep dir, or holding no jobs."""


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
    # the SLURM jobs or array tasks still queued or running this sweep's `running` rows
    slurm_tasks: list[str] = field(default_factory=list)

    @property
    def scancel(self) -> str | None:
        """The command that stops the sweep's jobs still on SLURM, if any are."""
        return shlex.join(["scancel", *scancel_ids(self.slurm_tasks)]) if self.slurm_tasks else None

    @property
    def still_running(self) -> str | None:
        """One line on the jobs still on SLURM: how to stop them, how to summarise again."""
        if not self.slurm_tasks:
            return None
        running = sum(row.status == "running" for row in self.rows)
        again = shlex.join(["python", "-m", "kernellab.report", str(self.sweep_dir)])
        return (
            f"{running} job(s) still queued or running on SLURM: `{self.scancel}` stops them; "
            f"once they have ended, `{again}` summarises the sweep again"
        )

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
    outputs = {CSV_FILE: csv_table, GROUPS_CSV_FILE: groups_csv, MD_FILE: md_table}
    outputs[PNG_FILE] = summary_png
    # every job's curves for a study's groups; without replicates, those summary.png draws
    curves = read_curves(report.rows if report.replicated else report.rows[:MAX_CURVES])
    for name, render in outputs.items():
        data = render(report, curves) if render is summary_png else render(report)
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
    slurm_tasks = _on_slurm(sweep_dir, rows)
    rows.sort(key=lambda row: _by_objective(row, objective))
    best = next(
        (r for r in rows if r.status == "completed" and r.objective(objective) is not None), None
    )
    failed = sum(r.status in FAILED for r in rows)
    unfinished = grid is not None and any(row.status in UNFINISHED for row in rows)
    # while jobs are still on SLURM, continuing would train them twice: summarise again first
    continue_with = continue_command(sweep_dir, grid) if unfinished and not slurm_tasks else None
    groups = group_jobs(rows, settings.replicates)
    table = group_table(groups, settings)
    return SweepReport(
        sweep_dir,
        objective,
        rows,
        best,
        failed,
        [],
        continue_with,
        settings,
        groups,
        table,
        slurm_tasks,
    )


def _on_slurm(sweep_dir: Path, rows: list[JobRow]) -> list[str]:
    """Rows not finished whose SLURM job or task is still queued or running become `running`
    (their task goes on and trains them); the ids of those tasks."""
    unfinished = (*SLURM_PENDING, "running")
    if not any(row.status in unfinished for row in rows):
        return []
    queued = still_queued(sweep_dir)
    tasks = set()
    for row in rows:
        if row.status in unfinished and row.job in queued:
            row.status = "running"
            tasks.add(queued[row.job])
    return sorted(tasks)


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


def _planned_jobs(hydra: DictConfig) -> tuple[list[str], list[list[str]]]:
    """Each job's overrides, in job-number order, as the basic sweeper makes them; and the key (or
    group) that each place of a job's list sets (the same in every job: one per key, in the order
    each key first comes)."""
    params = [f"{key}={value}" for key, value in (hydra.sweeper.get("params") or {}).items()]
    overrides = OverridesParser.create().parse_overrides([*params, *hydra.overrides.task])
    keys = {o.get_key_element(): o.key_or_group for o in overrides}  # as split_arguments keys them
    jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
    return list(keys.values()), jobs


def _not_started(sweep_dir: Path, hydra: DictConfig, seen: set[int | None]) -> list[JobRow]:
    """Rows for the planned jobs without a dir, named as kernellab's `hydra.sweep.subdir` does
    (Hydra's override_dirname: the job's overrides but the excluded keys', sorted; not parsed
    again, job by job: a hundred thousand seeds took minutes)."""
    dirname = hydra.job.config.override_dirname
    excluded, item_sep, kv_sep = set(dirname.exclude_keys), dirname.item_sep, dirname.kv_sep
    keys, planned = _planned_jobs(hydra)
    rows = []
    for num, overrides in enumerate(planned):
        if num in seen:
            continue
        items = sorted(o for key, o in zip(keys, overrides, strict=True) if key not in excluded)
        name = item_sep.join(items).replace("=", kv_sep)
        rows.append(JobRow(num, sweep_dir / subdir_name(num, name), overrides, "not started"))
    return rows


def continue_command(sweep_dir: Path, hydra: DictConfig) -> str:
    """The command that continues a sweep: its own, in its dir, with `trainer.resume=auto`."""
    settings = [o for o in hydra.overrides.hydra if override_key(o) not in CONTINUE_SETS]
    task = [o for o in hydra.overrides.task if override_key(o) != "trainer.resume"]
    sweep = path_override("hydra.sweep.dir", sweep_dir)
    resume = f"trainer.resume={AUTO_RESUME}"
    return shlex.join(["python", f"{hydra.job.name}.py", "-m", *settings, sweep, *task, resume])


def read_settings(jobs: list[Path]) -> StudySettings:
    """The sweep's `objective` and `study.*`, from the first job whose `.hydra/config.yaml` can
    be read (they are the same in every job of a sweep)."""
    for job_dir in jobs:
        config = read_yaml(job_dir / ".hydra" / "config.yaml")
        if isinstance(config, dict) and isinstance(config.get("objective"), str):
            return settings_of(config)
    return StudySettings()


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
    if report.still_running:
        print(report.still_running)
    elif report.continue_with:
        print(f"continue the sweep with {report.continue_with}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
