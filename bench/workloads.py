"""What gets timed: the framework's `train(cfg)` and the hand-written loops it is compared with."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench import ROOT
from bench.timing import BenchError, seconds_per_step, sync_for

TRAIN_PY = ROOT / "train.py"
SEED_LR = 0.01  # the default experiment's learning rate
EDGE_KERNEL = [[-1.0, 1.0]]  # the default target kernel
EDGE_KERNEL_3X3 = [[0.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]  # embedded as kernellab does


# --- the framework --------------------------------------------------------------------------


def run_framework(*overrides: str) -> Any:
    """`train(cfg)` in a throw-away run dir; the TrainResult of a run that completed."""
    from kernellab.config import compose
    from kernellab.training import train

    cfg = compose(*overrides)
    with tempfile.TemporaryDirectory(prefix="kernellab-bench-") as run_dir:
        result = train(cfg, Path(run_dir))
    if result.status != "completed":
        raise BenchError(f"train({' '.join(overrides)}) ended {result.status}")
    return result


class FrameworkTimer:
    """Seconds per step of `train(cfg)`'s loop, logging included (its own timer); keeps the last result."""

    def __init__(self, *overrides: str) -> None:
        self.overrides = overrides
        self.last: Any = None
        self.outside_loop_s = 0.0  # the last call's time in train() before and after its loop

    def __call__(self) -> float:
        start = time.perf_counter()
        self.last = run_framework(*self.overrides)
        self.outside_loop_s = time.perf_counter() - start - self.last.wall_time_s
        return self.last.wall_time_s / self.last.steps_completed


def stable_lr(height: int, width: int) -> float:
    """A learning rate that converges on a uniform random image (the sum loss grows with H*W)."""
    return 0.05 / (height * width)


def large_overrides(size: int, steps: int) -> list[str]:
    """A random size x size image, 3x3 kernel, padding 1: the large-image experiment."""
    return [
        "task.image=random",
        f"task.height={size}",
        f"task.width={size}",
        "model.kernel_size=3",
        "model.padding=1",
        f"optim.lr={stable_lr(size, size)}",
        f"trainer.steps={steps}",
    ]


# --- the hand-written baselines ---------------------------------------------------------------


def seed_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The book's 6x8 picture with a black stripe and its edge map."""
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    return X, F.conv2d(X[None, None], torch.tensor([[EDGE_KERNEL]]))[0, 0]


def random_data(size: int, device: object = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """A uniform random size x size image and its edge map (3x3 kernel, padding 1)."""
    X = torch.rand(size, size, device=device)
    K = torch.tensor([[EDGE_KERNEL_3X3]], device=device)
    return X, F.conv2d(X[None, None], K, padding=1)[0, 0]


class BareLoop:
    """The loop a plain PyTorch script would write: F.conv2d on (1, 1, H, W), in-place SGD."""

    def __init__(
        self,
        X: torch.Tensor,
        Y: torch.Tensor,
        kernel_size: tuple[int, int],
        padding: int,
        lr: float,
        device: object = "cpu",
    ) -> None:
        torch.manual_seed(0)
        self.device = torch.device(device)
        self.X, self.Y = X.to(self.device)[None, None], Y.to(self.device)[None, None]
        self.weight = torch.randn(1, 1, *kernel_size, device=self.device, requires_grad=True)
        self.bias = torch.zeros(1, device=self.device, requires_grad=True)
        self.padding, self.lr = padding, lr

    def predict(self) -> torch.Tensor:
        return F.conv2d(self.X, self.weight, self.bias, padding=self.padding)

    def step(self) -> torch.Tensor:
        loss = F.mse_loss(self.predict(), self.Y, reduction="sum")
        loss.backward()
        with torch.no_grad():
            for p in (self.weight, self.bias):
                p -= self.lr * p.grad
                p.grad = None
        return loss

    def step_seconds(self, steps: int, threads: int | None = None, warmup: int = 3) -> float:
        if threads is not None:
            torch.set_num_threads(threads)
        return seconds_per_step(self.step, steps, warmup, sync_for(self.device))


class NotebookLoop(BareLoop):
    """The d2l notebook's `Conv2D`: its Python double-loop `corr2d` on 2-D tensors, plus a bias."""

    def predict(self) -> torch.Tensor:
        return (notebook_corr2d(self.X[0, 0], self.weight[0, 0]) + self.bias)[None, None]


def notebook_corr2d(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Verbatim from *Dive into Deep Learning* 6.2."""
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i : i + h, j : j + w] * K).sum()
    return Y


def seed_loop(cls: type[BareLoop] = BareLoop, device: object = "cpu") -> BareLoop:
    X, Y = seed_data()
    return cls(X, Y, (1, 2), 0, SEED_LR, device)


def large_loop(size: int, device: object = "cpu") -> BareLoop:
    X, Y = random_data(size, device)
    return BareLoop(X, Y, (3, 3), 1, stable_lr(size, size), device)
