"""A study: a sweep's jobs grouped by their settings, replicate keys (`study.replicates`, e.g. the
seed) aside, and each group summarised by its distribution: how often it recovered the target,
its quantiles and mean of `kernel_error` and `final_loss`, and how its objective compares with the
best group's (Mann–Whitney U). The verdict says it in words.

Statistics are over a group's completed jobs with a finite value; every job (diverged, failed,
interrupted, not started) counts in `jobs` and in the denominator of `recovered`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernellab import stats
from kernellab.errors import ConfigError

if TYPE_CHECKING:
    from kernellab.job_dirs import JobRow

DEFAULT_REPLICATES = ("seed",)
DEFAULT_RECOVERED_WITHIN = 0.05
METRICS = ("kernel_error", "final_loss")
_STATISTICS = ("median", "p10", "p90", "mean", "mean_low", "mean_high")
GROUP_COLUMNS = [
    "group",
    "overrides",
    "jobs",
    "completed",
    "diverged",
    "failed",
    "interrupted",
    "recovered",
    "recovered_low",
    "recovered_high",
    *[f"{metric}_{s}" for metric in METRICS for s in _STATISTICS],
    "best_job",
    "worst_job",
    "p_vs_best",
]
FAILED = ("failed", "missing")
SIGNIFICANCE = 0.05  # the verdict names a winner only below this p-value
VERDICT_GROUPS = 4  # the verdict's recovery rates: of the best this many groups


@dataclass(frozen=True)
class StudySettings:
    """What `study.*` says, as the sweep's jobs recorded it."""

    replicates: tuple[str, ...] = DEFAULT_REPLICATES
    recovered_within: float = DEFAULT_RECOVERED_WITHIN
    objective: str = "final_loss"


@dataclass
class Group:
    """Jobs whose overrides differ only in the replicate keys."""

    number: int  # in order of the groups' first jobs
    overrides: list[str]  # the jobs' overrides without the replicate keys
    rows: list[JobRow] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " ".join(self.overrides)


def override_item(override: str) -> tuple[str, str]:
    """`+model.bias=false` -> (`model.bias`, `false`): Hydra's add/delete prefixes don't matter."""
    key, _, value = override.lstrip("+~").partition("=")
    return key, value


def override_key(override: str) -> str:
    return override_item(override)[0]


def swept_values(rows: list[JobRow]) -> dict[str, list[str | None]]:
    """Per override key that differs between jobs, each row's value (None where a job lacks it)."""
    parsed = [dict(override_item(o) for o in r.overrides) for r in rows]
    keys = dict.fromkeys(k for p in parsed for k in p)  # first-seen order
    values = {k: [p.get(k) for p in parsed] for k in keys}
    return {k: v for k, v in values.items() if len(set(v)) > 1}


def numeric_params(swept: dict[str, list[str | None]]) -> dict[str, list[float]]:
    """The swept keys whose values all parse as numbers, e.g. optim.lr but not model.kernel_size."""
    numeric = {}
    for key, values in swept.items():
        try:
            numeric[key] = [float(v) for v in values]  # a job without the key: TypeError
        except (TypeError, ValueError):
            continue
    return numeric


def group_jobs(rows: Sequence[JobRow], replicates: Sequence[str]) -> list[Group]:
    """The groups of `rows`, numbered by their first job (by job number)."""
    ordered = sorted(rows, key=lambda r: (r.job is None, r.job or 0, str(r.dir)))
    groups: dict[tuple[str, ...], Group] = {}
    for row in ordered:
        kept = sorted(o for o in row.overrides if not _aside(override_key(o), replicates))
        group = groups.get(tuple(kept))
        if group is None:
            group = groups[tuple(kept)] = Group(len(groups), kept)
        group.rows.append(row)
    return list(groups.values())


def _aside(key: str, replicates: Sequence[str]) -> bool:
    """A key that doesn't tell groups apart: a replicate key, or a study setting."""
    return key in replicates or key.startswith("study.")


