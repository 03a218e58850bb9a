"""A sweep's summary.png: the loss curves (a study's: each group's median in its p10–p90 band) and
the objective against each swept number, drawn with kernellab.chart."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from kernellab import chart
from kernellab.group_runs import Curves, quantile_curve
from kernellab.studies import group_names, numeric_params, swept_values
from kernellab.tracking import LOSS_TAG

if TYPE_CHECKING:
    from kernellab.job_dirs import JobRow
    from kernellab.report import SweepReport

MAX_LEGEND = 20  # beyond this many curves a legend is unreadable; the table says which is which
# Loss curves drawn: the best jobs' (rows are sorted by the objective). Each is read from its job's
# event files, and beyond a few dozen they are an unreadable tangle; the table has every job.
MAX_CURVES = 50


def summary_png(report: SweepReport, curves: Curves) -> bytes:
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
