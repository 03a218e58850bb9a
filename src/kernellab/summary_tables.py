"""A sweep's summary in words and tables: the line it ends with (`best: job N` or a study's
verdict), summary.csv, summary_groups.csv and summary.md (kernellab.report writes them)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernellab.studies import GROUP_COLUMNS

if TYPE_CHECKING:
    from kernellab.job_dirs import JobRow
    from kernellab.report import SweepReport

# summary.csv's columns (its public interface)
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
        _compact(row.bias) if isinstance(row.bias, list) else _g(row.bias),
        _g(row.wall_time_s),
        row.dir.relative_to(sweep_dir).as_posix(),
    ]


def csv_table(report: SweepReport) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in report.rows:
        # full precision: they are what the rows are sorted by; all the overrides
        loss = "" if row.final_loss is None else repr(row.final_loss)
        error = "" if row.kernel_error is None else repr(row.kernel_error)
        writer.writerow(_cells(row, report.sweep_dir, row.label, loss, error))
    return out.getvalue().encode()


def groups_csv(report: SweepReport) -> bytes:
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
    if report.still_running:  # jobs on SLURM: stop them or let them end, then summarise again
        return [f"Still running: {report.still_running}.", ""]
    return [f"Continue it: `{report.continue_with}`", ""] if report.continue_with else []


def md_table(report: SweepReport) -> bytes:
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
