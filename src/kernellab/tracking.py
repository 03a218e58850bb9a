"""TensorBoard output of a run, written directly into the run dir (one run per Hydra job).

Per-step values are kept in a buffer on the training device and written in batches, so the
training loop never waits on the host; each logged step becomes one event carrying all its scalars.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

LOSS_TAG = "train/loss"
BIAS_TAG = "kernel/bias"
HISTOGRAM_TAG = "kernel/weights"
KERNEL_IMAGE_TAG = "kernel/image"
MAX_KERNEL_SCALARS = (
    25  # a scalar curve per element up to 5x5; beyond that, histogram and image only
)
IMAGE_CELL_PX = 32  # a kernel element drawn as a 32x32 block so a 1x2 kernel is visible
MAX_IMAGE_PX = 512


def weight_tag(i: int, j: int) -> str:
    return f"kernel/w_{i}_{j}"


class StepBuffer:
    """Rows of [loss, kernel..., bias] per step, kept on the device until drained."""

    def __init__(self, width: int, capacity: int, device: torch.device) -> None:
        self.rows = torch.empty(capacity, width, device=device)
        self.steps: list[int] = []

    @torch.no_grad()
    def record(self, step: int, values: list[torch.Tensor]) -> None:
        torch.cat(values, out=self.rows[len(self.steps)])
        self.steps.append(step)

    @property
    def full(self) -> bool:
        return len(self.steps) == len(self.rows)

    def drain(self) -> tuple[list[int], torch.Tensor]:
        """The recorded steps and their rows on the CPU (the only host sync)."""
        steps, rows = self.steps, self.rows[: len(self.steps)].cpu()
        self.steps = []
        return steps, rows


class TensorBoardTracker:
    """Writes scalars, kernel snapshots, images, the config and the HParams entry of one run."""

    def __init__(
        self, run_dir: Path, kernel_shape: tuple[int, int], purge_step: int | None
    ) -> None:
        # purge_step hides events a resumed run is about to write again (TensorBoard's restart rule).
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step, flush_secs=5)
        self.kernel_shape = kernel_shape
        n = kernel_shape[0] * kernel_shape[1]
        self.scalar_tags = [LOSS_TAG]
        if n <= MAX_KERNEL_SCALARS:
            self.scalar_tags += [
                weight_tag(i, j) for i in range(kernel_shape[0]) for j in range(kernel_shape[1])
            ]

    def log_step(self, step: int, loss: float, kernel: torch.Tensor, bias: float | None) -> None:
        """One event carrying the loss, every kernel element (small kernels) and the bias."""
        values = [loss, *kernel.flatten().tolist()][: len(self.scalar_tags)]
        tags = list(self.scalar_tags)
        if bias is not None:
            tags.append(BIAS_TAG)
            values.append(bias)
        summary = Summary(
            value=[Summary.Value(tag=t, simple_value=v) for t, v in zip(tags, values, strict=True)]
        )
        self.writer.file_writer.add_summary(summary, step)

    def log_snapshot(self, step: int, kernel: torch.Tensor) -> None:
        self.writer.add_histogram(HISTOGRAM_TAG, kernel.flatten(), step)
        self.writer.add_image(KERNEL_IMAGE_TAG, heatmap(kernel), step)

    def log_image(self, tag: str, image: torch.Tensor, step: int = 0) -> None:
        self.writer.add_image(tag, heatmap(image), step)

    def log_config(self, config_yaml: str) -> None:
        self.writer.add_text("config", "```yaml\n" + config_yaml + "\n```")

    def log_hparams(self, hyperparameters: Mapping[str, Any]) -> None:
        """This run's HParams session, in the run itself (not a timestamped sub-run).

        Only the session is written, no experiment summary: TensorBoard then builds the experiment
        from all runs' sessions, so it knows which hyperparameters differ across a sweep, and takes
        the runs' scalars (`train/loss` first, then the kernel) as metrics. With a summary per run
        it would take one run's at random and mark nothing as swept.
        """
        _experiment, session_start, _session_end = hparams(
            dict(hyperparameters), {LOSS_TAG: float("nan")}
        )
        self.writer.file_writer.add_summary(session_start)

    def close(self) -> None:
        self.writer.close()


def heatmap(values: torch.Tensor) -> torch.Tensor:
    """A diverging blue-white-red picture (3, H, W) of a 2-D tensor, white at 0, scaled by max |v|."""
    values = values.detach().float().cpu()
    scale = values.abs().max().clamp_min(1e-12)
    v = (values / scale).clamp(-1, 1)
    positive, negative = v.clamp_min(0), (-v).clamp_min(0)
    rgb = torch.stack([1 - negative, 1 - positive - negative, 1 - positive])  # red > 0, blue < 0
    return _resize(rgb)


def _resize(rgb: torch.Tensor) -> torch.Tensor:
    """Blow small grids up into visible blocks; shrink huge images to at most MAX_IMAGE_PX."""
    h, w = rgb.shape[1:]
    if max(h, w) > MAX_IMAGE_PX:
        size = (max(1, h * MAX_IMAGE_PX // max(h, w)), max(1, w * MAX_IMAGE_PX // max(h, w)))
        return F.interpolate(rgb[None], size=size, mode="area")[0]
    cell = max(1, min(IMAGE_CELL_PX, MAX_IMAGE_PX // max(h, w)))
    return rgb.repeat_interleave(cell, 1).repeat_interleave(cell, 2)


def hyperparameters(cfg: Any) -> dict[str, Any]:
    """The run's config as flat HParams: lists as strings, the optimizer by its class name."""
    from omegaconf import OmegaConf

    flat: dict[str, Any] = {}

    def visit(node: Any, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                visit(value, f"{prefix}{key}.")
            elif key == "_target_":
                flat[prefix.rstrip(".")] = value.rsplit(".", 1)[-1]
            elif not key.startswith("_"):
                flat[prefix + key] = (
                    value if isinstance(value, bool | int | float | str) else str(value)
                )

    visit(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve of a run, read back from its event files with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # its INFO lines are noise here
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }
