"""kernellab.chart: summary.png's panels drawn with Pillow, decoded back and measured."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageColor

from kernellab.chart import (
    BOTTOM,
    COLOURS,
    LEFT,
    LEGEND_ROW_PX,
    PANEL_PX,
    RIGHT,
    TOP,
    Panel,
    Series,
    _Axis,
    render,
)


def decoded(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as picture:
        return np.array(picture.convert("RGB"))


def test_panels_side_by_side_and_the_legend_below_in_its_columns():
    legend = [Series([], label=f"job {i}", colour=COLOURS[i]) for i in range(3)]
    picture = decoded(render([Panel("a", "x"), Panel("b", "x")], legend, legend_columns=2))
    width, height = PANEL_PX
    # 3 entries in 2 columns: 2 rows
    assert picture.shape == (height + 2 * LEGEND_ROW_PX, 2 * width, 3)


def test_a_line_goes_through_its_points_pixels():
    red = COLOURS[3]
    picture = decoded(
        render([Panel("loss", "step", series=[Series([(0, 0), (10, 10)], colour=red)])])
    )
    # the plot area, its values padded by 5% of their range each side: (5, 5) is its centre
    width, height = PANEL_PX
    area_w, area_h = width - RIGHT - LEFT, height - BOTTOM - TOP
    x, y = LEFT + (area_w - 1) / 2, TOP + (area_h - 1) / 2
    around = picture[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2].reshape(-1, 3)
    assert list(ImageColor.getrgb(red)) in around.tolist()


def test_an_empty_panel_is_drawn_with_its_note():
    picture = decoded(render([Panel("loss", "step", note="no finished job")]))
    assert picture.shape == (PANEL_PX[1], PANEL_PX[0], 3)
    assert (picture < 128).any()  # the title and the note


@pytest.mark.parametrize(
    ("values", "log", "ticks"),
    [
        ([0, 10], False, [0, 5, 10]),  # -0.5 .. 10.5: 2.2 a step, rounded up to 5
        ([0, 1], False, [0, 0.5, 1]),  # -0.05 .. 1.05: 0.22 a step, rounded up to 0.5
        ([1, 1000], True, [1, 10, 100, 1000]),  # three decades: the decades
        ([1, 10], True, [1, 2, 5, 10]),  # one decade: 1, 2 and 5 times
    ],
)
def test_ticks_are_round_numbers_or_decades(values, log, ticks):
    assert _Axis(values, log, 0, 100).ticks() == pytest.approx(ticks)
