"""`python -m bench [--quick] [--only NAME,...] [--out PATH]`: run the suite, write RESULTS.md.

Benchmarks: step (1), large (2), backends (3), cold (4), sweep (5), peer (6), gpu (7),
batched (8), stencil (9).
Results are written after every benchmark, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import re
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import BENCH_DIR, gpu
from bench.backends import backends
from bench.batched import batched
from bench.channels import channels
from bench.peer import peer
from bench.report import Section, document
from bench.scale import FULL, QUICK, Scale
from bench.startup import cold_start, sweeps
from bench.stencil import stencil
from bench.steps import large_image, step_cost
from bench.studies import studies
from bench.timing import progress

Benchmark = Callable[[Scale], "Section | list[Section]"]
BENCHMARKS: dict[str, tuple[str, Benchmark]] = {
    "step": ("1. Step cost, seed task", step_cost),
    "large": ("2. Large images", large_image),
    "backends": ("3. Backends", backends),
    "cold": ("4. Cold start", cold_start),
    "sweep": ("5. Sweep overhead", sweeps),
    "peer": ("6. Peer: Lightning", peer),
    "gpu": ("7. GPU", gpu.run),
    "batched": ("8. Batched sweeps", batched),
    "stencil": ("9. Large images: the fused step", stencil),
    "studies": ("10. Studies", studies),
    "channels": ("11. Colour channels", channels),
}
SMALL_PRINT = re.compile(r"\s*<sub>.*?</sub>")
PREAMBLE = [
    "Written by `python -m bench` (`make bench`). Each ratio compares figures measured in the same "
    "invocation; each figure is the median of interleaved repetitions (range and count in small "
    "print). The GPU part is `bench/gpu.py`.",
]


def run_one(title: str, benchmark: Benchmark, scale: Scale) -> list[Section]:
    """One benchmark's sections; a failure becomes a skipped section, not a lost run."""
    progress(f"{title} …")
    start = time.perf_counter()
    try:
        result = benchmark(scale)
        sections = result if isinstance(result, list) else [result]
    except Exception as error:
        traceback.print_exc()
        sections = [Section(title, skipped=f"failed: {type(error).__name__}: {error}")]
    elapsed = time.perf_counter() - start
    sections[0].seconds = elapsed
    for section in sections:
        for row in section.rows:
            value, baseline = (SMALL_PRINT.sub("", text) for text in (row.value, row.baseline))
            progress(f"  {row.what}: {value} vs {baseline} → {row.ratio_text} {row.verdict}")
        if section.skipped:
            progress(f"  skipped: {section.skipped}")
    progress(f"{title}: {elapsed:.0f} s")
    return sections


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: fewer, smaller runs")
    parser.add_argument("--only", help="comma-separated: " + ", ".join(BENCHMARKS))
    parser.add_argument(
        "--out", type=Path, help="default: bench/RESULTS.md (bench/out/ with --quick or --only)"
    )
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {list(BENCHMARKS)}")
    scale = QUICK if args.quick else FULL
    # only the whole suite at full size replaces bench/RESULTS.md: a part would erase the rest
    partial = args.quick or args.only
    out = args.out or (BENCH_DIR / "out" / "RESULTS.md" if partial else BENCH_DIR / "RESULTS.md")
    title = "kernellab benchmarks" + (" (quick smoke test: not for quoting)" if args.quick else "")

    start, sections = time.perf_counter(), []
    for name in names:
        sections += run_one(*BENCHMARKS[name], scale)
        out.parent.mkdir(parents=True, exist_ok=True)
        total = f"Total: {time.perf_counter() - start:.0f} s for {', '.join(names)}."
        out.write_text(document(title, [*PREAMBLE, "", total], sections))
    progress(f"done in {time.perf_counter() - start:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