def has_replicates(groups: Sequence[Group]) -> bool:
    return any(len(group.rows) > 1 for group in groups)


def group_table(groups: Sequence[Group], settings: StudySettings) -> list[dict[str, Any]]:
    """One row per group keyed by GROUP_COLUMNS, sorted by the objective's median (groups
    without one last); `p_vs_best` against the first row's objective values."""
    rows = [_group_row(group, settings) for group in groups]
    values = {id(r): _values(g, settings.objective) for r, g in zip(rows, groups, strict=True)}
    median = f"{settings.objective}_median"
    rows.sort(key=lambda r: (r[median] is None, r[median] or 0.0, r["group"]))
    best = values[id(rows[0])] if rows else []
    for row in rows[1:]:
        row["p_vs_best"] = stats.mann_whitney_p(values[id(row)], best)
    return rows


def _values(group: Group, metric: str) -> list[float]:
    """The metric of the group's completed jobs, where finite (a report row holds None else)."""
    return [
        value
        for row in group.rows
        if row.status == "completed" and (value := getattr(row, metric)) is not None
    ]


def _group_row(group: Group, settings: StudySettings) -> dict[str, Any]:
    statuses = [row.status for row in group.rows]
    jobs = len(statuses)
    recovered = sum(
        row.status == "completed"
        and row.kernel_error is not None
        and row.kernel_error <= settings.recovered_within
        for row in group.rows
    )
    interval = stats.wilson_interval(recovered, jobs)
    out: dict[str, Any] = {
        "group": group.number,
        "overrides": group.label,
        "jobs": jobs,
        "completed": statuses.count("completed"),
        "diverged": statuses.count("diverged"),
        "failed": sum(status in FAILED for status in statuses),
        "interrupted": statuses.count("interrupted"),
        "recovered": recovered / jobs if jobs else None,
        "recovered_low": interval[0] if interval else None,
        "recovered_high": interval[1] if interval else None,
    }
    for metric in METRICS:
        values = _values(group, metric)
        median, p10, p90 = stats.quantiles(values, (0.5, 0.1, 0.9))
        mean = stats.mean_interval(values) or (None, None, None)
        numbers = (median, p10, p90, *mean)
        out |= {f"{metric}_{s}": v for s, v in zip(_STATISTICS, numbers, strict=True)}
    ranked = sorted(
        (v, row.job)
        for row in group.rows
        if row.status == "completed" and (v := getattr(row, settings.objective)) is not None
    )
    out["best_job"] = ranked[0][1] if ranked else None
    out["worst_job"] = ranked[-1][1] if ranked else None
    out["p_vs_best"] = None
    return out


# --- the verdict ---


def verdict(
    table: Sequence[dict[str, Any]], groups: Sequence[Group], settings: StudySettings
) -> str:
    """The study's answer in words: each leading group's recovery rate with its interval, then
    whether the best group's objective is lower than the runner-up's (p < SIGNIFICANCE)."""
    names = group_names(groups)
    unit = "seeds" if tuple(settings.replicates) == ("seed",) else "replicates"
    first_jobs = table[0]["jobs"] if table else 0
    # no job has a ground truth (target images alone): there is no kernel to recover, only loss
    truth = any(row.kernel_error is not None for group in groups for row in group.rows)
    rates = [
        f"{names[row['group']]} {_recovery(row, unit, k == 0 or row['jobs'] != first_jobs)}"
        if truth
        else f"{names[row['group']]} ({row['jobs']} {unit if row['jobs'] > 1 else unit[:-1]})"
        for k, row in enumerate(table[:VERDICT_GROUPS])
    ]
    more = len(table) - VERDICT_GROUPS
    said = ", ".join(rates) + (f" (and {more} more groups)" if more > 0 else "")
    if len(table) < 2:  # one group: `optim.lr=0.1: recovered the kernel in ...`
        median = table[0][f"{settings.objective}_median"] if table else None
        said = said.replace(" recovers the kernel", ": recovered the kernel", 1)
        return f"{said}; median {settings.objective} {_g(median)}"
    best, second = table[0], table[1]
    objective = settings.objective
    p, a, b = second["p_vs_best"], best[f"{objective}_median"], second[f"{objective}_median"]
    medians = f"median {_g(a)} vs {_g(b)}, p = {_p(p)}"
    first, runner_up = names[best["group"]], names[second["group"]]
    if p is not None and p < SIGNIFICANCE:
        return f"{said}; {first}'s {objective} is lower than {runner_up}'s ({medians})"
    return (
        f"{said}; {first} and {runner_up} are not different in {objective} at p < "
        f"{SIGNIFICANCE:g} ({medians})"
    )


