"""Results as Markdown: one table per benchmark (value, baseline, ratio, goal, met) and a summary."""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from bench.timing import Sample


@dataclass(frozen=True)
class Goal:
    """A bound on a ratio: `at_most(1.3)` or `at_least(10)`."""

    limit: float
    upper: bool
    unit: str = "×"  # what the compared number is: a ratio, or e.g. " per step"

    def met(self, ratio: float) -> bool:
        return ratio <= self.limit if self.upper else ratio >= self.limit

    def __str__(self) -> str:
        return f"{'≤' if self.upper else '≥'} {self.limit:g}{self.unit}"


def at_most(limit: float, unit: str = "×") -> Goal:
    return Goal(limit, upper=True, unit=unit)


def at_least(limit: float, unit: str = "×") -> Goal:
    return Goal(limit, upper=False, unit=unit)


@dataclass
class Row:
    """One measurement against its baseline; `ratio` is what `what` says it is."""

    what: str
    value: str
    baseline: str = "—"
    ratio: float | None = None
    goal: Goal | None = None

    @property
    def ratio_text(self) -> str:
        return ratio(self.ratio, self.goal.unit if self.goal else "×")

    @property
    def verdict(self) -> str:
        if self.goal is None or self.ratio is None:
            return "—"
        return "met" if self.goal.met(self.ratio) else "**not met**"


@dataclass
class Section:
    title: str
    intro: str = ""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # why no figures: a missing feature, an error, no CUDA
    seconds: float = 0.0

    def markdown(self) -> str:
        lines = [f"## {self.title}", ""]
        if self.intro:
            lines += [self.intro, ""]
        if self.skipped:
            lines += [f"**Skipped:** {self.skipped}", ""]
        if self.rows:
            lines += [
                "| measurement | value | baseline | ratio | goal | met |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            lines += [
                f"| {r.what} | {r.value} | {r.baseline} | {r.ratio_text} | {r.goal or '—'} | {r.verdict} |"
                for r in self.rows
            ]
            lines.append("")
        lines += [f"- {note}" for note in self.notes]
        if self.seconds:
            lines.append(f"- _This benchmark took {self.seconds:.0f} s._")
        return "\n".join(lines).rstrip() + "\n"


def ratio(value: float | None, unit: str = "×") -> str:
    if value is None:
        return "—"
    return f"{value:.3g}{unit}" if value < 100 else f"{value:,.0f}{unit}"


def duration(seconds: float) -> str:
    """0.42 ms, 37 µs, 1.2 s."""
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def spread(sample: Sample, unit=duration) -> str:
    """The median, and the range of the repetitions in small print."""
    if len(sample.values) == 1:
        return unit(sample.median)
    return f"{unit(sample.median)} <sub>({unit(sample.low)}–{unit(sample.high)}, n={len(sample.values)})</sub>"


def megabytes(mb: float) -> str:
    return f"{mb:,.0f} MB"


def rate(steps_per_s: float) -> str:
    return f"{steps_per_s:,.0f} steps/s" if steps_per_s >= 100 else f"{steps_per_s:.3g} steps/s"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_lines() -> list[str]:
    import torch

    try:
        import hydra

        hydra_version = hydra.__version__
    except ImportError:
        hydra_version = "not installed"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    lines = [
        f"- Date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"- CPU: {cpu_model()}, {cores} cores usable (load average {load} at the end)",
        f"- Python {platform.python_version()}, torch {torch.__version__}, hydra {hydra_version}",
    ]
    if torch.cuda.is_available():
        lines.append(f"- GPU: {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})")
    return lines


def document(title: str, preamble: list[str], sections: list[Section]) -> str:
    """The whole results file: machine, a summary of every goal, then each benchmark's table."""
    goals = [(s, r) for s in sections for r in s.rows if r.goal is not None]
    lines = [f"# {title}", "", *machine_lines(), "", *preamble, ""]
    if goals:
        lines += [
            "## Summary",
            "",
            "| benchmark | measurement | ratio | goal | met |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {s.title} | {r.what} | {r.ratio_text} | {r.goal} | {r.verdict} |" for s, r in goals
        ]
        lines.append("")
    skipped = [s for s in sections if s.skipped]
    lines += [f"- {s.title}: skipped ({s.skipped})" for s in skipped]
    return "\n".join(lines).rstrip() + "\n\n" + "\n".join(s.markdown() for s in sections)
