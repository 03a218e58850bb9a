"""What a run writes to TensorBoard, read back with TensorBoard's own EventAccumulator."""

import io
import itertools
import re

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.plugins.custom_scalar import layout_pb2
from torch.utils.tensorboard.summary import histogram

from kernellab.config import compose
from kernellab.pictures import MAX_WIDTH_PX, _colours, comparison, grayscale, grid, heatmap
from kernellab.rundir import read_metrics
from kernellab.tracking import (
    HISTOGRAM_BINS,
    histogram_summaries,
    histogram_summary,
    read_scalars,
)
from kernellab.training import train
from tests.helpers import accumulator, write_target_pair

# Spelt out, as docs/tensorboard.md's tag table promises them.
IMAGE_TAGS = [
    "data/input",
    "data/target",
    "data/target_kernel",
    "kernel/image",
    "kernel/compare",
    "data/prediction",
]


def pixels(image_event) -> np.ndarray:
    """An image event's PNG decoded to (H, W, 3) uint8."""
    with Image.open(io.BytesIO(image_event.encoded_image_string)) as picture:
        return np.array(picture.convert("RGB"))


def cell_centre(picture: np.ndarray, cols: int, i: int, j: int, top: int = 0) -> list[int]:
    """The colour at the centre of cell (i, j) of a map drawn `cols` cells wide from the picture's
    left edge, inside its 1-px frame, `top` pixels below the picture's top."""
    cell = _cell_size(picture, cols)
    return picture[top + 1 + i * cell + cell // 2, 1 + j * cell + cell // 2].tolist()


def _cell_size(picture: np.ndarray, cols: int) -> int:
    # the frame's grey column right of the last cell tells the map's width
    row = picture[picture.shape[0] // 2]
    frame = [x for x in range(1, picture.shape[1]) if row[x].tolist() == [150, 150, 150]]
    return (frame[0] - 1) // cols


def diverging(value: float, scale: float) -> list[int]:
    """The colour kernellab's heat maps give `value` on a ±`scale` picture: blue, white, red."""
    v = max(-1.0, min(1.0, value / scale))
    pos, neg = max(v, 0.0), max(-v, 0.0)
    return [round(255 * c) for c in (1 - neg, 1 - pos - neg, 1 - pos)]


def close_to(actual: list[int], expected: list[int]) -> bool:
    return all(abs(a - e) <= 1 for a, e in zip(actual, expected, strict=True))


def test_event_files_are_directly_in_the_run_dir(default_run):
    assert list(default_run.glob("events.out.tfevents.*"))
    assert not [p for p in default_run.iterdir() if p.is_dir() and p.name != ".hydra"]


def test_loss_kernel_and_error_curves_match_metrics(default_run):
    scalars = read_scalars(default_run)
    metrics = read_metrics(default_run)
    assert [step for step, _ in scalars["train/loss"]] == list(range(1, 21))
    assert scalars["train/loss"][-1][1] == pytest.approx(metrics["final_loss"], rel=1e-6)
    assert scalars["train/loss"][0][1] == pytest.approx(metrics["initial_loss"], rel=1e-6)
    assert scalars["kernel/w_0_0"][-1][1] == pytest.approx(metrics["weight"][0][0], rel=1e-6)
    assert scalars["kernel/w_0_1"][-1][1] == pytest.approx(metrics["weight"][0][1], rel=1e-6)
    assert scalars["kernel/bias"][-1][1] == pytest.approx(metrics["bias"], rel=1e-6, abs=1e-7)
    assert scalars["kernel/error"][-1][1] == pytest.approx(metrics["kernel_error"], rel=1e-6)
    assert len(scalars["kernel/bias"]) == len(scalars["kernel/error"]) == 20


def test_targets_are_flat_lines_from_the_first_to_the_last_logged_step(default_run):
    scalars = read_scalars(default_run)
    assert scalars["kernel/target_0_0"] == [(1, -1.0), (20, -1.0)]  # the book's K = [[-1, 1]]
    assert scalars["kernel/target_0_1"] == [(1, 1.0), (20, 1.0)]


def test_snapshots_images_and_config(default_run):
    events = accumulator(default_run)
    assert [e.step for e in events.Histograms("kernel/weights")] == list(range(2, 21, 2))
    assert sorted(events.Tags()["images"]) == sorted(IMAGE_TAGS)
    for tag in ("kernel/image", "kernel/compare"):
        assert [e.step for e in events.Images(tag)] == list(range(2, 21, 2)), tag
    for tag in IMAGE_TAGS:
        assert all(e.width <= MAX_WIDTH_PX for e in events.Images(tag)), tag
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "lr: 0.01" in config_text and "kernel_size" in config_text


def test_input_is_drawn_as_the_book_draws_it(default_run):
    (event,) = accumulator(default_run).Images("data/input")
    picture = pixels(event)
    # 6x8, columns [2, 6) are 0: the stripe is black, the rest white
    for i in range(6):
        for j in range(8):
            expected = [0, 0, 0] if 2 <= j < 6 else [255, 255, 255]
            assert cell_centre(picture, 8, i, j) == expected, (i, j)


def test_kernel_pictures_keep_the_target_kernels_scale(default_run):
    events = accumulator(default_run)
    scalars = read_scalars(default_run)
    (target_kernel,) = events.Images("data/target_kernel")
    picture = pixels(target_kernel)
    assert cell_centre(picture, 2, 0, 0) == [0, 0, 255]  # -1: full blue
    assert cell_centre(picture, 2, 0, 1) == [255, 0, 0]  # +1: full red
    # every snapshot on the same ±1 scale: a value's colour is the colour of that value
    weights = {name: dict(scalars[name]) for name in ("kernel/w_0_0", "kernel/w_0_1")}
    for event in events.Images("kernel/image"):
        picture = pixels(event)
        for j, name in enumerate(weights):
            expected = diverging(weights[name][event.step], scale=1.0)
            assert close_to(cell_centre(picture, 2, 0, j), expected), (event.step, name)
    # the colour bar beside it: +1 (red) at the top, -1 (blue) at the bottom
    column = _bar_column(picture)
    assert column[0].tolist() == [255, 0, 0] and column[-1].tolist() == [0, 0, 255]


def _bar_column(picture: np.ndarray) -> np.ndarray:
    """The colour bar's middle column, inside its frame: the one column running red to blue."""
    for x in range(picture.shape[1]):
        column = picture[:, x]
        reds = np.flatnonzero((column == [255, 0, 0]).all(axis=1))
        blues = np.flatnonzero((column == [0, 0, 255]).all(axis=1))
        if len(reds) and len(blues) and reds[-1] < blues[0]:
            return column[reds[0] : blues[-1] + 1]
    raise AssertionError("no colour bar")


def test_compare_image_puts_target_learned_and_difference_side_by_side(default_run):
    events = accumulator(default_run)
    metrics = read_metrics(default_run)
    last = events.Images("kernel/compare")[-1]
    assert last.step == 20
    picture = pixels(last)
    learned, target = metrics["weight"][0], [-1.0, 1.0]
    panels = _panels(picture, cols=2)
    assert len(panels) == 3
    for (left, top, cell), values in zip(
        panels,
        [target, learned, [w - t for w, t in zip(learned, target, strict=True)]],
        strict=True,
    ):
        for j, value in enumerate(values):
            colour = picture[top + cell // 2, left + j * cell + cell // 2].tolist()
            assert close_to(colour, diverging(value, scale=1.0)), (left, j, value)


def _panels(picture: np.ndarray, cols: int) -> list[tuple[int, int, int]]:
    """(left, top, cell) of each framed panel: grey frames on the row below the titles."""
    grey = (picture == [150, 150, 150]).all(axis=2)
    top = next(y for y in range(picture.shape[0]) if grey[y].sum() > 20)
    xs = np.flatnonzero(grey[top])
    runs, start = [], xs[0]
    for a, b in itertools.pairwise(xs):
        if b != a + 1:
            runs.append((start, a))
            start = b
    runs.append((start, xs[-1]))
    panels = [(a + 1, top + 1, (b - a - 1) // cols) for a, b in runs if b - a > 20]
    return panels[:3]


def test_prediction_and_target_share_the_target_outputs_scale(default_run):
    events = accumulator(default_run)
    target, prediction = (
        pixels(events.Images("data/target")[0]),
        pixels(events.Images("data/prediction")[0]),
    )
    assert target.shape == prediction.shape
    # Y of the book's picture: -1 where white turns black (column 1), +1 where black turns white
    assert cell_centre(target, 7, 0, 1) == [0, 0, 255]
    assert cell_centre(target, 7, 0, 5) == [255, 0, 0]
    assert cell_centre(target, 7, 0, 3) == [255, 255, 255]
    # the prediction is close to Y, not Y itself, yet drawn on Y's scale: nearly but not fully blue
    r, g, b = cell_centre(prediction, 7, 0, 1)
    assert b == 255 and 0 < r < 60 and r == g


def test_custom_scalars_layout(default_run):
    events = accumulator(default_run)
    (layout_event,) = events.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(layout_event.tensor_proto.string_val[0])
    charts = {c.title: [ch.title for ch in c.chart] for c in layout.category}
    assert charts == {
        "training": ["train/loss", "kernel/error"],
        "kernel: learned vs target": ["w[0,0]", "w[0,1]"],
    }
    tags = accumulator(default_run).Tags()["scalars"]
    element = layout.category[1].chart[1]
    matched = [t for t in tags if any(re.match(r, t) for r in element.multiline.tag)]
    assert sorted(matched) == ["kernel/target_0_1", "kernel/w_0_1"]


def test_log_every_and_big_kernels(make_cfg, tmp_path):
    cfg = make_cfg(
        "logger.log_every=5",
        "logger.snapshot_every=4",
        "model.kernel_size=[6,6]",
        "trainer.steps=12",
    )
    train(cfg, tmp_path)
    scalars = read_scalars(tmp_path)
    assert [step for step, _ in scalars["train/loss"]] == [5, 10, 12]  # and always the last
    assert not [tag for tag in scalars if tag.startswith(("kernel/w_", "kernel/target_"))]
    events = accumulator(tmp_path)
    histograms = events.Histograms("kernel/weights")
    assert [h.step for h in histograms] == [4, 8, 12]
    assert histograms[-1].histogram_value.num == 36
    (layout_event,) = events.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(layout_event.tensor_proto.string_val[0])
    assert [c.title for c in layout.category] == ["training"]  # 36 > 25 elements: no curves


def test_heatmap_colours_on_a_fixed_scale():
    picture = heatmap(torch.tensor([[-2.0, 0.0, 2.0, 8.0]]), scale=4.0).pixels()
    colours = [cell_centre(picture, 4, 0, j) for j in range(4)]
    assert colours == [[128, 128, 255], [255, 255, 255], [255, 128, 128], [255, 0, 0]]
    assert picture.dtype == np.uint8 and picture.shape[1] <= MAX_WIDTH_PX


def test_grayscale_is_black_at_0_and_white_at_1():
    picture = grayscale(torch.tensor([[0.0, 0.5, 1.0]])).pixels()
    colours = [cell_centre(picture, 3, 0, j) for j in range(3)]
    assert colours == [[0, 0, 0], [128, 128, 128], [255, 255, 255]]


def test_big_images_are_averaged_down_to_fit():
    values = torch.zeros(2048, 1024)
    values[:, :512] = 1.0  # left half white, right half black
    picture = grayscale(values).pixels()
    assert picture.shape[1] <= MAX_WIDTH_PX and picture.shape[0] <= MAX_WIDTH_PX
    assert picture[picture.shape[0] // 2, 2].tolist() == [255, 255, 255]
    assert picture[picture.shape[0] // 2, picture.shape[1] - 3].tolist() == [0, 0, 0]


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (3, 3), (5, 5), (7, 7), (31, 31)])
def test_comparison_fits_the_image_card(shape):
    target = torch.randn(shape)
    picture = comparison(target, target * 0.5, scale=2.0)
    assert picture.shape[1] <= MAX_WIDTH_PX


def test_snapshots_survive_huge_finite_kernels(make_cfg, tmp_path):
    # lr=0.1 with a [1,3] kernel grows the kernel to ~1e17 without ever becoming inf
    result = train(
        make_cfg(
            "optim.lr=0.1",
            "model.kernel_size=[1,3]",
            "trainer.steps=20",
            "trainer.divergence_threshold=null",
        ),
        tmp_path,
    )
    assert result.status == "completed" and max(abs(w) for w in result.weight[0]) > 1e6
    histograms = accumulator(tmp_path).Histograms("kernel/weights")
    assert histograms[-1].step == 20 and histograms[-1].histogram_value.num == 3


@pytest.mark.parametrize(
    "values",
    [
        [[-1.0, 1.0]],
        [[0.0, 0.0]],
        [[1e-12, -1e-12, 3.5]],
        [[1e36, -1e36, 5e-13, 1e20]],  # beyond the outermost buckets: counted in them
        [[float("inf"), float("-inf")]],
        np.random.default_rng(0).normal(size=(5, 5)).tolist(),
    ],
)
def test_histogram_is_torchs_with_values_clipped_to_the_buckets(values: list) -> None:
    kernel = np.array(values, dtype=np.float32)
    clipped = kernel.flatten().clip(HISTOGRAM_BINS[0], HISTOGRAM_BINS[-1])
    expected = histogram("kernel/weights", clipped, bins=HISTOGRAM_BINS.tolist())
    ours = histogram_summary("kernel/weights", kernel)
    assert ours.SerializeToString() == expected.SerializeToString()


def test_histograms_of_a_group_are_each_rows_own() -> None:
    rows = np.array([[-1.0, 1.0, 0.0], [1e36, -2.0, float("nan")], [0.5, 0.5, 3.0]])
    together = histogram_summaries("kernel/weights", rows)
    alone = [histogram_summary("kernel/weights", row[~np.isnan(row)]) for row in rows]
    assert [s.SerializeToString() for s in together[::2]] == [
        s.SerializeToString() for s in alone[::2]
    ]
    assert together[1].value[0].histo.num == 3  # NaN is counted in num, in no bucket
    assert sum(together[1].value[0].histo.bucket) == 2


@pytest.mark.parametrize("step", [0, 1, 127, 128, 20_000, 2**40])
def test_an_event_is_protobufs_own_serialization(step: int) -> None:
    from tensorboard.compat.proto.event_pb2 import Event

    from kernellab.eventfile import summary_event

    summary = histogram_summary("kernel/weights", np.array([-0.7, 0.9]))
    expected = Event(wall_time=1795727653.25, step=step, summary=summary).SerializeToString()
    assert summary_event(1795727653.25, step, summary.SerializeToString()) == expected


def test_a_run_without_a_ground_truth_logs_no_error_target_or_comparison(tmp_path):
    image, target = write_target_pair(tmp_path)
    overrides = (f"task.image={image}", f"task.target_image={target}", "model.kernel_size=3")
    train(
        compose(*overrides, "optim.lr=0.0005", "trainer.steps=4", "logger.snapshot_every=2"),
        tmp_path / "run",
    )
    events = accumulator(tmp_path / "run")
    scalars = events.Tags()["scalars"]
    assert "train/loss" in scalars and "kernel/w_2_2" in scalars and "kernel/bias" in scalars
    assert not [t for t in scalars if t == "kernel/error" or t.startswith("kernel/target_")]
    images = ["data/input", "data/target", "kernel/image", "data/prediction"]
    assert sorted(events.Tags()["images"]) == sorted(images)
    assert [e.step for e in events.Images("kernel/image")] == [2, 4]


def test_grid_tiles_channels_with_a_blank_line_between_maps():
    kernel = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    tiled = grid(kernel)
    assert tiled.shape == (2 * 3 - 1, 3 * 3 - 1)  # out rows of in maps, one blank line apart
    for o, c in itertools.product(range(2), range(3)):
        assert torch.equal(tiled[o * 3 : o * 3 + 2, c * 3 : c * 3 + 2], kernel[o, c])
    assert tiled[2].isnan().all() and tiled[:, 2].isnan().all() and tiled[:, 5].isnan().all()
    assert grid(kernel[0]).shape == (2, 3 * 3 - 1)  # (c, h, w): side by side
    assert torch.equal(grid(kernel[0, 0]), kernel[0, 0])  # a plain map as it is


def test_a_kernel_with_channels_is_a_grid_of_out_by_in_maps_on_one_scale(tmp_path):
    from tests.helpers import TRUTH_2X3, kernel_override, write_rgb_picture

    overrides = (
        f"task.image={write_rgb_picture(tmp_path)}",
        "task.channels=rgb",
        kernel_override(TRUTH_2X3),
        "trainer.steps=2",
    )
    train(compose(*overrides), tmp_path / "run")
    events, weight = accumulator(tmp_path / "run"), read_metrics(tmp_path / "run")["weight"]
    assert sorted(events.Tags()["images"]) == sorted(IMAGE_TAGS)
    picture = pixels(events.Images("kernel/image")[-1])
    scale = 0.3  # the target's largest |value|: one scale for every map
    for o, c, i, j in itertools.product(range(2), range(3), range(2), range(2)):
        colour = cell_centre(picture, 8, o * 3 + i, c * 3 + j)
        assert close_to(colour, diverging(weight[o][c][i][j], scale)), (o, c, i, j)
    assert cell_centre(picture, 8, 2, 0) == [255, 255, 255]  # the blank line between maps
    (layout_event,) = events.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(layout_event.tensor_proto.string_val[0])
    assert [c.title for c in layout.category[1].chart][-1] == "w[1,2,1,1]"
    assert "kernel/w_1_2_1_1" in events.Tags()["scalars"]


def test_a_layouts_palette_is_numpys_unique_colours():
    """`_colours` (each pixel as one uint32) numbers a layout's pixels as numpy's row-wise
    `unique` does, ~60× faster: the same palette PNG bytes."""
    shown = [
        grayscale(torch.rand(6, 8)),
        heatmap(torch.randn(1, 2), 0.7),
        comparison(torch.randn(6, 7), torch.randn(6, 7), 2.5),
    ]
    for canvas in [p.layout.canvas for p in shown] + [
        np.arange(600, dtype=np.uint8).reshape(10, 20, 3)
    ]:
        palette, indices = np.unique(canvas.reshape(-1, 3), axis=0, return_inverse=True)
        got_palette, got_indices = _colours(canvas)
        assert got_palette.dtype == np.uint8
        np.testing.assert_array_equal(got_palette, palette)
        np.testing.assert_array_equal(got_indices.ravel(), indices.ravel())
