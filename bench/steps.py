"""Benchmarks 1 and 2: the framework's step cost against hand-written loops, small and large."""

from __future__ import annotations

import json

from bench.report import Row, Section, at_least, at_most, duration, megabytes, spread
from bench.scale import Scale
from bench.timing import interleaved, python, run_process
from bench.workloads import FrameworkTimer, NotebookLoop, large_loop, large_overrides, seed_loop

BARE_THREADS = (1, 2)
NEVER = 10**9  # a logging interval longer than any run: only the last step logs
ATTRIBUTION = {  # framework variants that show where its overhead over the bare loop goes
    "framework, no snapshots": [f"logger.snapshot_every={NEVER}"],
    "framework, no logging": [
        f"logger.snapshot_every={NEVER}",
        f"logger.log_every={NEVER}",
        f"trainer.print_every={NEVER}",
    ],
}


def step_cost(scale: Scale) -> Section:
    framework = FrameworkTimer(f"trainer.steps={scale.seed_steps}")
    bare, notebook = seed_loop(), seed_loop(NotebookLoop)
    contenders = {"framework": framework}
    for name, overrides in ATTRIBUTION.items():
        contenders[name] = FrameworkTimer(f"trainer.steps={scale.seed_steps}", *overrides)
    for n in BARE_THREADS:
        label = f"bare, {n} thread{'s' if n > 1 else ''}"
        contenders[label] = lambda n=n: bare.step_seconds(scale.bare_steps, n)
    contenders["notebook"] = lambda: notebook.step_seconds(scale.notebook_steps, 1)
    samples = interleaved(contenders, scale.reps)

    ours, nb = samples.pop("framework"), samples.pop("notebook")
    variants = {name: samples.pop(name) for name in ATTRIBUTION}
    best_name, best = min(samples.items(), key=lambda item: item[1].median)
    section = Section(
        "1. Step cost, seed task",
        f"6×8 stripe image, 1×2 kernel, default logging. Framework: `train(cfg)` with "
        f"`trainer.steps={scale.seed_steps}`, its own loop timer (`wall_time_s / steps`, "
        f"{framework.last.num_threads} thread by `num_threads=auto`). Bare: `F.conv2d` on (1,1,6,8), "
        f"in-place `p -= lr * p.grad`, grads dropped, {scale.bare_steps} steps, best of {BARE_THREADS} threads. Notebook: d2l's "
        f"Python double-loop `corr2d` ({scale.notebook_steps} steps, 1 thread).",
    )
    section.rows = [
        Row(
            f"per step: framework ÷ bare loop ({best_name})",
            spread(ours),
            spread(best),
            ours.median / best.median,
            at_most(1.3),
        ),
        Row(
            "speed-up: notebook loop ÷ framework",
            spread(ours),
            spread(nb),
            nb.median / ours.median,
            at_least(10),
        ),
    ]
    section.rows += [Row(f"per step: {name}", spread(s)) for name, s in samples.items()]
    section.rows += [
        Row(f"per step: {name} ÷ bare", spread(s), spread(best), s.median / best.median)
        for name, s in variants.items()
    ]
    section.notes.append(
        f"Attribution: `no snapshots` sets `logger.snapshot_every={NEVER}` (histogram and kernel "
        "image only at the last step); `no logging` also sets `logger.log_every` and "
        "`trainer.print_every` (only the last step logs). What remains over the bare loop is "
        "the loop itself (model, optimizer, buffering)."
    )
    return section


def large_image(scale: Scale) -> Section:
    section = Section(
        "2. Large images",
        "Random image, 3×3 kernel, padding 1. Step time: framework (`train(cfg)`, default logging, "
        "its own loop timer) vs the bare loop with the same thread count, interleaved in this "
        "process, neither warmed up (each run's first step allocates, as a user's does). "
        "Peak memory: the RSS high-water mark (VmHWM) of a separate process per contender "
        "(`python -m bench.memprobe`), so the two don't share one.",
    )
    for size, steps in scale.large_steps.items():
        rows, note = _large_case(size, steps, scale)
        section.rows += rows
        section.notes.append(note)
    return section


def _large_case(size: int, steps: int, scale: Scale) -> tuple[list[Row], str]:
    framework, loop = FrameworkTimer(*large_overrides(size, steps)), large_loop(size)
    samples = interleaved(
        {
            "framework": framework,
            "bare": lambda: loop.step_seconds(steps, _threads(framework), warmup=0),
        },
        scale.large_reps,
    )
    ours, bare = samples["framework"], samples["bare"]
    memory = {kind: peak_memory(kind, size, scale.memory_steps) for kind in ("framework", "bare")}
    peak = {kind: m["peak_rss_mb"] for kind, m in memory.items()}
    above = {kind: m["peak_rss_mb"] - m["import_rss_mb"] for kind, m in memory.items()}
    rows = [
        Row(
            f"{size}²: per step, framework ÷ bare",
            spread(ours),
            spread(bare),
            ours.median / bare.median,
            at_most(1.05),
        ),
        Row(
            f"{size}²: peak RSS, framework ÷ bare",
            megabytes(peak["framework"]),
            megabytes(peak["bare"]),
            peak["framework"] / peak["bare"],
            at_most(1.3),
        ),
    ]
    note = (
        f"{size}²: {_threads(framework)} torch threads; peak RSS above the process's RSS after its "
        f"imports: framework {megabytes(above['framework'])}, bare {megabytes(above['bare'])} "
        f"(imports alone: {megabytes(memory['framework']['import_rss_mb'])} vs "
        f"{megabytes(memory['bare']['import_rss_mb'])}); `train()` spent "
        f"{duration(framework.outside_loop_s)} outside its loop (config, task, images, checkpoint)."
    )
    return rows, note


def _threads(framework: FrameworkTimer) -> int | None:
    return framework.last.num_threads if framework.last is not None else None


def peak_memory(kind: str, size: int, steps: int) -> dict[str, float]:
    """{'import_rss_mb', 'peak_rss_mb'} of a fresh process training `kind` for `steps` steps."""
    out = run_process(python("-m", "bench.memprobe", kind, size, steps), timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])
