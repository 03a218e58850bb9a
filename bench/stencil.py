"""Fused single-channel step (`kernellab.stencil`) against F.conv2d and torch.add, on large images.

    python -m bench.stencil [--sizes 1024 4096 8192] [--reps N] [--quick] [--no-cold]

Prints Markdown tables:

1. Step time per image size at torch.get_num_threads() threads: one `torch.add(X, Y, out=Z)` over
   the image (the memory-bound floor; the goal is fused ≤ 4× it), the F.conv2d + mse_loss(sum) +
   backward step, and the fused step (`fused_sse(..., backend="numba").backward()`). Each figure
   is the median of `--reps` interleaved rounds (add: mean of 10 calls a round; fused: 3; conv: 1).
2. Peak extra memory of one step, each in a fresh process: the RSS high-water mark during the step
   (reset just before it through /proc/self/clear_refs) minus the RSS before it, against the bytes
   of X and Y. Numba's and the kernel's code are loaded before the reset, so only the step counts.
3. Accuracy: fused float32 vs the float64 F.conv2d step, and the float32 F.conv2d step's own error.
4. Crossover: fused vs F.conv2d step time for small images (both warm).
5. Cold start, each in a fresh process: importing kernellab.stencil, then the first fused call
   (imports numba and loads the compiled kernel from its cache, or compiles it into an empty
   NUMBA_CACHE_DIR).

`python -m bench` (benchmark 9) also times a user's first big runs (`first_runs`): `python
train.py` at 1024², twice, in a fresh clone's numba cache, against a bare F.conv2d loop.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from bench import ROOT
from bench.report import Row, Section, at_most, spread
from bench.scale import Scale
from bench.timing import Sample, interleaved, python, run_process
from bench.workloads import TRAIN_PY, large_loop, large_overrides

SIZES = (1024, 4096, 8192)
CROSSOVER_SIZES = (8, 32, 64, 128, 256, 512)
KERNEL, PADDING, STRIDE = (3, 3), 1, 1


def make_problem(n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, n, generator=gen)
    Y = torch.randn(n, n, generator=gen)  # padding 1, stride 1: the output is n × n too
    weight = torch.randn(1, 1, *KERNEL, generator=gen).requires_grad_()
    bias = torch.randn(1, generator=gen).requires_grad_()
    return X, Y, weight, bias


def conv_step(X, Y, weight, bias) -> Callable[[], None]:
    X4, Y4 = X[None, None], Y[None, None]

    def step() -> None:
        weight.grad = bias.grad = None
        F.mse_loss(F.conv2d(X4, weight, bias, STRIDE, PADDING), Y4, reduction="sum").backward()

    return step


def fused_step(X, Y, weight, bias) -> Callable[[], None]:
    from kernellab.stencil import fused_sse

    def step() -> None:
        weight.grad = bias.grad = None
        fused_sse(X, Y, weight, bias, PADDING, STRIDE, backend="numba").backward()

    return step


def timer(fn: Callable[[], object], calls: int) -> Callable[[], float]:
    def measure() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls

    return measure


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


# 1. Step time ---------------------------------------------------------------------------------


def step_times(sizes, reps: int, thread_counts) -> list[str]:
    lines = [
        f"### Step time, {KERNEL[0]}×{KERNEL[1]} kernel, padding {PADDING} "
        f"(median of {reps} interleaved rounds; fastest round in brackets)",
        "",
        "| image | threads | torch.add | F.conv2d step | fused step | fused ÷ add | "
        "conv ÷ fused | goal fused ≤ 4× add |",
        "|---|---|---|---|---|---|---|---|",
    ]
    default = torch.get_num_threads()
    for n, threads in [(n, t) for n in sizes for t in thread_counts]:
        torch.set_num_threads(threads)
        try:
            lines.append(_step_row(n, threads, reps))
        finally:
            torch.set_num_threads(default)
        print(lines[-1], file=sys.stderr, flush=True)
    return lines


def _step_row(n: int, threads: int, reps: int) -> str:
    X, Y, weight, bias = make_problem(n)
    Z = torch.empty_like(X)
    fused, conv = fused_step(X, Y, weight, bias), conv_step(X, Y, weight, bias)
    fused(), conv(), torch.add(X, Y, out=Z)  # warm: kernel loaded, pages touched
    samples = interleaved(
        {
            "add": timer(lambda X=X, Y=Y, Z=Z: torch.add(X, Y, out=Z), 10),
            "fused": timer(fused, 3),
            "conv": timer(conv, 1),
        },
        reps,
    )
    add, f, c = (statistics.median(samples[k].values) for k in ("add", "fused", "conv"))
    fastest = {k: min(samples[k].values) for k in ("add", "fused")}
    return (
        f"| {n}² | {threads} | {ms(add)} [{ms(fastest['add'])}] | {ms(c)} | "
        f"{ms(f)} [{ms(fastest['fused'])}] | {f / add:.2f}× | {c / f:.0f}× | "
        f"{'met' if f <= 4 * add else '**not met**'} |"
    )


# 2. Peak memory (each measurement in a fresh process) ------------------------------------------


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_probe(kind: str, n: int) -> dict[str, float]:
    """Run inside the probe process: peak RSS growth (MiB) of one `kind` step on an n² image."""
    X, Y, weight, bias = make_problem(n)
    step = {"fused": fused_step, "conv": conv_step}[kind]
    small = make_problem(64)
    step(*small)()  # libraries and the compiled kernel loaded before measuring
    if kind == "fused":
        from kernellab.stencil import sse_and_grads

        sse_and_grads(*make_problem(600), PADDING, STRIDE)  # the thread pool too
    run = step(X, Y, weight, bias)
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM to the current RSS
    before = _rss_kib("VmRSS")
    run()
    peak = _rss_kib("VmHWM")
    return {"extra_mib": (peak - before) / 1024, "xy_mib": 2 * X.numel() * 4 / 2**20}


def peak_memory(sizes) -> list[str]:
    lines = [
        "### Peak extra memory of one step (RSS high-water mark growth, fresh process each)",
        "",
        "| image | X + Y | F.conv2d step | fused step | fused ÷ (X + Y) | goal ≤ 1.5× |",
        "|---|---|---|---|---|---|",
    ]
    for n in sizes:
        got = {kind: _probe(kind, n) for kind in ("conv", "fused")}
        xy = got["fused"]["xy_mib"]
        f = got["fused"]["extra_mib"]
        lines.append(
            f"| {n}² | {xy:.0f} MiB | {got['conv']['extra_mib']:.1f} MiB | {f:.1f} MiB | "
            f"{f / xy:.3f}× | {'met' if f <= 1.5 * xy else '**not met**'} |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    return lines


def _probe(kind: str, n: int) -> dict[str, float]:
    code = f"import json; from bench.stencil import memory_probe; print(json.dumps(memory_probe({kind!r}, {n})))"
    out = _python(code).stdout
    return json.loads(out.strip().splitlines()[-1])


# 3. Accuracy ----------------------------------------------------------------------------------


def accuracy(sizes) -> list[str]:
    from kernellab.stencil import reference_sse, sse_and_grads

    lines = [
        "### Accuracy against the float64 F.conv2d step (max |error| ÷ max |exact|)",
        "",
        "| image | fused: loss | fused: weight grad | fused: bias grad | "
        "F.conv2d float32: loss | weight grad | bias grad |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        X, Y, weight, bias = make_problem(n)
        fused = sse_and_grads(X, Y, weight, bias, PADDING, STRIDE)
        exact = _autograd(reference_sse, X, Y, weight, bias, torch.float64)
        plain = _autograd(reference_sse, X, Y, weight, bias, torch.float32)
        errs = [_rel(g, e) for g, e in zip(fused, exact, strict=True)]
        errs += [_rel(g, e) for g, e in zip(plain, exact, strict=True)]
        lines.append(f"| {n}² | " + " | ".join(f"{e:.1e}" for e in errs) + " |")
        print(lines[-1], file=sys.stderr, flush=True)
    return lines


def _autograd(loss_fn, X, Y, weight, bias, dtype):
    w = weight.detach().to(dtype).requires_grad_()
    b = bias.detach().to(dtype).requires_grad_()
    loss = loss_fn(X.to(dtype), Y.to(dtype), w, b, PADDING, STRIDE)
    loss.backward()
    return loss.detach(), w.grad, b.grad


def _rel(got: torch.Tensor, exact: torch.Tensor) -> float:
    return ((got.double() - exact).abs().max() / exact.abs().max()).item()


# 4. Crossover ---------------------------------------------------------------------------------


def crossover(reps: int) -> list[str]:
    threads = torch.get_num_threads()
    lines = [
        f"### Crossover, {threads} threads: per-step time on small images (warm)",
        "",
        "| image | F.conv2d step | fused step | conv ÷ fused |",
        "|---|---|---|---|",
    ]
    for n in CROSSOVER_SIZES:
        problem = make_problem(n)
        fused, conv = fused_step(*problem), conv_step(*problem)
        fused(), conv()
        calls = max(1, 20_000 // n)
        samples = interleaved({"fused": timer(fused, calls), "conv": timer(conv, calls)}, reps)
        f, c = (statistics.median(samples[k].values) for k in ("fused", "conv"))
        lines.append(f"| {n}² | {c * 1e6:.0f} µs | {f * 1e6:.0f} µs | {c / f:.2f}× |")
        print(lines[-1], file=sys.stderr, flush=True)
    return lines


# 5. Cold start --------------------------------------------------------------------------------

COLD = """
import json, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import kernellab.stencil as s
t2 = time.perf_counter()
from bench.stencil import fused_step, make_problem
step = fused_step(*make_problem(64))
t3 = time.perf_counter()
step()
t4 = time.perf_counter()
step()
t5 = time.perf_counter()
print(json.dumps({"import_torch": t1 - t0, "import_stencil": t2 - t1, "first_call": t4 - t3,
                  "second_call": t5 - t4}))
