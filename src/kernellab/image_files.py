"""Picture files, opened guarded: whatever path a user gives, one line saying what is wrong, never
a traceback or a hang.

Only regular files are opened (a FIFO would block forever); Pillow's decompression-bomb limit and
the header's size are checked before any pixel is decoded; EXIF orientation is applied (a phone's
portrait JPEG is stored sideways); values are scaled to [0, 1] by the pixel type's range (8-bit by
255, 16-bit by 65535; floating-point pixels are taken as they are). Every error Pillow raises
becomes one line naming the file.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Sequence

import numpy as np

# Pixel modes Pillow decodes without converting: their numpy type's range maps to [0, 1]
_INTEGER_RANGES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I": 2**31 - 1}


NO_SUCH_FILE = "no such file"


class PictureError(ValueError):
    """A picture file that can't be used, and why (to be reported with the key that named it)."""


def picture_size(path: str) -> tuple[int, int]:
    """(height, width) from the file's header, without decoding a pixel."""
    with _open(path) as picture:
        width, height = picture.size
    if not (width and height):
        raise PictureError("the picture is empty (0 pixels)")
    return height, width


# Pillow's modes with one channel: `task.channels=rgb` takes a target stored so as gray
_ONE_CHANNEL_MODES = {"1", "L", "LA", "F", *_INTEGER_RANGES}


def picture_channels(path: str) -> int:
    """1 for a picture stored with one channel (gray, 16-bit, float), else 3 (colour)."""
    with _open(path) as picture:
        return 1 if picture.mode in _ONE_CHANNEL_MODES else 3


def photo_channels(path: str) -> int | str:
    """A picture file's channels as stored (1 gray, 3 colour), or why it can't be read."""
    try:
        return picture_channels(path)
    except PictureError as error:
        return str(error)


def photo_size(path: str) -> tuple[int, int] | str:
    """(height, width) of a picture file from its header, or why it can't be read."""
    try:
        return picture_size(path)
    except PictureError as error:
        return str(error)


def read_picture(path: str, size: Sequence[int] | None = None, rgb: bool = False) -> np.ndarray:
    """The picture in grayscale as float32 (height, width), 0 black to 1 white, or with `rgb`
    its red, green and blue as (3, height, width); resized to `size` (height, width) when
    given."""
    from PIL import Image, ImageOps

    with _open(path) as picture:
        try:
            picture.load()
            upright = ImageOps.exif_transpose(picture)
            planes = _colour_planes(upright) if rgb else [_grayscale(upright)]
        except Exception as error:  # Pillow's decoders raise OSError, ValueError, SyntaxError, ...
            raise PictureError(f"can't be decoded ({_reason(error)})") from None
    if size is not None:
        planes = [p.resize((size[1], size[0]), Image.Resampling.LANCZOS) for p in planes]
    pixels = np.stack([np.asarray(p, dtype=np.float32) for p in planes])
    pixels = pixels if rgb else pixels[0]
    if not np.isfinite(pixels).all():
        raise PictureError("holds pixels that are not finite numbers (NaN or infinity)")
    return pixels


def _grayscale(picture):  # -> PIL.Image.Image in mode F
    """Mode `F` (32-bit float) in [0, 1]: integer pixels divided by their type's largest value;
    colour and palette pictures through Pillow's ITU-R 601-2 luma (`convert("L")`)."""
    from PIL import Image

    if picture.mode == "F":
        return picture
    if picture.mode in _INTEGER_RANGES:
        values = np.asarray(picture).astype(np.float64) / _INTEGER_RANGES[picture.mode]
        return Image.fromarray(values.astype(np.float32), mode="F")
    gray = np.asarray(picture.convert("L"), dtype=np.float32) / 255
    return Image.fromarray(gray, mode="F")


def _colour_planes(picture) -> list:  # -> [PIL.Image.Image in mode F] * 3
    """Red, green and blue as mode `F` in [0, 1] (8 bits a channel, divided by 255), each
    resized on its own so no precision is lost to 8-bit resampling; a gray picture's plane
    three times."""
    from PIL import Image

    if picture.mode in _ONE_CHANNEL_MODES:
        return [_grayscale(picture)] * 3
    rgb = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255
    return [Image.fromarray(np.ascontiguousarray(rgb[..., c]), mode="F") for c in range(3)]


def _open(path: str):  # -> PIL.Image.Image, a context manager
    """Pillow's lazy open of a regular file, its header read and checked."""
    from PIL import Image, UnidentifiedImageError

    _require_regular_file(path)
    try:
        with warnings.catch_warnings():  # between 1x and 2x Pillow's limit it only warns
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as error:
        raise PictureError(
            f"its header declares more pixels than Pillow decodes safely ({_reason(error)})"
        ) from None
    except UnidentifiedImageError:
        raise PictureError(
            "not a picture Pillow can read (empty, truncated or another format)"
        ) from None
    except Exception as error:  # a header Pillow rejects: OSError, ValueError, SyntaxError, ...
        raise PictureError(f"can't be read ({_reason(error)})") from None


def _require_regular_file(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise PictureError(NO_SUCH_FILE) from None
    except OSError as error:
        raise PictureError(error.strerror or str(error)) from None
    if stat.S_ISDIR(mode):
        raise PictureError("is a directory, not a picture")
    if not stat.S_ISREG(mode):  # a FIFO, socket or device: opening it could block forever
        raise PictureError("is not a regular file (a pipe, socket or device)")
    if not os.access(path, os.R_OK):
        raise PictureError("permission denied")


def _reason(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
