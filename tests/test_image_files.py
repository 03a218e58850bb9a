"""kernellab.image_files on real files of every awkward kind: each is read right or refused in one
line, and nothing blocks (a FIFO) or decodes a bomb."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kernellab.image_files import PictureError, picture_channels, picture_size, read_picture

RNG = np.random.default_rng(7)
PIXELS = (RNG.random((32, 48)) * 255).astype(np.uint8)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def header_only_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height and which holds no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    path.write_bytes(signature + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b""))
    return path


def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def test_an_8_bit_png_is_scaled_by_255(tmp_path: Path) -> None:
    Image.fromarray(PIXELS).save(tmp_path / "a.png")
    assert picture_size(str(tmp_path / "a.png")) == (32, 48)
    np.testing.assert_array_equal(read_picture(str(tmp_path / "a.png")), PIXELS / np.float32(255))


def test_a_16_bit_png_is_scaled_by_65535(tmp_path: Path) -> None:
    values = (RNG.random((20, 30)) * 65535).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    read = read_picture(str(tmp_path / "g16.png"))
    np.testing.assert_allclose(read, values / 65535, rtol=1e-6)
    assert read.max() > 0.9  # not clipped at 255 / 255 as an 8-bit reading would be


def test_a_float_tiff_is_taken_as_it_is_and_nan_is_refused(tmp_path: Path) -> None:
    values = RNG.random((10, 12)).astype(np.float32)
    Image.fromarray(values).save(tmp_path / "f.tif")
    np.testing.assert_array_equal(read_picture(str(tmp_path / "f.tif")), values)
    Image.fromarray(np.full((4, 4), np.nan, np.float32)).save(tmp_path / "nan.tif")
    with pytest.raises(PictureError, match="not finite"):
        read_picture(str(tmp_path / "nan.tif"))


def test_an_exif_rotated_jpeg_is_read_upright(tmp_path: Path) -> None:
    """Orientation 6: the stored pixels are to be turned 90° clockwise to be seen upright."""
    picture = Image.fromarray(PIXELS)
    exif = picture.getexif()
    exif[0x0112] = 6
    picture.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=100)
    read = read_picture(str(tmp_path / "r.jpg"))
    assert read.shape == (48, 32)
    upright = np.rot90(PIXELS, k=-1) / 255  # clockwise
    assert np.abs(read - upright).mean() < 0.02  # JPEG's loss only


def test_a_colour_picture_becomes_itu_r_601_luma(tmp_path: Path) -> None:
    rgb = (RNG.random((8, 9, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    luma = rgb @ np.array([0.299, 0.587, 0.114])  # Pillow's documented L = R*299/1000 + ...
    np.testing.assert_allclose(read_picture(str(tmp_path / "c.png")) * 255, luma, atol=0.51)


def test_resize_gives_the_size_asked(tmp_path: Path) -> None:
    Image.fromarray(PIXELS).save(tmp_path / "a.png")
    assert read_picture(str(tmp_path / "a.png"), (10, 7)).shape == (10, 7)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: d / "missing.png", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: empty_file(d / "empty.png"), "not a picture"),
        (lambda d: header_only_png(d / "bomb.png", 100_000, 100_000), "more pixels than Pillow"),
        (lambda d: header_only_png(d / "line.png", 200_000_000, 1), "more pixels than Pillow"),
    ],
)
def test_unusable_files_are_refused_at_the_header(tmp_path: Path, make, says: str) -> None:
    with pytest.raises(PictureError, match=says):
        picture_size(str(make(tmp_path)))


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(PictureError, match="not a regular file"):
        picture_size(str(tmp_path / "pipe.png"))


@pytest.mark.parametrize("cut", ["half", "no pixels"])
def test_a_file_whose_pixels_are_missing_is_refused_when_decoded(tmp_path: Path, cut: str) -> None:
    path = tmp_path / "cut.png"
    if cut == "half":
        Image.fromarray(PIXELS).save(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        header_only_png(path, 48, 32)
    assert picture_size(str(path)) == (32, 48)  # the header alone is fine
    with pytest.raises(PictureError, match="can't be decoded"):
        read_picture(str(path))


def test_a_path_with_spaces_quotes_equals_and_accents_is_read(tmp_path: Path) -> None:
    path = tmp_path / 'my photo=1 "q" é.png'
    Image.fromarray(PIXELS).save(path)
    assert read_picture(str(path)).shape == (32, 48)


def test_rgb_keeps_the_three_colour_channels_each_scaled_by_255(tmp_path: Path) -> None:
    rgb = (RNG.random((8, 9, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    read = read_picture(str(tmp_path / "c.png"), rgb=True)
    np.testing.assert_array_equal(read, rgb.transpose(2, 0, 1) / np.float32(255))
    assert picture_channels(str(tmp_path / "c.png")) == 3
    assert read_picture(str(tmp_path / "c.png"), size=(4, 5), rgb=True).shape == (3, 4, 5)


def test_a_gray_picture_read_as_rgb_is_its_plane_three_times(tmp_path: Path) -> None:
    Image.fromarray(PIXELS).save(tmp_path / "g.png")
    assert picture_channels(str(tmp_path / "g.png")) == 1
    read = read_picture(str(tmp_path / "g.png"), rgb=True)
    np.testing.assert_array_equal(read, np.stack([PIXELS / np.float32(255)] * 3))
