"""Charts for a sweep's summary.png, drawn with Pillow: panels of lines or points on linear or
log-scale axes, each with a title, axis labels and ticks, and a legend below them.

matplotlib drew the same panels in about 1.2 s (0.45 s of it importing), more than a whole
16-job batched sweep's other overhead; these take a few tens of milliseconds, and Pillow is loaded
already (it draws the TensorBoard pictures). Lines are not anti-aliased.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont

from kernellab.pictures import png

PANEL_PX = (550, 450)  # width, height of one panel with its labels (5.5 x 4.5 in at 100 dpi)
LEGEND_ROW_PX = 20
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 30, 46  # the plot area's margins inside a panel
COLOURS = (  # matplotlib's default cycle (tab10), so colours read as they did
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
INK, GRID, FRAME = (0, 0, 0), (225, 225, 225), (90, 90, 90)
BAND_ALPHA = 56  # of 255: overlapping bands stay readable


@dataclass
class Series:
    points: Sequence[tuple[float, float]]
    label: str = ""
    colour: str = COLOURS[0]
    markers: bool = False  # points without a line between them
    # (low, high) at each point: a shaded band along a line, an error bar at a marker
    band: Sequence[tuple[float, float]] = ()


@dataclass
class Panel:
    title: str
    xlabel: str
    ylabel: str = ""
    series: list[Series] = field(default_factory=list)
    log_x: bool = False
    log_y: bool = False
    y_top: float | None = None  # the y axis ends here if the data goes higher
    note: str = ""  # shown in the middle of an empty panel


def render(
    panels: Sequence[Panel], legend: Sequence[Series] = (), legend_columns: int = 1
) -> bytes:
    """The panels side by side, the legend's entries below them; PNG bytes."""
    width, height = PANEL_PX
    rows = math.ceil(len(legend) / max(1, legend_columns))
    image = Image.new("RGB", (width * len(panels), height + rows * LEGEND_ROW_PX), "white")
    draw = ImageDraw.Draw(image)
    for number, panel in enumerate(panels):
        _draw_panel(image, draw, panel, number * width)
    column_px = image.width // max(1, legend_columns)
    for index, entry in enumerate(legend):
        x = (index % legend_columns) * column_px + 12
        y = height + (index // legend_columns) * LEGEND_ROW_PX + LEGEND_ROW_PX // 2
        draw.line([(x, y), (x + 24, y)], fill=entry.colour, width=2)
        draw.text((x + 30, y), entry.label, fill=INK, font=_font(11), anchor="lm")
    return png(np.asarray(image))


def _draw_panel(image: Image.Image, draw: ImageDraw.ImageDraw, panel: Panel, left: int) -> None:
    width, height = PANEL_PX
    x0, y0, x1, y1 = left + LEFT, TOP, left + width - RIGHT, height - BOTTOM  # the plot area
    middle = (x0 + x1) / 2
    draw.text((middle, TOP / 2), panel.title, fill=INK, font=_font(13), anchor="mm")
    draw.text((middle, height - 12), panel.xlabel, fill=INK, font=_font(12), anchor="mm")
    if panel.ylabel:
        _vertical_text(image, panel.ylabel, (left + 12, (y0 + y1) // 2))
    area = Image.new("RGB", (x1 - x0, y1 - y0), "white")  # drawing in it clips to it
    plot = ImageDraw.Draw(area)
    points = [p for s in panel.series for p in s.points]
    points += [
        (x, y)
        for s in panel.series
        for (x, _), band in zip(s.points, s.band, strict=False)
        for y in band
    ]
    if not points:
        plot.text(
            (area.width / 2, area.height / 2), panel.note, fill=INK, font=_font(12), anchor="mm"
        )
    else:
        x_axis = _Axis([x for x, _ in points], panel.log_x, 0, area.width - 1)
        y_axis = _Axis([y for _, y in points], panel.log_y, area.height - 1, 0, panel.y_top)
        for value in x_axis.ticks():
            x = x_axis.px(value)
            plot.line([(x, 0), (x, area.height)], fill=GRID)
            draw.text((x0 + x, y1 + 4), _tick_label(value), fill=INK, font=_font(11), anchor="mt")
        for value in y_axis.ticks():
            y = y_axis.px(value)
            plot.line([(0, y), (area.width, y)], fill=GRID)
            draw.text((x0 - 4, y0 + y), _tick_label(value), fill=INK, font=_font(11), anchor="rm")
        for series in panel.series:
            if series.band and not series.markers:
                _draw_band(area, series, x_axis, y_axis)
        for series in panel.series:
            _draw_series(plot, series, x_axis, y_axis)
    image.paste(area, (x0, y0))
    draw.rectangle((x0 - 1, y0 - 1, x1, y1), outline=FRAME)


def _draw_band(area: Image.Image, series: Series, x_axis: _Axis, y_axis: _Axis) -> None:
    """The band between the series' lows and highs, in its colour, translucent (bands overlap)."""
    xs = [x_axis.px(x) for x, _ in series.points]
    upper = [(x, y_axis.px(high)) for x, (_, high) in zip(xs, series.band, strict=True)]
    lower = [(x, y_axis.px(low)) for x, (low, _) in zip(xs, series.band, strict=True)]
    if len(upper) < 2:
        return
    layer = Image.new("RGBA", area.size, (0, 0, 0, 0))
    red, green, blue = ImageColor.getrgb(series.colour)[:3]
    ImageDraw.Draw(layer).polygon(upper + lower[::-1], fill=(red, green, blue, BAND_ALPHA))
    area.paste(layer, mask=layer)


def _draw_series(plot: ImageDraw.ImageDraw, series: Series, x_axis: _Axis, y_axis: _Axis) -> None:
    xy = [(x_axis.px(x), y_axis.px(y)) for x, y in series.points]
    for (x, _), (low, high) in zip(xy, series.band if series.markers else (), strict=False):
        plot.line([(x, y_axis.px(low)), (x, y_axis.px(high))], fill=series.colour, width=1)
    if series.markers:
        for x, y in xy:
            plot.ellipse((x - 2.5, y - 2.5, x + 2.5, y + 2.5), fill=series.colour)
    elif len(xy) > 1:
        plot.line(xy, fill=series.colour, width=1)


class _Axis:
    """Data values to pixels along one axis (log10 of them on a log axis)."""

    def __init__(
        self,
        values: list[float],
        log: bool,
        start_px: float,
        end_px: float,
        top: float | None = None,
    ) -> None:
        self.log = log
        shown = [self._scaled(v) for v in values]  # on a log axis, all > 0
        low, high = min(shown), max(shown)
        if top is not None:
            high = min(high, self._scaled(top))
        if high <= low:  # one value: a unit (a decade) around it
            low, high = low - 0.5, high + 0.5
        pad = (high - low) * 0.05
        self.low, self.high = low - pad, high + pad
        self.start_px, self.end_px = start_px, end_px

    def _scaled(self, value: float) -> float:
        return math.log10(value) if self.log else value

    def px(self, value: float) -> float:
        fraction = (self._scaled(value) - self.low) / (self.high - self.low)
        return self.start_px + fraction * (self.end_px - self.start_px)

    def ticks(self) -> list[float]:
        """Decades on a log axis spanning one or more; else round numbers, about 5."""
        if self.log and self.high - self.low >= 1:
            first, last = math.ceil(self.low), math.floor(self.high)
            step = max(1, math.ceil((last - first + 1) / 8))
            decades = [10.0**k for k in range(first - 1, last + 1, step)]
            if last - first >= 2:
                return decades[1:]
            # few decades: 1, 2 and 5 times each
            ticks = [m * d for d in decades for m in (1, 2, 5)]
            return [t for t in ticks if self.low <= math.log10(t) <= self.high]
        low, high = (10**self.low, 10**self.high) if self.log else (self.low, self.high)
        step = _round_step((high - low) / 5)
        first = math.ceil(low / step)
        return [k * step for k in range(first, math.floor(high / step) + 1)]


def _round_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least `raw`."""
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _tick_label(value: float) -> str:
    return f"{value:g}"


def _vertical_text(image: Image.Image, text: str, centre: tuple[int, int]) -> None:
    font = _font(12)
    width = int(font.getlength(text)) + 4
    label = Image.new("RGB", (width, 16), "white")
    ImageDraw.Draw(label).text((2, 8), text, fill=INK, font=font, anchor="lm")
    label = label.rotate(90, expand=True)
    image.paste(label, (centre[0] - label.width // 2, centre[1] - label.height // 2))


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)  # Pillow's own font: no font file needed
