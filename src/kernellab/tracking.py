"""TensorBoard output of a run, written directly into the run dir (one run per Hydra job).

The loop hands over each logged step's values as Python floats (see loop.Progress); each logged
step becomes one event carrying all its scalars. Besides the Scalars, Images and Histograms
dashboards, every run writes what the Custom Scalars and HParams dashboards need:

- Custom Scalars: a layout (`kernel_layout`) charting the loss beside the kernel error, and each
  kernel element's learned value `kernel/w_i_j` with its target `kernel/target_i_j` (written at
  the first and the last logged step: two points make the flat line).
- HParams: an experiment summary and this run's session, made by kernellab.hparams and written
  with `log_summary` (kernellab.run_log).
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalars_metadata
from torch.utils.tensorboard.summary import text

from kernellab.eventfile import EventFile, varint
from kernellab.pictures import (
    Picture,
    comparisons,
    grayscale,
    grid,
    grids,
    heatmap,
    heatmaps,
    symmetric_scale,
)

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


HISTOGRAM_BINS = np.array(_exponential_bins())


def histogram_summary(tag: str, values: np.ndarray) -> Summary:
    """What torch's `summary.histogram(tag, values, bins=HISTOGRAM_BINS)` makes of `values`, with
    values beyond the outermost bucket counted in it (a blown-up kernel).

    The same proto, many times faster: np.histogram counts into all ~1,450 buckets, where a
    kernel fills a few. Like TensorBoard's, the buckets sent are those from the one before the
    first filled bucket (or an empty one at the far left) to the last filled one.
    """
    return histogram_summaries(tag, values.reshape(1, -1))[0]


def histogram_summaries(tag: str, values: np.ndarray) -> list[Summary]:
    """`histogram_summary` of each row of `values` (M, n), the bucket search in one pass."""
    values = values.astype(float).clip(HISTOGRAM_BINS[0], HISTOGRAM_BINS[-1])
    # np.histogram's buckets: [edge_i, edge_i+1), the last one closed; NaN in none
    found = np.searchsorted(HISTOGRAM_BINS, values, side="right") - 1
    found = found.clip(max=len(HISTOGRAM_BINS) - 2)
    counted = ~np.isnan(values)
    summaries = []
    for row, row_buckets, row_counted in zip(values, found, counted, strict=True):
        buckets = row_buckets[row_counted]
        first, last = int(buckets.min()), int(buckets.max())
        low = max(first - 1, 0)
        counts = np.bincount(buckets - low, minlength=last + 1 - low).astype(float)
        if first == 0:
            counts = np.concatenate(([0.0], counts))
        stats = (row.min(), row.max(), len(row), row.sum(), row.dot(row))
        histo = _histogram_proto(stats, _bucket_limits(first, last), counts.tobytes())
        summaries.append(Summary(value=[Summary.Value(tag=tag, histo=histo)]))
    return summaries


def _histogram_proto(stats: tuple, limits: bytes, counts: bytes) -> HistogramProto:
    """A HistogramProto read from its wire format: min, max, num, sum and sum_squares (fields
    1-5, doubles), then bucket_limit and bucket (6, 7) as packed doubles, taken as bytes from
    numpy. Setting the fields from Python floats costs ~40 µs a histogram: a kernel around ±1
    fills buckets ~600 apart, and TensorBoard's format sends every bucket in between."""
    head = struct.pack("<BdBdBdBdBd", *(x for i, v in enumerate(stats) for x in (i * 8 + 9, v)))
    return HistogramProto.FromString(
        b"".join((head, b"\x32", varint(len(limits)), limits, b"\x3a", varint(len(counts)), counts))
    )


@functools.lru_cache(maxsize=1024)  # a run's kernel fills about the same buckets at each snapshot
def _bucket_limits(first: int, last: int) -> bytes:
    return HISTOGRAM_BINS[first : last + 2].tobytes()


def weight_tag(*index: int) -> str:
    """`kernel/w_i_j`; with channels `kernel/w_o_c_i_j` (output, input channel, row, column)."""
    return "kernel/w_" + "_".join(map(str, index))


def target_tag(*index: int) -> str:
    return "kernel/target_" + "_".join(map(str, index))


def _elements(shape: Sequence[int]) -> list[tuple[int, ...]]:
    """Every index of a kernel of `shape`, row-major (the order of its flat values)."""
    return list(itertools.product(*map(range, shape)))


