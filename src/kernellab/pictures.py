"""Pictures of 2-D tensors for TensorBoard, meant to be read at a glance.

- `grayscale`: an input image as the book draws it, 0 black and 1 white.
- `heatmap`: a signed map (a kernel, the target Y) in blue (−) / white (0) / red (+) on a *fixed*
  scale given by the caller, with a colour bar labelled +scale / 0 / −scale: the same value has
  the same colour at every step of a run and in every job of a sweep.
- `comparison`: target | learned | difference (learned − target) side by side on one scale and
  one colour bar, so a difference that has shrunk turns white.

Each is a `Picture` at most MAX_WIDTH_PX wide (TensorBoard's image card is about 350 px wide and
scales wider pictures down, which blurs the labels): its layout and the colour of each cell.
Everything that doesn't change between snapshots (canvas, frames, titles, colour bar, labels) is
drawn once per layout and cached. A picture's PNG is then painting by numbers: the layout's pixels
as indices into a palette (compressed once per layout) and the picture's palette, the canvas's
colours then one colour per cell. Only the palette changes between snapshots, so encoding a
snapshot costs microseconds, not the ~0.1 ms of compressing its pixels (a sweep writes ~20
snapshot pictures a job). Pictures with more than 256 colours (large maps) are RGB PNGs.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

CELL_PX = 32  # a kernel element or pixel drawn as a 32x32 block, so a 1x2 kernel is visible
MAX_WIDTH_PX = 340  # the whole picture, colour bar and labels included
MAX_HEIGHT_PX = 340
GAP_PX = 6  # between panels, and between the panels and the colour bar
BAR_PX = 12  # the colour bar's width
MIN_BAR_PX = 40  # tall enough for its three labels beside a one-row kernel
BAR_STEPS = 101  # colours in the bar: smooth to the eye, and room in a palette for the cells
FONT_PX = 11
TITLE_PX = 14  # a line of panel titles above the panels
FRAME = 150  # grey frame around each panel, so white cells stay visible on a white page
BLACK = (0, 0, 0)


@dataclass(frozen=True)
class Picture:
    """A layout with its cells coloured: `colours[p]` is panel p's (h, w, 3) uint8 cells."""

    layout: _Layout
    colours: tuple[np.ndarray, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.layout.canvas.shape

    def pixels(self) -> np.ndarray:
        """The (H, W, 3) uint8 picture."""
        return self.layout.paint(self.colours)

    def png(self) -> bytes:
        numbered = self.layout.numbered
        if numbered is None:
            return png(self.pixels())
        palette = np.concatenate([numbered.palette, *(c.reshape(-1, 3) for c in self.colours)])
        return b"".join((numbered.head, _png_chunk(b"PLTE", palette.tobytes()), numbered.tail))


def grayscale(values: torch.Tensor) -> Picture:
    """An image in [0, 1] as gray levels: 0 black, 1 white (values outside are clipped)."""
    (shown,) = _fit([values[None]], reserved_px=0)
    layout = _layout((shown.shape[1:],), titles=(), scale=None)
    return Picture(layout, (np.repeat(_gray(shown[0])[..., None], 3, axis=2),))


def heatmap(values: torch.Tensor, scale: float) -> Picture:
    """A signed map in blue / white / red, full colour at ±`scale`, with its colour bar."""
    return heatmaps(values[None], scale)[0]


def heatmaps(values: torch.Tensor, scale: float) -> list[Picture]:
    """`heatmap` of each of the maps `values` (M, h, w), coloured in one pass: a group's
    snapshots are many maps of a few values, where numpy's cost is per call."""
    (shown,) = _fit([values], reserved_px=_bar_block_px(scale))
    layout = _layout((shown.shape[1:],), titles=(), scale=scale)
    return [Picture(layout, (colours,)) for colours in _diverging(shown, scale)]


COMPARISON_TITLES = ("target", "learned", "difference")


def comparison(target: torch.Tensor, learned: torch.Tensor, scale: float) -> Picture:
    """target | learned | learned − target, on one scale with one colour bar."""
    return comparisons(target[None], learned[None], scale)[0]


def comparisons(targets: torch.Tensor, learned: torch.Tensor, scale: float) -> list[Picture]:
    """`comparison` of each pair of maps (M, h, w), coloured in one pass (see `heatmaps`)."""
    targets, learned = targets.cpu(), learned.cpu()
    maps = _fit([targets, learned, learned - targets], reserved_px=_bar_block_px(scale))
    layout = _layout(tuple(m.shape[1:] for m in maps), titles=COMPARISON_TITLES, scale=scale)
    panels = _diverging_each(maps, scale)
    return [Picture(layout, colours) for colours in zip(*panels, strict=True)]


def grid(values: torch.Tensor) -> torch.Tensor:
    """A map as drawn: (h, w) as it is; channels tiled with a blank (NaN: white in a heat map,
    black in gray) line between maps: (c, h, w) side by side, (out, in, kh, kw) as out rows
    of in maps."""
    if values.dim() == 2:
        return values
    return grids(values[None] if values.dim() == 4 else values[None, None])[0]


def grids(values: torch.Tensor) -> torch.Tensor:
    """`grid` of each of M (out, in, kh, kw) kernels: (M, out·(kh+1)−1, in·(kw+1)−1)."""
    m, out, inp, kh, kw = values.shape
    padded = F.pad(values.float(), (0, 1, 0, 1), value=float("nan"))  # a blank row and column
    tiled = padded.permute(0, 1, 3, 2, 4).reshape(m, out * (kh + 1), inp * (kw + 1))
    return tiled[:, :-1, :-1]


def symmetric_scale(values: torch.Tensor) -> float:
    """The largest |value|, the scale a run's pictures of this kind keep; 1 for all zeros."""
    biggest = float(values.detach().abs().max()) if values.numel() else 0.0
    return biggest if biggest > 0 and np.isfinite(biggest) else 1.0


def png(picture: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 picture as PNG bytes (what a TensorBoard image summary holds).

    Written directly: rows unfiltered, zlib at level 1. Pillow's encoder tries a filter per row and
    takes 3-4x as long on these pictures, for a larger file; zlib's default level 6 takes 3x as
    long as level 1 for files about a quarter smaller.
    """
    return _png_head(picture, _RGB) + _png_tail(picture, level=1)


_RGB, _PALETTE = 2, 3  # PNG colour types


def _png_head(picture: np.ndarray, colour_type: int) -> bytes:
    """The PNG signature and header of an (H, W, ...) uint8 picture, 8 bits a sample."""
    height, width = picture.shape[:2]
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)


def _png_tail(picture: np.ndarray, level: int) -> bytes:
    """The pixels (rows unfiltered) and the end of a PNG."""
    height = picture.shape[0]
    rows = np.zeros((height, 1 + picture[0].size), dtype=np.uint8)  # each row: filter type 0
    rows[:, 1:] = picture.reshape(height, -1)
    pixels = _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
    return pixels + _png_chunk(b"IEND", b"")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# --- colours ---


def _diverging(values: np.ndarray, scale: float) -> np.ndarray:
    """(..., h, w) -> (..., h, w, 3) uint8: blue at -scale, white at 0, red at +scale, clipped
    beyond."""
    v = np.clip(values / scale, -1.0, 1.0)  # ±inf to ±1
    v[np.isnan(v)] = 0.0
    positive, negative = np.maximum(v, 0.0), np.maximum(-v, 0.0)
    rgb = np.empty((*v.shape, 3), dtype=v.dtype)
    rgb[..., 0] = 1.0 - negative
    rgb[..., 1] = 1.0 - positive - negative
    rgb[..., 2] = 1.0 - positive
    return np.rint(rgb * 255).astype(np.uint8)


def _diverging_each(maps: Sequence[np.ndarray], scale: float) -> list[np.ndarray]:
    """`_diverging` of each batch of maps (M, h, w), in one pass."""
    count = len(maps[0])
    rgb = _diverging(np.concatenate([m.reshape(count, -1) for m in maps], axis=1), scale)
    parts, start = [], 0
    for m in maps:
        size = m[0].size
        parts.append(rgb[:, start : start + size].reshape(*m.shape, 3))
        start += size
    return parts


def _gray(values: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(np.nan_to_num(values), 0.0, 1.0) * 255).astype(np.uint8)


# --- sizes ---


def _fit(maps: Sequence[torch.Tensor], reserved_px: int) -> list[np.ndarray]:
    """The panels' maps, each a batch (M, h, w), as float arrays small enough to fit side by side
    in a picture.

    A map too big to draw one cell per pixel is averaged down first, on its own device.
    """
    n = len(maps)
    room_w = MAX_WIDTH_PX - reserved_px - n * (2 + GAP_PX)  # frames and gaps
    room_h = MAX_HEIGHT_PX - TITLE_PX - 2
    h, w = maps[0].shape[1:]
    factor = min(1.0, room_w / (n * w), room_h / h)
    out = []
    for values in maps:
        values = values.detach().float()
        if factor < 1.0:
            size = (max(1, int(h * factor)), max(1, int(w * factor)))
            values = F.interpolate(values[:, None], size=size, mode="area")[:, 0]
        out.append(values.cpu().numpy())
    return out


def _cell_px(shapes: Sequence[tuple[int, int]], reserved_px: int) -> int:
    room_w = MAX_WIDTH_PX - reserved_px - len(shapes) * (2 + GAP_PX)
    room_h = MAX_HEIGHT_PX - TITLE_PX - 2
    widest = sum(w for _, w in shapes)
    tallest = max(h for h, _ in shapes)
    return max(1, min(CELL_PX, room_w // widest, room_h // tallest))


def _labels(scale: float) -> tuple[str, str, str]:
    return f"+{scale:.3g}", "0", f"-{scale:.3g}"


@functools.lru_cache(maxsize=64)  # a run keeps its scales: asked for at every snapshot
def _bar_block_px(scale: float | None) -> int:
    """Width of the colour bar, its frame and its labels (0 without a bar)."""
    if scale is None:
        return 0
    return GAP_PX + BAR_PX + 2 + 3 + max(int(_font().getlength(t)) for t in _labels(scale)) + 1


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=FONT_PX)  # Pillow's own font: no font file needed


# --- layout: everything but the cells, drawn once ---


@dataclass(frozen=True)
class _Numbered:
    """A layout as a palette PNG: everything but the palette, and the canvas's own colours."""

    head: bytes  # signature and header
    palette: np.ndarray  # (K, 3) uint8: the canvas's colours; each cell's colour follows
    tail: bytes  # the pixels as palette indices, compressed, and the end


@dataclass(frozen=True, eq=False)
class _Layout:
    canvas: np.ndarray  # (H, W, 3) uint8 with frames, titles and the colour bar; never written
    origins: tuple[tuple[int, int], ...]  # (y, x) of each panel's first cell
    shapes: tuple[tuple[int, int], ...]  # each panel's cells (h, w)
    cell: int

    def paint(self, colours: Sequence[np.ndarray]) -> np.ndarray:
        picture = self.canvas.copy()
        for (y, x), block in zip(self.origins, colours, strict=True):
            block = self._blown_up(block)
            picture[y : y + block.shape[0], x : x + block.shape[1]] = block
        return picture

    def _blown_up(self, cells: np.ndarray) -> np.ndarray:
        c = self.cell
        return cells.repeat(c, axis=0).repeat(c, axis=1) if c > 1 else cells

    @functools.cached_property  # on first use: large pictures never need it
    def numbered(self) -> _Numbered | None:
        """This layout painted by numbers, or None when it needs more than 256 colours."""
        palette, indices = _colours(self.canvas)
        cells = sum(h * w for h, w in self.shapes)
        if len(palette) + cells > 256:
            return None
        numbers = indices.reshape(self.canvas.shape[:2]).astype(np.uint8)
        first = len(palette)
        for (y, x), (h, w) in zip(self.origins, self.shapes, strict=True):
            block = self._blown_up(np.arange(first, first + h * w, dtype=np.uint8).reshape(h, w))
            numbers[y : y + block.shape[0], x : x + block.shape[1]] = block
            first += h * w
        # made once per layout: worth zlib's best level
        return _Numbered(_png_head(numbers, _PALETTE), palette, _png_tail(numbers, level=9))


def _colours(canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (K, 3) colours of an (H, W, 3) uint8 picture, sorted, and each pixel's index into them:
    `np.unique(pixels, axis=0, return_inverse=True)`, on each colour as one uint32 (0xRRGGBB
    sorts as the rows do). numpy's row-wise unique sorts the rows as opaque bytes: ~60 ms for a
    340-pixel-wide picture, paid at each layout's first picture (a run's start); this ~1 ms."""
    rgb = canvas.reshape(-1, 3).astype(np.uint32)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    values, indices = np.unique(packed, return_inverse=True)
    palette = np.stack([values >> 16, (values >> 8) & 0xFF, values & 0xFF], axis=1)
    return palette.astype(np.uint8), indices


@functools.lru_cache(maxsize=64)
def _layout(
    shapes: tuple[tuple[int, int], ...], titles: tuple[str, ...], scale: float | None
) -> _Layout:
    font = _font()
    reserved = _bar_block_px(scale)
    cell = _cell_px(shapes, reserved)
    framed = [(h * cell + 2, w * cell + 2) for h, w in shapes]
    slots = [
        max(fw, int(font.getlength(t)) + 2) if titles else fw
        for (_, fw), t in zip(framed, titles or [""] * len(shapes), strict=True)
    ]
    top = TITLE_PX if titles else 0
    body = max(fh for fh, _ in framed)
    if scale is not None:
        body = max(body, MIN_BAR_PX)
    width = sum(slots) + GAP_PX * (len(slots) - 1) + reserved
    canvas = np.full((top + body, width, 3), 255, dtype=np.uint8)

    origins, x = [], 0
    for (fh, fw), slot in zip(framed, slots, strict=True):
        left = x + (slot - fw) // 2
        _frame(canvas, top, left, fh, fw)
        origins.append((top + 1, left + 1))
        x += slot + GAP_PX
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    x = 0
    for title, slot in zip(titles, slots, strict=False):  # no titles: nothing to draw
        draw.text((x + (slot - font.getlength(title)) / 2, 0), title, fill=BLACK, font=font)
        x += slot + GAP_PX
    if scale is not None:
        bar_x = width - reserved + GAP_PX
        steps = np.linspace(scale, -scale, min(body - 2, BAR_STEPS))
        rows = np.linspace(0, len(steps) - 1, body - 2).round().astype(int)
        ramp = steps[rows][:, None].repeat(BAR_PX, axis=1)
        canvas = np.array(picture)
        _frame(canvas, top, bar_x, body, BAR_PX + 2)
        canvas[top + 1 : top + body - 1, bar_x + 1 : bar_x + 1 + BAR_PX] = _diverging(ramp, scale)
        picture = Image.fromarray(canvas)
        draw = ImageDraw.Draw(picture)
        text_x = bar_x + BAR_PX + 2 + 3
        plus, zero, minus = _labels(scale)
        draw.text((text_x, top - 1), plus, fill=BLACK, font=font)
        draw.text((text_x, top + body // 2 - FONT_PX // 2 - 1), zero, fill=BLACK, font=font)
        draw.text((text_x, top + body - FONT_PX - 1), minus, fill=BLACK, font=font)
    canvas = np.array(picture)
    canvas.setflags(write=False)
    return _Layout(canvas, tuple(origins), shapes, cell)


def _frame(canvas: np.ndarray, y: int, x: int, h: int, w: int) -> None:
    canvas[y, x : x + w] = canvas[y + h - 1, x : x + w] = FRAME
    canvas[y : y + h, x] = canvas[y : y + h, x + w - 1] = FRAME
