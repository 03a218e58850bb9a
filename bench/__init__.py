"""kernellab's benchmark suite (issue 5): `python -m bench` writes bench/RESULTS.md.

Every figure is a ratio against a baseline measured in the same invocation, as the median of
several interleaved repetitions. `bench/gpu.py` is the CUDA part, also runnable on its own.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