class TensorBoardTracker:
    """Writes scalars, kernel snapshots, images and the config of one run, and the summaries
    given it (its HParams session).

    Signed pictures keep one colour scale for the whole run: kernels the target kernel's largest
    |value|, the target Y and the prediction the target Y's (`target_output`; without it, each
    picture's own).
    """

    def __init__(
        self,
        run_dir: Path,
        target: torch.Tensor | None,
        purge_step: int | None,
        target_output: torch.Tensor | None = None,
        kernel_shape: Sequence[int] | None = None,
    ) -> None:
        """`target`: the target kernel as the model sees it (embedded in its kernel shape); None
        when there is no ground truth (a target image alone): then no `kernel/error`,
        `kernel/target_i_j` or `kernel/compare`, and `kernel/image` on each snapshot's own scale.
        `kernel_shape`: the model's, needed without a target: (kh, kw), or with channels
        (out, in, kh, kw), whose pictures are grids of out × in maps."""
        self.events = EventFile(run_dir, purge_step)
        self.target = None if target is None else target.detach().cpu()
        self.kernel_scale = None if self.target is None else symmetric_scale(self.target)
        self.output_scale = None if target_output is None else symmetric_scale(target_output)
        shape = tuple(self.target.shape if self.target is not None else kernel_shape or ())
        self.kernel_shape = shape
        self.scalar_tags = [LOSS_TAG] if self.target is None else [LOSS_TAG, ERROR_TAG]
        self.targets: list[Summary.Value] = []  # kernel/target_i_j, small kernels only
        if math.prod(shape) <= MAX_KERNEL_SCALARS:
            elements = _elements(shape)
            self.scalar_tags += [weight_tag(*e) for e in elements]
            if self.target is not None:
                values = self.target.flatten().tolist()
                self.targets = [
                    Summary.Value(tag=target_tag(*e), simple_value=v)
                    for e, v in zip(elements, values, strict=True)
                ]
        self.target_steps: list[int] = []  # where the target scalars were written
        self.last_step: int | None = None
        if purge_step is None:  # a new run; a resumed one has its layout already
            self.events.add(_kernel_layout_summary(*shape))

    def log_step(
        self,
        step: int,
        loss: float,
        kernel: Sequence[float],
        bias: float | list[float] | None,
        error: float | None,
    ) -> None:
        """One event: the loss, the kernel error (None: no ground truth), every kernel element
        (small kernels), the bias (`kernel/bias_o` per output channel with several), and on the
        session's first logged step the target elements."""
        head = [loss] if error is None else [loss, error]
        values = [*head, *kernel][: len(self.scalar_tags)]
        tags = self.scalar_tags
        if isinstance(bias, list):  # one per output channel: kernel/bias_o
            tags, values = [*tags, *(f"{BIAS_TAG}_{o}" for o in range(len(bias)))], [*values, *bias]
        elif bias is not None:
            tags, values = [*tags, BIAS_TAG], [*values, bias]
        summary = Summary(
            value=[Summary.Value(tag=t, simple_value=v) for t, v in zip(tags, values, strict=True)]
        )
        if not self.target_steps:
            summary.value.extend(self.targets)
            self.target_steps.append(step)
        self.events.add(summary, step)
        self.last_step = step

    def log_image(self, tag: str, values: torch.Tensor, step: int = 0) -> None:
        self.log_summary(self.image(tag, values), step)

    def image(self, tag: str, values: torch.Tensor) -> Summary:
        """`data/input` in gray levels; kernels and outputs as heat maps on the run's scales (with
        channels, each a grid of its maps)."""
        if tag == INPUT_TAG:
            picture = grayscale(grid(values))
        elif tag == TARGET_KERNEL_TAG:
            picture = heatmap(grid(values), self.kernel_scale or symmetric_scale(values))
        else:  # data/target, data/prediction
            picture = heatmap(grid(values), self.output_scale or symmetric_scale(values))
        return image_summary(tag, picture)

    def log_summary(self, summary: Summary, step: int = 0) -> None:
        """A summary made elsewhere: for another run with the same scales (e.g. by `image`), or
        the HParams session (kernellab.hparams): its bytes."""
        self.events.add(summary, step)

    def log_config(self, config_yaml: str) -> None:
        self.events.add(text("config", "```yaml\n" + config_yaml + "\n```"))

    def flush(self) -> None:
        self.events.flush()

    def close(self) -> None:
        """The target elements again at the last logged step, then close the file."""
        if self.targets and self.last_step is not None and self.last_step not in self.target_steps:
            self.events.add(Summary(value=self.targets), self.last_step)
            self.target_steps.append(self.last_step)
        self.events.close()


