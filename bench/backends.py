"""Benchmark 3: `Conv2D`'s three backends, forward + backward, at growing image sizes."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from bench.report import Row, Section, at_least, at_most, duration, spread
from bench.scale import Scale
from bench.timing import interleaved, seconds_per_step, steps_for

BACKENDS = ("torch", "corr2d", "loop")


def fwd_bwd(backend: str, size: int) -> Callable[[], None]:
    """One forward + backward of a 3×3, padding-1 `Conv2D` on a random size×size image."""
    from kernellab.model import Conv2D

    model = Conv2D(3, padding=1, backend=backend)
    X = torch.rand(size, size)

    def step() -> None:
        model(X).square().sum().backward()
        model.zero_grad(set_to_none=True)

    return step


def backends(scale: Scale) -> Section:
    torch.set_num_threads(1)
    section = Section(
        "3. Backends",
        "`kernellab.model.Conv2D(3, padding=1, backend=...)`, forward + backward of "
        "`model(X).square().sum()`, 1 torch thread for all (a fair op-against-op comparison). "
        f"The notebook's `loop` is timed up to {scale.loop_max_size}² and extrapolated beyond by "
        "its cost per output element (marked *extrapolated*).",
    )
    loop_per_output = None
    for size in scale.backend_sizes:
        timed = [b for b in BACKENDS if b != "loop" or size <= scale.loop_max_size]
        contenders = {}
        for backend in timed:
            step = fwd_bwd(backend, size)
            steps = steps_for(step, scale.backend_seconds, most=2000)
            contenders[backend] = partial(seconds_per_step, step, steps, warmup=0)
        samples = interleaved(contenders, scale.reps if size <= 256 else scale.heavy_reps)
        corr2d, conv = samples["corr2d"], samples["torch"]
        if "loop" in samples:
            loop_text, loop = spread(samples["loop"]), samples["loop"].median
            loop_per_output = loop / size**2
            label = "loop ÷ corr2d"
        else:
            loop = loop_per_output * size**2
            loop_text, label = f"{duration(loop)} *extrapolated*", "loop (extrapolated) ÷ corr2d"
        section.rows += [
            Row(
                f"{size}²: corr2d ÷ F.conv2d",
                spread(corr2d),
                spread(conv),
                corr2d.median / conv.median,
                at_most(3),
            ),
            Row(
                f"{size}²: speed-up, {label}",
                spread(corr2d),
                loop_text,
                loop / corr2d.median,
                at_least(100) if size >= 64 else None,
            ),
        ]
    return section
