"""How much each benchmark runs: the full suite (~5 min on 2 cores) or a quick smoke test."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scale:
    reps: int = 5  # repetitions whose median is reported (cheap benchmarks)
    heavy_reps: int = 3  # repetitions of the expensive ones (sweeps, Lightning)
    large_reps: int = 5  # large images: few steps each, on a machine whose load varies
    seed_steps: int = 2000  # the framework on the 6x8 seed task (amortises its set-up)
    bare_steps: int = 500  # the bare loop has no set-up; 2 threads on a busy machine are slow
    notebook_steps: int = 100  # the notebook's Python-loop corr2d (~3 ms a step)
    large_steps: dict[int, int] = field(default_factory=lambda: {1024: 25, 4096: 2})
    memory_steps: int = 2
    backend_sizes: tuple[int, ...] = (8, 64, 256, 1024)
    backend_seconds: float = 0.3  # time per measurement of one backend at one size
    loop_max_size: int = 64  # the loop backend is timed up to here, extrapolated beyond
    sweep_jobs: int = 16
    joblib_jobs: int = 4
    joblib_size: int = 1024
    joblib_steps: int = 15  # 1-3 s a job at 1024² on this machine
    joblib_reps: int = 2
    peer_steps: tuple[int, int] = (50, 350)  # per-step cost = difference of two fits
    profiled_jobs: int = 4  # the sweep run under cProfile for the breakdown
    batched_seeds: int = 1000  # `python train.py -m hydra/launcher=batched 'seed=range(N)'`
    stencil_sizes: tuple[int, ...] = (1024, 4096, 8192)  # the fused step's images
    first_run: tuple[int, int] = (1024, 60)  # a fresh clone's first big run: image size, steps
    study_seeds: int = 10000  # `'seed=range(N)' optim=sgd,adam`, batched: 2N jobs
    channel_image: int = 2048  # RGB -> RGB 5x5 (issue 22's size)
    channel_steps: int = 5


FULL = Scale()
QUICK = Scale(
    reps=2,
    heavy_reps=2,
    large_reps=2,
    seed_steps=300,
    bare_steps=300,
    notebook_steps=10,
    large_steps={256: 3, 1024: 2},
    memory_steps=1,
    backend_sizes=(8, 64, 256),
    backend_seconds=0.05,
    loop_max_size=8,
    sweep_jobs=4,
    joblib_jobs=2,
    joblib_size=256,
    joblib_steps=3,
    joblib_reps=1,
    peer_steps=(10, 60),
    profiled_jobs=2,
    batched_seeds=50,
    stencil_sizes=(256, 1024),
    first_run=(256, 10),
    study_seeds=100,
    channel_image=256,
    channel_steps=3,
)
