"""A study's groups as TensorBoard runs: `<sweep dir>/groups/<group number>_<overrides>/`.

Each holds, at every logged step, the median, 10th and 90th percentile over the group's jobs of
`train/loss` and `kernel/error` (over the jobs with a finite value at that step), a Custom Scalars
layout with a margin chart (median, band p10–p90) per metric, and an HParams session: the
group's overrides as hyperparameters, its medians and `recovered` as metrics. TensorBoard has no
way to group runs (tensorboard #376); `tensorboard --logdir <sweep dir>/groups` compares the
groups, a few runs instead of thousands. Rebuilt whole by every report, from the jobs' curves.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

from kernellab.eventfile import event_file_bytes
from kernellab.hparams import hparam_value, hparams_summary
from kernellab.paths import job_dir
from kernellab.rundir import atomic_write
from kernellab.studies import Group
from kernellab.tracking import ERROR_TAG, LOSS_TAG, layout_summary

if TYPE_CHECKING:
    from kernellab.report import SweepReport

GROUPS_DIR = "groups"
EVENT_FILE = "events.out.tfevents.0.kernellab-groups"  # one name: a rebuild replaces it
CURVE_TAGS = (LOSS_TAG, ERROR_TAG)
QUANTILES = {"median": 0.5, "p10": 0.1, "p90": 0.9}
# The HParams metrics: the group's statistics from summary_groups.csv, written at its last step
METRIC_TAGS = {
    "study/recovered": "recovered",
    "study/final_loss_median": "final_loss_median",
    "study/kernel_error_median": "kernel_error_median",
}
Curves = Mapping[Path, Mapping[str, Sequence[tuple[int, float]]]]  # job dir -> tag -> curve


def quantile_curve(curves: Sequence[Sequence[tuple[int, float]]]) -> dict[str, list[float]]:
    """`step` and each of QUANTILES at every step any curve has, over the curves with a finite
    value at that step (NaN where none has)."""
    steps = sorted({step for curve in curves for step, _ in curve})
    if not steps:
        return {"step": [], **{name: [] for name in QUANTILES}}
    column = {step: k for k, step in enumerate(steps)}
    values = np.full((len(curves), len(steps)), np.nan)
    for row, curve in enumerate(curves):
        for step, value in curve:
            values[row, column[step]] = value
    values[~np.isfinite(values)] = np.nan
    with warnings.catch_warnings():  # a step with no finite value: NaN, said by the caller
        warnings.simplefilter("ignore", RuntimeWarning)
        found = np.nanquantile(values, list(QUANTILES.values()), axis=0)
    return {"step": steps, **{name: found[k].tolist() for k, name in enumerate(QUANTILES)}}


def write_group_runs(report: SweepReport, curves: Curves) -> Path:
    """Every group's run under `<sweep dir>/groups/`; returns that dir."""
    root = report.sweep_dir / GROUPS_DIR
    hparams = group_hparams(report.groups)
    experiment = _experiment(sorted({key for values in hparams.values() for key in values}))
    by_number = {row["group"]: row for row in report.group_rows}
    for group in report.groups:
        run_dir = root / group_dir_name(group)
        run_dir.mkdir(parents=True, exist_ok=True)
        events = _group_events(group, curves, by_number[group.number], hparams[group.number])
        atomic_write(run_dir / EVENT_FILE, event_file_bytes([(0, experiment), *events]))
    return root


def group_dir_name(group: Group) -> str:
    return job_dir(group.number, ",".join(group.overrides))


def _group_events(
    group: Group, curves: Curves, row: Mapping[str, Any], hparams: Mapping[str, Any]
) -> list[tuple[int, Summary]]:
    events = [(0, _LAYOUT), (0, _session_start(hparams))]
    by_step: dict[int, list[Summary.Value]] = {}
    for tag in CURVE_TAGS:
        found = quantile_curve([curves[r.dir][tag] for r in group.rows if r.dir in curves])
        for k, step in enumerate(found["step"]):
            by_step.setdefault(step, []).extend(
                Summary.Value(tag=f"{tag}/{name}", simple_value=found[name][k])
                for name in QUANTILES
                if np.isfinite(found[name][k])
            )
    events += [(step, Summary(value=values)) for step, values in sorted(by_step.items())]
    last = max(by_step, default=0)
    metrics = [
        Summary.Value(tag=tag, simple_value=row[column])
        for tag, column in METRIC_TAGS.items()
        if row[column] is not None
    ]
    return [*events, (last, Summary(value=metrics))]


def group_hparams(groups: Sequence[Group]) -> dict[int, dict[str, Any]]:
    """Each group's overrides as HParams values; a key is a number (or a bool) in every group
    when every group's value of it reads as one, else a string."""
    parsed = {
        g.number: dict(o.lstrip("+~").partition("=")[::2] for o in g.overrides) for g in groups
    }
    keys = {key for values in parsed.values() for key in values}
    kinds = {key: _kind([values.get(key) for values in parsed.values()]) for key in keys}
    return {
        number: {key: _as(kinds[key], value) for key, value in values.items()}
        for number, values in parsed.items()
    }


def _kind(values: Sequence[str | None]) -> type:
    present = [v for v in values if v is not None]
    if present and all(v in ("true", "false") for v in present):
        return bool
    try:
        [float(v) for v in present]
    except ValueError:
        return str
    return float


def _as(kind: type, value: str) -> bool | float | str:
    return value == "true" if kind is bool else kind(value)


def _experiment(keys: Sequence[str]) -> Summary:
    """The HParams experiment the group runs share: the swept keys, the METRIC_TAGS."""
    experiment = api_pb2.Experiment(
        hparam_infos=[api_pb2.HParamInfo(name=key, differs=True) for key in keys],
        metric_infos=[
            api_pb2.MetricInfo(name=api_pb2.MetricName(group="", tag=tag)) for tag in METRIC_TAGS
        ],
    )
    return hparams_summary(
        hparams_metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment)
    )


def _session_start(hparams: Mapping[str, Any]) -> Summary:
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in hparams.items():
        start.hparams[name].CopyFrom(hparam_value(value))
    return hparams_summary(
        hparams_metadata.SESSION_START_INFO_TAG,
        plugin_data_pb2.HParamsPluginData(session_start_info=start),
    )


def _margin_layout() -> Summary:
    """One margin chart per metric: its median as a line, p10–p90 as the band around it."""
    margin = layout_pb2.MarginChartContent
    charts = [
        layout_pb2.Chart(
            title=f"{tag} (median, p10–p90)",
            margin=margin(
                series=[
                    margin.Series(value=f"{tag}/median", lower=f"{tag}/p10", upper=f"{tag}/p90")
                ]
            ),
        )
        for tag in CURVE_TAGS
    ]
    return layout_summary(
        layout_pb2.Layout(category=[layout_pb2.Category(title="groups", chart=charts)])
    )


_LAYOUT = _margin_layout()