"""


def cold_start(reps: int) -> list[str]:
    runs: dict[str, list[dict[str, float]]] = {"warm cache": [], "empty cache": []}
    for _ in range(reps):
        runs["warm cache"].append(json.loads(_python(COLD).stdout.strip().splitlines()[-1]))
        with tempfile.TemporaryDirectory() as empty:
            out = _python(COLD, {"NUMBA_CACHE_DIR": empty}).stdout
        runs["empty cache"].append(json.loads(out.strip().splitlines()[-1]))
    lines = [
        f"### Cold start, fresh process each (median of {reps})",
        "",
        "| numba cache | import kernellab.stencil | first fused call (64², imports numba) | "
        "second call |",
        "|---|---|---|---|",
    ]
    for name, results in runs.items():
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        lines.append(
            f"| {name} | {ms(med['import_stencil'])} | {ms(med['first_call'])} | "
            f"{ms(med['second_call'])} |"
        )
    return lines


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    pythonpath = os.pathsep.join(
        filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")])
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": pythonpath, **(env or {})},
    )


# 6. A user's first big runs (whole processes) ---------------------------------------------------


def first_runs(scale: Scale) -> tuple[list[Row], str]:
    """A fresh clone's first and second `python train.py` at 1024² (60 steps, `model.backend=auto`:
    fused on a CPU) against a bare F.conv2d loop: rows and a note. Issue 20 measured 8.7 steps/s
    (1.46× the bare loop) for the first before `make setup` compiled the kernel.

    Each repetition starts from an empty NUMBA_CACHE_DIR filled as `make setup` fills a clone's
    (`python -m kernellab.stencil`), so the first run finds what a user's first run finds. A run's
    figure is its own `steps_per_s` (metrics.json: its whole loop, the first step's loading or
    compiling of the kernel included); the bare loop runs as many steps, not warmed up, at the
    run's thread count, in this process, after the two runs of its repetition.
    """
    size, steps = scale.first_run
    per_step: dict[str, list[float]] = {"first": [], "second": [], "bare": []}
    threads = None
    for _ in range(scale.heavy_reps):
        with tempfile.TemporaryDirectory(prefix="kernellab-bench-") as tmp:
            env = {"NUMBA_CACHE_DIR": os.path.join(tmp, "numba")}
            run_process(python("-m", "kernellab.stencil"), timeout=900, env=env)  # make setup's
            for run in ("first", "second"):
                run_dir = os.path.join(tmp, run)
                overrides = [*large_overrides(size, steps), f"hydra.run.dir={run_dir}"]
                run_process(python(TRAIN_PY, *overrides), timeout=900, env=env)
                with open(os.path.join(run_dir, "metrics.json")) as file:
                    metrics = json.load(file)
                per_step[run].append(1 / metrics["steps_per_s"])
                threads = metrics["num_threads"]
        per_step["bare"].append(large_loop(size).step_seconds(steps, threads, warmup=0))
    first, second, bare = (Sample(tuple(per_step[k])) for k in ("first", "second", "bare"))
    rows = [
        Row(
            f"{size}², first run in a fresh clone: per step ÷ bare F.conv2d loop",
            spread(first),
            spread(bare),
            first.median / bare.median,
            at_most(1.1),
        ),
        Row(
            f"{size}², second run: per step ÷ bare F.conv2d loop",
            spread(second),
            spread(bare),
            second.median / bare.median,
        ),
    ]
    note = (
        f"First and second run: `python train.py` with `{' '.join(large_overrides(size, steps))}`, "
        f"one after the other in a fresh NUMBA_CACHE_DIR filled by `python -m kernellab.stencil` "
        f"(what `make setup` runs), {threads} torch threads; each run's `steps_per_s` from its "
        "metrics.json (its whole loop, the kernel's loading included), against a bare F.conv2d "
        "loop of as many steps (not warmed up, same threads)."
    )
    return rows, note


def stencil(scale: Scale) -> Section:
    """Benchmark 9 of `python -m bench`: a user's first big runs against a bare loop; step time
    against torch.add, and peak memory."""
    rows, note = first_runs(scale)
    sizes = scale.stencil_sizes
    tables = [*step_times(sizes, scale.reps, [torch.get_num_threads()]), "", *peak_memory(sizes)]
    return Section(
        "9. Large images: the fused step",
        "The training step of a random single-channel image, 3×3 kernel, padding 1, with "
        "`model.backend=fused` (one pass: `kernellab.stencil`) and with F.conv2d, against one "
        "`torch.add(X, Y, out=Z)` over the image at the same thread count (the memory-pass bound). "
        "`python -m bench.stencil` has more (accuracy, crossover, cold start).\n\n"
        + "\n".join(tables),
        rows,
        [note],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, nargs="+", help="torch thread counts (default: the current one)"
    )
    parser.add_argument("--quick", action="store_true", help="sizes 1024 and 2048, 3 rounds")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-start processes")
    args = parser.parse_args(argv)
    sizes, reps = ([1024, 2048], 3) if args.quick else (args.sizes, args.reps)

    from kernellab.stencil import fused_unsupported

    problem = make_problem(8)
    if (reason := fused_unsupported(*problem)) is not None:
        raise SystemExit(f"the fused kernel cannot run here: {reason}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {load} (other processes slow every figure); "
        f"{time.strftime('%Y-%m-%d %H:%M')}\n"
    )
    sections = [step_times(sizes, reps, args.threads or [torch.get_num_threads()])]
    sections.append(peak_memory(sizes))
    sections.append(accuracy([n for n in sizes if n <= 4096]))
    sections.append(crossover(reps))
    if not args.no_cold:
        sections.append(cold_start(3))
    print("\n\n".join("\n".join(section) for section in sections))


if __name__ == "__main__":
    main()
