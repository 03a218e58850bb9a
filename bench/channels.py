"""Benchmark 11: colour channels. An RGB → RGB 5×5 step (75 kernel-element gradients per pixel)
with `model.backend=auto` (torch: the fused step is one channel only) against a bare `F.conv2d`
loop on (1, 3, H, W) with a (3, 3, 5, 5) weight, interleaved in this process."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench.report import Row, Section, at_most, spread
from bench.scale import Scale
from bench.timing import interleaved
from bench.workloads import FrameworkTimer

CHANNELS, KERNEL = 3, 5
LR = 1e-9  # small enough for any image here: the bench times steps, not convergence


def channels(scale: Scale) -> Section:
    size, steps = scale.channel_image, scale.channel_steps
    target = np.random.default_rng(0).uniform(-0.1, 0.1, (CHANNELS, CHANNELS, KERNEL, KERNEL))
    with tempfile.TemporaryDirectory(prefix="kernellab-bench-") as tmp:
        image = Path(tmp) / "rgb.png"
        pixels = np.random.default_rng(1).integers(0, 256, (size, size, CHANNELS), np.uint8)
        Image.fromarray(pixels).save(image)
        framework = FrameworkTimer(
            f"task.image={image}",
            "task.channels=rgb",
            f"task.target_kernel={_nested(target)}",
            "model.backend=auto",
            f"optim.lr={LR}",
            f"trainer.steps={steps}",
        )
        bare = _bare_step(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255, target)
        samples = interleaved(
            {"framework": framework, "bare": lambda: _seconds_per_step(bare, steps)},
            scale.large_reps,
        )
    ours, theirs = samples["framework"], samples["bare"]
    section = Section(
        "11. Colour channels",
        f"{size}² RGB photo-like image (random), 3 → 3 channels, 5×5 kernel, SGD. Framework: "
        "`train(cfg)` with `task.channels=rgb` and `model.backend=auto`, default logging, its own "
        f"loop timer ({steps} steps). Bare: `F.conv2d` on (1, 3, H, W), in-place SGD.",
    )
    section.rows.append(
        Row(
            f"{size}² RGB→RGB 5×5: per step, framework ÷ bare",
            spread(ours),
            spread(theirs),
            ours.median / theirs.median,
            at_most(1.1),
        )
    )
    return section


def _nested(array: np.ndarray) -> str:
    return str(np.round(array, 4).tolist()).replace(" ", "")


def _bare_step(X: torch.Tensor, target: np.ndarray) -> Callable[[], None]:
    """One step of the loop a plain PyTorch script would write, as a closure."""
    kernel = torch.tensor(target, dtype=torch.float32)
    X = X[None]
    Y = F.conv2d(X, kernel)
    weight = torch.zeros_like(kernel, requires_grad=True)
    bias = torch.zeros(CHANNELS, requires_grad=True)

    def step() -> None:
        loss = F.mse_loss(F.conv2d(X, weight, bias), Y, reduction="sum")
        loss.backward()
        with torch.no_grad():
            for p in (weight, bias):
                p -= LR * p.grad
                p.grad = None

    return step


def _seconds_per_step(step: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps
