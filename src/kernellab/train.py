"""The training run: build the task and model from a config, fit, and leave the results on disk.

`train(cfg, run_dir)` is pure of Hydra's runtime, so tests and notebooks call it directly;
`train.py` at the top level is the thin Hydra entry around it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from kernellab import artifacts, runtime
from kernellab.config import Geometry, validate
from kernellab.data import Task, input_image, make_task, target_kernel
from kernellab.model import Conv2D
from kernellab.tracking import StepBuffer, TensorBoardTracker, hyperparameters

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0  # console progress and event files lag training by at most this much
BUFFER_ROWS = 1024


@dataclass
class TrainResult:
    """What `metrics.json` holds."""

    status: str  # completed | diverged | interrupted | failed
    final_loss: float | None  # loss at the last completed step (None if not finite)
    initial_loss: float | None
    weight: list[list[float]]
    bias: float | None
    steps_completed: int
    output_shape: list[int]
    device: str
    num_threads: int
    wall_time_s: float
    steps_per_s: float
    versions: dict[str, str]

    @property
    def objective(self) -> float:
        """What a sweeper minimises: the final loss, or inf when there is none."""
        return self.final_loss if self.final_loss is not None else math.inf


def train(cfg: DictConfig, run_dir: Path) -> TrainResult:
    geometry = validate(cfg)
    device = runtime.resolve_device(cfg.trainer.device)
    macs = geometry.output_shape[0] * geometry.output_shape[1]
    macs *= geometry.kernel_size[0] * geometry.kernel_size[1]
    threads = runtime.choose_num_threads(cfg.trainer.num_threads, macs, runtime.parallel_jobs())
    torch.set_num_threads(threads)

    torch.manual_seed(cfg.seed)
    task = _build_task(cfg, geometry)
    model = Conv2D(
        geometry.kernel_size,
        geometry.padding,
        geometry.stride,
        bias=cfg.model.bias,
        init=cfg.model.init,
        backend=cfg.model.backend,
    )
    model.to(device)
    optimizer = instantiate(cfg.optim)(model.parameters())
    X, Y = task.image.to(device), task.target.to(device)

    tracker = TensorBoardTracker(run_dir, geometry.kernel_size, purge_step=None)
    tracker.log_config(OmegaConf.to_yaml(cfg, resolve=True))
    tracker.log_hparams(hyperparameters(cfg))
    tracker.log_image("data/input", task.image)
    tracker.log_image("data/target", task.target)
    tracker.log_image("data/target_kernel", task.kernel)

    progress = Progress(tracker, cfg, model, device)
    start = time.perf_counter()
    for step in range(1, cfg.trainer.steps + 1):
        loss = F.mse_loss(model(X), Y, reduction="sum")  # the book's sum of squared errors
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        progress.record(step, loss)
    progress.flush()
    wall = time.perf_counter() - start

    with torch.no_grad():
        tracker.log_image("data/prediction", model(X), cfg.trainer.steps)
    tracker.close()

    result = TrainResult(
        status="completed",
        final_loss=progress.last_loss,
        initial_loss=progress.first_loss,
        weight=model.weight.detach().cpu().tolist(),
        bias=model.bias.item() if model.bias is not None else None,
        steps_completed=cfg.trainer.steps,
        output_shape=list(geometry.output_shape),
        device=str(device),
        num_threads=threads,
        wall_time_s=wall,
        steps_per_s=cfg.trainer.steps / wall if wall > 0 else 0.0,
        versions=_versions(),
    )
    artifacts.save_checkpoint(
        run_dir,
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": result.steps_completed,
            "rng": torch.get_rng_state(),
        },
    )
    artifacts.write_metrics(run_dir, asdict(result))
    return result


class Progress:
    """Buffers each step's loss and kernel on the device; writes TensorBoard and console in batches."""

    def __init__(self, tracker: TensorBoardTracker, cfg: DictConfig, model: Conv2D, device) -> None:
        self.tracker, self.model = tracker, model
        self.log_every, self.snapshot_every = cfg.logger.log_every, cfg.logger.snapshot_every
        self.print_every, self.last_step = cfg.trainer.print_every, cfg.trainer.steps
        self.kernel_shape = tuple(model.weight.shape)
        width = 1 + model.weight.numel() + (model.bias is not None)
        self.buffer = StepBuffer(width, BUFFER_ROWS, device)
        self.values = [model.weight.view(-1)] + ([model.bias] if model.bias is not None else [])
        self.next_flush = time.perf_counter() + FLUSH_SECONDS
        self.first_loss: float | None = None
        self.last_loss: float | None = None

    def record(self, step: int, loss: torch.Tensor) -> None:
        self.buffer.record(step, [loss.view(1), *self.values])
        if self.buffer.full or time.perf_counter() >= self.next_flush:
            self.flush()

    def flush(self) -> None:
        steps, rows = self.buffer.drain()
        for step, row in zip(steps, rows, strict=True):
            self._write(step, row)
        self.next_flush = time.perf_counter() + FLUSH_SECONDS

    def _write(self, step: int, row: torch.Tensor) -> None:
        loss = row[0].item()
        n = self.model.weight.numel()
        kernel = row[1 : 1 + n].view(self.kernel_shape)
        bias = row[1 + n].item() if self.model.bias is not None else None
        if self.first_loss is None:
            self.first_loss = loss
        self.last_loss = loss
        last = step == self.last_step
        if step % self.log_every == 0 or last:
            self.tracker.log_step(step, loss, kernel, bias)
        if step % self.snapshot_every == 0 or last:
            self.tracker.log_snapshot(step, kernel)
        if step % self.print_every == 0:
            log.info("step %d, loss %.4g", step, loss)


def _build_task(cfg: DictConfig, geometry: Geometry) -> Task:
    t = cfg.task
    image = input_image(t.height, t.width, t.stripe, t.image, t.orientation)
    kernel = target_kernel(geometry.target_kernel, t.orientation)
    return make_task(image, kernel, geometry.kernel_size, geometry.padding, geometry.stride)


def _versions() -> dict[str, str]:
    import hydra

    return {"torch": torch.__version__, "hydra": hydra.__version__}


def summary_lines(result: TrainResult) -> list[str]:
    bias = None if result.bias is None else _rounded(result.bias)
    return [f"weight: {_rounded(result.weight)}", f"bias: {bias}"]


def _rounded(value: Any) -> Any:
    return [_rounded(v) for v in value] if isinstance(value, list) else round(value, 4)
