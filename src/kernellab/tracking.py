"""TensorBoard output of a run, written directly into the run dir (one run per Hydra job).

The loop hands over each logged step's values as Python floats (see loop.Progress); each logged
step becomes one event carrying all its scalars.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard.summary import histogram, hparams, text

from kernellab.eventfile import EventFile
from kernellab.pictures import comparison, grayscale, heatmap, png, symmetric_scale

LOSS_TAG = "train/loss"
ERROR_TAG = "kernel/error"
BIAS_TAG = "kernel/bias"
HISTOGRAM_TAG = "kernel/weights"
KERNEL_IMAGE_TAG = "kernel/image"
COMPARE_TAG = "kernel/compare"  # target | learned | difference, one colour scale
INPUT_TAG = "data/input"
TARGET_TAG = "data/target"
TARGET_KERNEL_TAG = "data/target_kernel"
PREDICTION_TAG = "data/prediction"
MAX_KERNEL_SCALARS = 25  # a curve per element up to 5x5; beyond that, histogram and image only


def _exponential_bins() -> list[float]:
    """TensorFlow's histogram bucket edges, as SummaryWriter uses: ±1e-12 * 1.1^k up to 1e20.

    Unlike numpy's automatic bins they work for any magnitude, e.g. a kernel blowing up to 1e36.
    """
    positive = [1e-12 * 1.1**k for k in range(int(math.log(1e32) / math.log(1.1)) + 1)]
    return [-v for v in reversed(positive)] + [0.0] + positive


HISTOGRAM_BINS = _exponential_bins()


def weight_tag(i: int, j: int) -> str:
    return f"kernel/w_{i}_{j}"


class TensorBoardTracker:
    """Writes scalars, kernel snapshots, images, the config and the HParams session of one run.

    Signed pictures keep one colour scale for the whole run: kernels the target kernel's largest
    |value|, the target Y and the prediction the target Y's (`target_output`; without it, each
    picture's own).
    """

    def __init__(
        self,
        run_dir: Path,
        target: torch.Tensor,
        purge_step: int | None,
        target_output: torch.Tensor | None = None,
    ) -> None:
        """`target`: the target kernel as the model sees it (embedded in its kernel shape)."""
        self.events = EventFile(run_dir, purge_step)
        self.target = target.detach().cpu()
        self.kernel_scale = symmetric_scale(self.target)
        self.output_scale = None if target_output is None else symmetric_scale(target_output)
        kernel_shape = tuple(target.shape)
        n = kernel_shape[0] * kernel_shape[1]
        self.scalar_tags = [LOSS_TAG, ERROR_TAG]
        if n <= MAX_KERNEL_SCALARS:
            self.scalar_tags += [
                weight_tag(i, j) for i in range(kernel_shape[0]) for j in range(kernel_shape[1])
            ]

    def log_step(
        self, step: int, loss: float, kernel: Sequence[float], bias: float | None, error: float
    ) -> None:
        """One event: the loss, the kernel error, every kernel element (small kernels), the bias."""
        values = [loss, error, *kernel][: len(self.scalar_tags)]
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
        self.events.add(image_summary(KERNEL_IMAGE_TAG, heatmap(kernel, self.kernel_scale)), step)
        picture = comparison(self.target, kernel, self.kernel_scale)
        self.events.add(image_summary(COMPARE_TAG, picture), step)

    def log_image(self, tag: str, values: torch.Tensor, step: int = 0) -> None:
        """`data/input` in gray levels; kernels and outputs as heat maps on the run's scales."""
        if tag == INPUT_TAG:
            picture = grayscale(values)
        elif tag == TARGET_KERNEL_TAG:
            picture = heatmap(values, self.kernel_scale)
        else:  # data/target, data/prediction
            picture = heatmap(values, self.output_scale or symmetric_scale(values))
        self.events.add(image_summary(tag, picture), step)

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


def image_summary(tag: str, picture: Any) -> Summary:
    """An (H, W, 3) uint8 picture as TensorBoard's image summary (PNG)."""
    height, width, channels = picture.shape
    image = Summary.Image(
        height=height, width=width, colorspace=channels, encoded_image_string=png(picture)
    )
    return Summary(value=[Summary.Value(tag=tag, image=image)])


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
