"""The seed task as a Lightning user would write it (lightning-hydra-template style), for benchmark 6.

A LightningModule holding the 1×2 kernel and a bias, `torch.optim.SGD`, Lightning's Trainer and
TensorBoardLogger, logging what kernellab's default logs: loss, each kernel element and the bias
every step, a histogram and a picture of the kernel about 10 times a run.

    python bench/peer_lightning.py --steps 20 --out DIR          # one run (cold start)
    python bench/peer_lightning.py --per-step 100 1100 --reps 3  # JSON: seconds per extra step

Choices in Lightning's favour: one epoch of N identical full-batch samples (no per-epoch hooks
per step), no progress bar, no model summary, 1 torch thread (as kernellab picks for this size).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, Dataset

SNAPSHOTS_PER_RUN = 10  # as kernellab's default `logger.snapshot_every`


class Repeat(Dataset):
    """The one full batch (image, edge map), `n` times: one sample per training step."""

    def __init__(self, X: torch.Tensor, Y: torch.Tensor, n: int) -> None:
        self.X, self.Y, self.n = X[None, None], Y[None, None], n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X, self.Y


class EdgeDetector(L.LightningModule):
    def __init__(self, lr: float = 0.01, snapshot_every: int = 1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.weight = torch.nn.Parameter(torch.randn(1, 1, 1, 2))
        self.bias = torch.nn.Parameter(torch.randn(1))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        X, Y = batch
        loss = F.mse_loss(F.conv2d(X, self.weight, self.bias), Y, reduction="sum")
        kernel = self.weight.detach().flatten()
        values = {"train/loss": loss, "kernel/bias": self.bias.detach()[0]}
        values.update({f"kernel/w_0_{j}": w for j, w in enumerate(kernel)})
        self.log_dict(values, on_step=True, on_epoch=False)
        if self.global_step % self.hparams.snapshot_every == 0:
            board = self.logger.experiment
            board.add_histogram("kernel/weights", kernel, self.global_step)
            board.add_image("kernel/image", picture(self.weight.detach()[0]), self.global_step)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def picture(kernel: torch.Tensor) -> torch.Tensor:
    """The kernel as a grey (1, 32h, 32w) image."""
    scaled = (kernel - kernel.min()) / (kernel.max() - kernel.min()).clamp_min(1e-12)
    return scaled.repeat_interleave(32, 1).repeat_interleave(32, 2)


def seed_task() -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    Y = F.conv2d(X[None, None], torch.tensor([[[[-1.0, 1.0]]]]))[0, 0]
    return X, Y


def fit(steps: int, out: str) -> float:
    """Train for `steps` steps; the wall time of the whole fit."""
    start = time.perf_counter()
    torch.manual_seed(0)
    X, Y = seed_task()
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger(out, name="lightning"),
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out,
    )
    model = EdgeDetector(snapshot_every=max(1, steps // SNAPSHOTS_PER_RUN))
    trainer.fit(model, DataLoader(Repeat(X, Y, steps), batch_size=None))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--per-step", type=int, nargs=2, metavar=("FEW", "MANY"))
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="lightning-bench-") as tmp:
        out = args.out or tmp
        if args.per_step is None:
            fit(args.steps, out)
            return
        few, many = args.per_step
        per_step = [(fit(many, out) - fit(few, out)) / (many - few) for _ in range(args.reps)]
        print(json.dumps({"per_step_s": per_step}))


if __name__ == "__main__":
    main()