def log_snapshots(
    step: int, snapshots: Sequence[tuple[TensorBoardTracker, Sequence[float]]]
) -> None:
    """Each run's snapshot at `step`: a histogram of its kernel (given flat), `kernel/image` and
    `kernel/compare`. The pictures of runs with the same kernel shape and scale (a group's, as a
    rule) are coloured together: numpy costs per call, and each picture has a few values. A run
    without a ground truth has no `kernel/compare`, and its `kernel/image` is on its own scale."""
    batches: dict[tuple, list[tuple[TensorBoardTracker, Sequence[float]]]] = {}
    for index, (tracker, kernel) in enumerate(snapshots):
        # no target: alone, its scale from its kernel
        scale = tracker.kernel_scale if tracker.target is not None else ("own", index)
        batches.setdefault((tracker.kernel_shape, scale), []).append((tracker, kernel))
    for (shape, scale), batch in batches.items():
        kernels = torch.tensor([kernel for _, kernel in batch]).view(-1, *shape)
        histograms = histogram_summaries(HISTOGRAM_TAG, kernels.view(len(batch), -1).numpy())
        maps = grids(kernels) if len(shape) == 4 else kernels  # channels: out × in maps each
        if isinstance(scale, tuple):
            images, compared = heatmaps(maps, symmetric_scale(kernels)), [None]
        else:
            targets = torch.stack([tracker.target for tracker, _ in batch])
            images = heatmaps(maps, scale)
            compared = comparisons(grids(targets) if len(shape) == 4 else targets, maps, scale)
        for (tracker, _), histogram, image, comparison in zip(
            batch, histograms, images, compared, strict=True
        ):
            tracker.events.add(histogram, step)
            tracker.events.add(image_summary(KERNEL_IMAGE_TAG, image), step)
            if comparison is not None:
                tracker.events.add(image_summary(COMPARE_TAG, comparison), step)


def image_summary(tag: str, picture: Picture) -> Summary:
    """A picture as TensorBoard's image summary (PNG)."""
    height, width, channels = picture.shape
    image = Summary.Image(
        height=height, width=width, colorspace=channels, encoded_image_string=picture.png()
    )
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def snapshot_interval(steps: int, snapshot_every: int | None) -> int:
    """`logger.snapshot_every`, resolved: null means every ⌈steps/10⌉, about 10 a run."""
    return snapshot_every or max(1, math.ceil(steps / 10))


# --- Custom Scalars ---


def kernel_layout(kernel_shape: tuple[int, ...]) -> layout_pb2.Layout:
    """Loss and kernel error side by side; a chart per kernel element, learned against target.

    TensorBoard merges the layouts of all runs: categories by title, charts unless equal. So each
    chart depends on its element (i, j) only, and a [1,3] job adds just its `w[0,2]` chart to a
    [1,2] job's layout. Chart tags are regular expressions matched against each run's tags.
    `kernel_shape`: (kh, kw), or (out, in, kh, kw) with channels (charts `w[o,c,i,j]`).
    """
    lines = layout_pb2.MultilineChartContent
    categories = [
        layout_pb2.Category(
            title="training",
            chart=[
                layout_pb2.Chart(title=LOSS_TAG, multiline=lines(tag=[rf"^{LOSS_TAG}$"])),
                layout_pb2.Chart(title=ERROR_TAG, multiline=lines(tag=[rf"^{ERROR_TAG}$"])),
            ],
        )
    ]
    if math.prod(kernel_shape) <= MAX_KERNEL_SCALARS:
        categories.append(
            layout_pb2.Category(
                title="kernel: learned vs target",
                chart=[
                    layout_pb2.Chart(
                        title=f"w[{','.join(map(str, e))}]",
                        multiline=lines(tag=[rf"^kernel/(w|target)_{'_'.join(map(str, e))}$"]),
                    )
                    for e in _elements(kernel_shape)
                ],
            )
        )
    return layout_pb2.Layout(category=categories)


@functools.lru_cache(maxsize=64)  # the same for every job with this kernel shape
def _kernel_layout_summary(*kernel_shape: int) -> Summary:
    return layout_summary(kernel_layout(kernel_shape))


def layout_summary(layout: layout_pb2.Layout) -> Summary:
    """The Custom Scalars plugin's layout event: a serialized Layout in a string tensor."""
    tensor = TensorProto(
        dtype="DT_STRING", string_val=[layout.SerializeToString()], tensor_shape=TensorShapeProto()
    )
    metadata = custom_scalars_metadata.create_summary_metadata()
    return Summary(
        value=[
            Summary.Value(
                tag=custom_scalars_metadata.CONFIG_SUMMARY_TAG, tensor=tensor, metadata=metadata
            )
        ]
    )


# --- reading back ---


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve of a run, read back from its event files with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # its INFO lines are noise here
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }
