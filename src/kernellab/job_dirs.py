"""A sweep's job as its dir tells it (`.hydra/`, `metrics.json`, its lock and files), read back
for a report, whatever is there: a finished, failed, killed or foreign job is a row, never a
crash."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kernellab.checkpoint import CHECKPOINT_FILE
from kernellab.rundir import in_use, read_metrics

log = logging.getLogger("kernellab.report")


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
    bias: float | list[float | None] | None = None
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
    overrides = read_yaml(job_dir / ".hydra" / "overrides.yaml")
    return JobRow(
        job=_job_number(job_dir),
        dir=job_dir,
        overrides=[str(o) for o in overrides] if isinstance(overrides, list) else [],
        status=str(metrics.get("status", "missing")),
        final_loss=_finite(metrics.get("final_loss")),
        kernel_error=_finite(metrics.get("kernel_error")),
        weight=metrics.get("weight"),
        bias=_bias(metrics.get("bias")),
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


def read_yaml(path: Path) -> Any:
    """The file's content, or None when it is absent or half-written (Hydra writes in place)."""
    try:
        return yaml.load(path.read_text(), Loader=_LOADER)  # libyaml: 1,000 jobs' files
    except (OSError, ValueError, yaml.YAMLError):
        return None


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _bias(value: Any) -> float | list[float] | None:
    """A float, or with several output channels a list of them (None where one isn't finite)."""
    return [_finite(v) for v in value] if isinstance(value, list) else _finite(value)


def _finite(value: Any) -> float | None:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if is_number and math.isfinite(value) else None