def _recovery(row: dict[str, Any], unit: str, whole: bool) -> str:
    """`recovers the kernel in 97% of 100 seeds (91–99%)` (`whole`), else `in 25% (18–34%)`;
    `n = 1` for a group of one."""
    jobs, share = row["jobs"], row["recovered"]
    of = f" of {jobs} {unit if jobs > 1 else unit[:-1]}"
    text = f"{'recovers the kernel ' if whole else ''}in {_percent(share)}{of if whole else ''}"
    if jobs == 1:
        return text + " (n = 1: no interval)"
    return text + f" ({_percent(row['recovered_low'], '')}–{_percent(row['recovered_high'])})"


def group_names(groups: Sequence[Group]) -> dict[int, str]:
    """Each group by the overrides that differ between groups: `adam` when one key varies
    (its value alone), `optim=adam lr=0.1` when several do, `all jobs` for a single group."""
    parsed = [dict(o.partition("=")[::2] for o in g.overrides) for g in groups]
    keys = dict.fromkeys(k for p in parsed for k in p)
    varying = [k for k in keys if len({p.get(k) for p in parsed}) > 1]
    names = {}
    for group, values in zip(groups, parsed, strict=True):
        if len(varying) == 1:
            names[group.number] = values.get(varying[0], "(unset)")
        elif varying:
            names[group.number] = " ".join(f"{k}={values[k]}" for k in varying if k in values)
        else:
            names[group.number] = group.label or "all jobs"
    return names


def _percent(share: float | None, sign: str = "%") -> str:
    return "?" if share is None else f"{round(100 * share)}{sign}"


def _g(value: float | None) -> str:
    return "none (no job completed)" if value is None else f"{value:.3g}"


def _p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.1g}" if p < 1e-3 else f"{p:.2g}"


# --- the settings ---


def check_settings(study: Any, config_keys: Sequence[str], in_config: Any) -> None:
    """Refuse `study.*` values a study can't use: `in_config(key)` tells whether a replicate key
    names a config key; `config_keys` are the keys to list as allowed."""
    for key in study.replicates:
        if not isinstance(key, str) or not in_config(key):
            raise ConfigError(
                "study.replicates",
                "[" + ",".join(str(k) for k in study.replicates) + "]",
                f"{key} is not a config key; allowed: {', '.join(config_keys)}",
            )
    within = study.recovered_within
    if not (isinstance(within, int | float) and math.isfinite(within) and within >= 0):
        raise ConfigError("study.recovered_within", within, "must be a finite number >= 0")


def settings_of(config: dict[str, Any] | None) -> StudySettings:
    """A sweep's study settings from a job's resolved `.hydra/config.yaml` (a sweep made before
    `study.*` existed: the defaults)."""
    config = config if isinstance(config, dict) else {}
    study = config.get("study") if isinstance(config.get("study"), dict) else {}
    replicates = study.get("replicates", DEFAULT_REPLICATES)
    within = study.get("recovered_within", DEFAULT_RECOVERED_WITHIN)
    objective = config.get("objective")
    return StudySettings(
        tuple(str(k) for k in replicates) if isinstance(replicates, list) else DEFAULT_REPLICATES,
        float(within) if isinstance(within, int | float) else DEFAULT_RECOVERED_WITHIN,
        objective if objective in METRICS else "final_loss",
    )
