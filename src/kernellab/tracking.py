"""TensorBoard output of a run, written directly into the run dir (one run per Hydra job).

Per-step values are kept in a buffer on the training device and written in batches, so the
training loop never waits on the host; each logged step becomes one event carrying all its scalars.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import struct
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import google_crc32c
import torch
import torch.nn.functional as F
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard.summary import histogram, hparams, image, text

LOSS_TAG = "train/loss"
BIAS_TAG = "kernel/bias"
HISTOGRAM_TAG = "kernel/weights"
KERNEL_IMAGE_TAG = "kernel/image"
MAX_KERNEL_SCALARS = 25  # a curve per element up to 5x5; beyond that, histogram and image only
IMAGE_CELL_PX = 32  # a kernel element drawn as a 32x32 block so a 1x2 kernel is visible
MAX_IMAGE_PX = 512


def _exponential_bins() -> list[float]:
    """TensorFlow's histogram bucket edges, as SummaryWriter uses: ±1e-12 * 1.1^k up to 1e20.

    Unlike numpy's automatic bins they work for any magnitude, e.g. a kernel blowing up to 1e36.
    """
    positive = [1e-12 * 1.1**k for k in range(int(math.log(1e32) / math.log(1.1)) + 1)]
    return [-v for v in reversed(positive)] + [0.0] + positive


HISTOGRAM_BINS = _exponential_bins()


def weight_tag(i: int, j: int) -> str:
    return f"kernel/w_{i}_{j}"


class StepBuffer:
    """Rows of [loss, kernel..., bias] per step, kept on the device until drained."""

    def __init__(self, width: int, capacity: int, device: torch.device) -> None:
        self.rows = torch.empty(capacity, width, device=device)
        self.row_views = self.rows.unbind(0)  # made once: indexing a row per step costs a dispatch
        self.steps: list[int] = []

    def record(self, step: int, values: list[torch.Tensor]) -> None:
        """`values`: detached 1-D tensors (a `cat` with `out=` can't be differentiated)."""
        torch.cat(values, out=self.row_views[len(self.steps)])
        self.steps.append(step)

    @property
    def full(self) -> bool:
        return len(self.steps) == len(self.rows)

    def drain(self) -> tuple[list[int], list[list[float]]]:
        """The recorded steps and their rows as Python floats (the only host sync)."""
        steps, rows = self.steps, self.rows[: len(self.steps)].tolist()
        self.steps = []
        return steps, rows


class EventFile:
    """One TensorBoard event file: Event protos in TFRecord framing, written synchronously.

    TensorBoard's own writer computes each record's CRC32C in pure Python, about 75 µs an event:
    more than a training step of the seed task. google-crc32c does it in C in under a microsecond,
    and writing a flush's events in one go needs no background thread.
    """

    def __init__(self, run_dir: Path, purge_step: int | None) -> None:
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.0"
        self.path = Path(run_dir) / name
        self.file = open(self.path, "ab")  # noqa: SIM115  (closed by close())
        self.write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:  # TensorBoard drops earlier events at or after this step
            self.write(
                Event(
                    wall_time=time.time(),
                    step=purge_step,
                    session_log=SessionLog(status=SessionLog.START),
                )
            )

    def add(self, summary: Summary, step: int = 0) -> None:
        self.write(Event(wall_time=time.time(), step=step, summary=summary))

    def write(self, event: Event) -> None:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self.file.write(header + _masked_crc(header) + data + _masked_crc(data))

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _masked_crc(data: bytes) -> bytes:
    """TFRecord's masked CRC32C of `data`, little-endian."""
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


class TensorBoardTracker:
    """Writes scalars, kernel snapshots, images, the config and the HParams session of one run."""

    def __init__(
        self, run_dir: Path, kernel_shape: tuple[int, int], purge_step: int | None
    ) -> None:
        self.events = EventFile(run_dir, purge_step)
        n = kernel_shape[0] * kernel_shape[1]
        self.scalar_tags = [LOSS_TAG]
        if n <= MAX_KERNEL_SCALARS:
            self.scalar_tags += [
                weight_tag(i, j) for i in range(kernel_shape[0]) for j in range(kernel_shape[1])
            ]

    def log_step(self, step: int, loss: float, kernel: Sequence[float], bias: float | None) -> None:
        """One event carrying the loss, every kernel element (small kernels) and the bias."""
        values = [loss, *kernel][: len(self.scalar_tags)]
        tags = self.scalar_tags
        if bias is not None:
            tags, values = [*tags, BIAS_TAG], [*values, bias]
        summary = Summary(
            value=[Summary.Value(tag=t, simple_value=v) for t, v in zip(tags, values, strict=True)]
        )
        self.events.add(summary, step)

    def log_snapshot(self, step: int, kernel: torch.Tensor) -> None:
        self.events.add(
            histogram(HISTOGRAM_TAG, kernel.flatten().numpy(), bins=HISTOGRAM_BINS), step
        )
        self.events.add(image(KERNEL_IMAGE_TAG, heatmap(kernel), dataformats="CHW"), step)

    def log_image(self, tag: str, values: torch.Tensor, step: int = 0) -> None:
        self.events.add(image(tag, heatmap(values), dataformats="CHW"), step)

    def log_config(self, config_yaml: str) -> None:
        self.events.add(text("config", "```yaml\n" + config_yaml + "\n```"))

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
        self.events.add(session_start)

    def flush(self) -> None:
        self.events.flush()

    def close(self) -> None:
        self.events.close()


def heatmap(values: torch.Tensor) -> torch.Tensor:
    """A diverging blue-white-red picture (3, H, W) of a 2-D tensor, white at 0, scaled by max |v|."""
    values = _fit_for_display(values.detach().float()).cpu()
    scale = values.abs().max().clamp_min(1e-12)
    v = (values / scale).clamp(-1, 1)
    positive, negative = v.clamp_min(0), (-v).clamp_min(0)
    rgb = torch.stack([1 - negative, 1 - positive - negative, 1 - positive])  # red > 0, blue < 0
    return _resize(rgb)


def _fit_for_display(values: torch.Tensor) -> torch.Tensor:
    """Average big images down to at most MAX_IMAGE_PX (on their device, before colouring)."""
    h, w = values.shape
    if max(h, w) <= MAX_IMAGE_PX:
        return values
    size = (max(1, h * MAX_IMAGE_PX // max(h, w)), max(1, w * MAX_IMAGE_PX // max(h, w)))
    return F.interpolate(values[None, None], size=size, mode="area")[0, 0]


def _resize(rgb: torch.Tensor) -> torch.Tensor:
    """Blow small grids up into visible blocks (up to MAX_IMAGE_PX on the longer side)."""
    h, w = rgb.shape[1:]
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
