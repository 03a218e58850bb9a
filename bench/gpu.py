"""Benchmark 7, CUDA: the framework on a GPU against a bare CUDA loop, CUDA graphs, host syncs.

    python bench/gpu.py [RESULTS.md]     # default: $OUT/gpu_results.md, else bench/out/gpu_results.md

Runs from a bare checkout (no `pip install -e .`: `src/` is put on the path); needs torch and,
for the framework's rows, hydra-core and tensorboard. Every benchmark catches its own failure
(a feature not there yet, a missing package) and reports it, so one gap loses one table.
Also called by `python -m bench`, which skips it when CUDA is not available.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `kernellab` importable
    _ROOT = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(_ROOT), str(_ROOT / "src")]

import torch

from bench import BENCH_DIR
from bench.report import Row, Section, at_least, at_most, document, rate
from bench.scale import FULL, Scale
from bench.timing import Sample, interleaved, progress
from bench.workloads import (
    FrameworkTimer,
    large_loop,
    large_overrides,
    run_framework,
    seed_loop,
)

CUDA = "trainer.device=cuda"
GRAPH = "trainer.cuda_graph=true"
SEED_STEPS = 3000  # ~1 s eager at the ~2,800 steps/s seen on an H100
GRAPH_STEPS = 30000  # ~0.6 s at ~48,000 steps/s
LARGE_STEPS = {4096: 300, 8192: 50}  # ~0.6 s and ~0.8 s
REPS = 3
SYNC_STEPS = (200, 1200)  # host syncs per step = difference of two profiled runs
EQUAL_STEPS = 500
SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
HOST_SYNC_GOAL = 0.1  # syncs per step: at most one every 10 steps (buffered logging: ~1 in 1000)


def per_second(sample: Sample) -> str:
    return rate(1 / sample.median)


# --- eager framework vs a bare CUDA loop ------------------------------------------------------


def eager_vs_bare() -> Section:
    section = Section(
        "7a. GPU: framework vs bare CUDA loop",
        "`trainer.device=cuda` (`train(cfg)`, default logging, its own loop timer) vs the bare "
        "loop on the same device (`torch.cuda.synchronize()` before and after its timed steps). "
        "One untimed run of each first (CUDA context, cuDNN, allocator).",
    )
    cases = {
        "seed task": (
            [f"trainer.steps={SEED_STEPS}"],
            lambda: seed_loop(device="cuda"),
            SEED_STEPS,
        ),
        **{
            f"{n}², 3×3": (large_overrides(n, steps), lambda n=n: large_loop(n, "cuda"), steps)
            for n, steps in LARGE_STEPS.items()
        },
    }
    for label, case in cases.items():
        try:
            progress(f"gpu: {label}")
            section.rows.append(_eager_case(label, *case))
        except Exception as error:  # one size failing (memory, a missing feature) loses one row
            section.notes.append(f"{label}: failed: {_describe(error)}")
        torch.cuda.empty_cache()
    section.notes.append(
        "Goals: ≤ 1.05× for the large images (as on the CPU); the seed task uses the CPU's ≤ 1.3×."
    )
    return section


def _eager_case(label: str, overrides: list[str], make_loop, steps: int) -> Row:
    framework, loop = FrameworkTimer(CUDA, *overrides), make_loop()
    samples = _warm_interleaved(
        {"framework": framework, "bare": lambda: loop.step_seconds(steps, warmup=10)}
    )
    ours, bare = samples["framework"], samples["bare"]
    goal = at_most(1.3 if label == "seed task" else 1.05)
    return Row(
        f"{label}: per step, framework ÷ bare",
        per_second(ours),
        per_second(bare),
        ours.median / bare.median,
        goal,
    )


def _warm_interleaved(contenders: dict) -> dict[str, Sample]:
    for measure in contenders.values():
        measure()
    return interleaved(contenders, REPS)


# --- CUDA graphs ------------------------------------------------------------------------------


def cuda_graph() -> Section:
    section = Section(
        "7b. GPU: `trainer.cuda_graph=true` vs eager, seed task",
        f"Steps/s of the captured step ({GRAPH_STEPS} steps) vs eager ({SEED_STEPS} steps); then both "
        f"for {EQUAL_STEPS} steps from the same seed, compared element by element.",
    )
    try:
        progress("gpu: cuda graph")
        samples = _warm_interleaved(
            {
                "graph": FrameworkTimer(CUDA, GRAPH, f"trainer.steps={GRAPH_STEPS}"),
                "eager": FrameworkTimer(CUDA, f"trainer.steps={SEED_STEPS}"),
            }
        )
        graph, eager = samples["graph"], samples["eager"]
        section.rows.append(
            Row(
                "speed-up: eager ÷ graph, per step",
                per_second(graph),
                per_second(eager),
                eager.median / graph.median,
                at_least(10),
            )
        )
        a, b = (
            run_framework(CUDA, *flag, f"trainer.steps={EQUAL_STEPS}") for flag in ([], [GRAPH])
        )
        diff = max(
            _max_abs_diff(x, y)
            for x, y in (
                (a.weight, b.weight),
                ([a.bias], [b.bias]),
                ([a.final_loss], [b.final_loss]),
            )
        )
        same = diff <= 1e-4
        section.notes.append(
            f"Same results as eager after {EQUAL_STEPS} steps (weights, bias, final loss; "
            f"tolerance 1e-4): {'yes' if same else '**no**'}, largest difference {diff:.2e}."
        )
    except Exception as error:
        section.skipped = _describe(error)
    return section


def _max_abs_diff(x: list, y: list) -> float:
    return (
        (torch.tensor(x, dtype=torch.float64) - torch.tensor(y, dtype=torch.float64))
        .abs()
        .max()
        .item()
    )


# --- host synchronisation -----------------------------------------------------------------------


def host_syncs() -> Section:
    section = Section(
        "7c. GPU: does the loop wait for the host?",
        "torch.profiler (CPU + CUDA activities) around `train(cfg)` on the seed task for "
        f"{SYNC_STEPS[0]} and {SYNC_STEPS[1]} steps; the difference in counted events divided by "
        f"the difference in steps is what each step costs. Sync calls: {', '.join(SYNC_EVENTS)}. "
        "Then throughput with `logger.log_every=1` vs a value larger than the run.",
    )
    modes = {"eager": [CUDA], "cuda graph": [CUDA, GRAPH]}
    for mode, flags in modes.items():
        try:
            progress(f"gpu: host syncs, {mode}")
            counts = [_profile_counts([*flags, f"trainer.steps={n}"]) for n in SYNC_STEPS]
            per_step = {
                k: (counts[1][k] - counts[0][k]) / (SYNC_STEPS[1] - SYNC_STEPS[0])
                for k in counts[0]
            }
            section.rows.append(
                Row(
                    f"{mode}: host sync calls per step",
                    f"{per_step['syncs']:.3f}",
                    ratio=per_step["syncs"],
                    goal=at_most(HOST_SYNC_GOAL, " per step"),
                )
            )
            section.notes.append(
                f"{mode}: per step {per_step['device-to-host copies']:.3f} device-to-host copies, "
                f"{per_step['kernel launches']:.1f} kernel or graph launches."
            )
        except Exception as error:
            section.notes.append(f"{mode}: profiler check failed: {_describe(error)}")
    try:
        progress("gpu: logging on vs off")
        quiet = [
            f"logger.log_every={10**9}",
            f"logger.snapshot_every={10**9}",
            f"trainer.print_every={10**9}",
        ]
        samples = _warm_interleaved(
            {
                "log every step": FrameworkTimer(CUDA, f"trainer.steps={SEED_STEPS}"),
                "no logging": FrameworkTimer(CUDA, f"trainer.steps={SEED_STEPS}", *quiet),
            }
        )
        on, off = samples["log every step"], samples["no logging"]
        section.rows.append(
            Row(
                "eager: per step, logging every step ÷ logging off",
                per_second(on),
                per_second(off),
                on.median / off.median,
                at_most(1.1),
            )
        )
    except Exception as error:
        section.notes.append(f"logging on vs off failed: {_describe(error)}")
    return section


def _profile_counts(overrides: list[str]) -> dict[str, int]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run_framework(*overrides)
    counts = {"syncs": 0, "device-to-host copies": 0, "kernel launches": 0}
    for event in prof.key_averages():
        if event.key in ("cudaLaunchKernel", "cudaLaunchKernelExC", "cudaGraphLaunch"):
            counts["kernel launches"] += event.count
        elif event.key in SYNC_EVENTS:
            counts["syncs"] += event.count
        elif "DtoH" in event.key:  # the copy itself, e.g. "Memcpy DtoH (Device -> Pageable)"
            counts["device-to-host copies"] += event.count
    if counts["kernel launches"] == 0:  # no CUPTI: zero syncs would prove nothing
        raise RuntimeError("the profiler recorded no CUDA runtime calls (CUPTI unavailable?)")
    return counts


# --- entry points -------------------------------------------------------------------------------


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def run(scale: Scale = FULL, on_section=lambda sections: None) -> list[Section]:
    """The GPU sections, or one skipped section when CUDA is not available.

    `on_section` sees the sections so far after each one, so a cut-short run still reports.
    """
    if not torch.cuda.is_available():
        return [
            Section(
                "7. GPU",
                skipped="`torch.cuda.is_available()` is false on this machine; "
                "run `python bench/gpu.py` on a CUDA machine.",
            )
        ]
    start, sections = time.perf_counter(), []
    for benchmark in (cuda_graph, host_syncs, eager_vs_bare):  # most telling first
        sections.append(benchmark())
        on_section(sections)
    sections[-1].notes.append(f"All GPU benchmarks took {time.perf_counter() - start:.0f} s.")
    return sections


def main(argv: list[str]) -> None:
    default = Path(os.environ["OUT"]) if os.environ.get("OUT") else BENCH_DIR / "out"
    path = Path(argv[0]) if argv else default / "gpu_results.md"
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(sections: list[Section]) -> None:
        path.write_text(document("kernellab GPU benchmarks", [], sections))

    write(run(on_section=write))
    print(path.read_text())
    progress(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
