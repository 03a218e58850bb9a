"""The experiment's data: the input image X, the target kernel, and the target Y = corr2d(X, kernel)."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kernellab.errors import ConfigError
from kernellab.image_files import PictureError, picture_channels, read_picture
from kernellab.ops import conv2d_in_bands
from kernellab.registry import IMAGES, NAMED_KERNELS
from kernellab.shapes import IntOrPair, Pair

__all__ = [
    "IMAGES",
    "NAMED_KERNELS",
    "Task",
    "input_image",
    "make_task",
    "target_image",
    "target_kernel",
]


@dataclass(frozen=True)
class Task:
    image: torch.Tensor  # X, (h, w); with channels (in, h, w)
    # the target kernel, embedded at the centre of the model's kernel size; None: not known (a
    # target image without task.target_kernel); with channels (out, in, kh, kw)
    kernel: torch.Tensor | None
    # Y = corr2d(X, kernel) with the model's padding and stride, or a file; (out, oh, ow) with
    # channels
    target: torch.Tensor


def target_kernel(matrix: Sequence[Any] | None, orientation: str) -> torch.Tensor | None:
    """The target kernel as a tensor, (kh, kw) or (out, in, kh, kw) (None: none); `horizontal`
    transposes each of its maps."""
    if matrix is None:
        return None
    K = torch.tensor(matrix, dtype=torch.float32)
    return _oriented(K, orientation)


def _oriented(X: torch.Tensor, orientation: str) -> torch.Tensor:
    """`horizontal`: each (h, w) map of X transposed (the book's `X.t()`)."""
    return X.transpose(-2, -1).contiguous() if orientation == "horizontal" else X


def input_image(
    height: int,
    width: int,
    stripe: Sequence[int],
    image: str,
    orientation: str,
    resize: Sequence[int] | None = None,
    channels: str = "gray",
) -> torch.Tensor:
    """`task.image`: a name in IMAGES drawn at (height, width), or a photo's path (its own size,
    or `resize`; `channels=rgb`: (3, h, w)); `horizontal` is its transpose."""
    if image in IMAGES:
        X = IMAGES[image](height, width, stripe)
    else:
        X = photo(image, resize, rgb=channels == "rgb")
    return _oriented(X, orientation)


def target_image(path: str | None, orientation: str, channels: str = "gray") -> torch.Tensor | None:
    """`task.target_image`: the target Y from a picture file, at its own size (None: none),
    (h, w); with `channels=rgb` (c, h, w), c as the file stores it; `horizontal` transposes it
    with the image."""
    if path is None:
        return None
    rgb = channels == "rgb" and picture_channels(path) == 3
    Y = photo(path, key="task.target_image", rgb=rgb)
    return _oriented(Y, orientation)


def photo(
    path: str, size: Sequence[int] | None = None, key: str = "task.image", rgb: bool = False
) -> torch.Tensor:
    """A picture file (PNG, JPEG, TIFF, anything Pillow reads) in grayscale, 0 black to 1 white,
    or with `rgb` its (3, h, w) colour channels (image_files.read_picture); resized to (height,
    width) when `size` is given. A file that can't be used raises ConfigError naming `key`. The
    last few decoded are kept: a check and the run that follows it, or a group's jobs, decode a
    photo once."""
    try:
        info = os.stat(path)
        resized = tuple(size) if size else None
        pixels = _decoded(path, info.st_mtime_ns, info.st_size, resized, rgb)
    except (OSError, PictureError) as error:
        raise ConfigError(
            key,
            path,
            str(error) if isinstance(error, PictureError) else error.strerror or str(error),
        ) from None
    return torch.from_numpy(pixels.copy())  # the cache's array stays as decoded


@functools.lru_cache(maxsize=4)
def _decoded(
    path: str, mtime_ns: int, size_bytes: int, size: tuple[int, ...] | None, rgb: bool
) -> np.ndarray:
    """The file as `read_picture` decodes it; keyed by its modification time and size too, so a
    file changed on disk is read again. Read-only: every caller shares the array."""
    pixels = read_picture(path, size, rgb)
    pixels.setflags(write=False)
    return pixels


def kernel_error(kernel: Sequence[float], target: Sequence[float] | None) -> float | None:
    """The Frobenius distance between a learned kernel and the target, both flattened alike;
    None without a target (a target image with no ground truth)."""
    return None if target is None else math.dist(kernel, target)


def embed_kernel(kernel: torch.Tensor, size: Pair) -> torch.Tensor:
    """Place `kernel` (each of its maps, with channels) at the centre of a zero kernel of
    `size`; odd margins round toward top-left."""
    (k_h, k_w), leading = kernel.shape[-2:], kernel.shape[:-2]
    top, left = (size[0] - k_h) // 2, (size[1] - k_w) // 2
    embedded = torch.zeros(*leading, *size)
    embedded[..., top : top + k_h, left : left + k_w] = kernel
    return embedded


def make_task(
    image: torch.Tensor,
    kernel: torch.Tensor | None,
    kernel_size: Pair,
    padding: IntOrPair,
    stride: IntOrPair,
    target: torch.Tensor | None = None,
) -> Task:
    """Y comes from X with the same padding and stride as the model, so any geometry is learnable;
    a given `target` (a target image, its size checked by validation) is Y itself, and `kernel`
    then only the ground truth to measure the learned kernel against (None: none).

    Computed with F.conv2d (which `corr2d` is tested against) on X's device, in bands of rows so
    that a photo of any size needs no more than its own bytes again.
    """
    if kernel is not None:
        kernel = embed_kernel(kernel, kernel_size).to(image.device)
    if target is None:
        assert kernel is not None, "a task needs a target kernel or a target image"
        target = conv2d_in_bands(image, kernel, padding=padding, stride=stride)
    return Task(image=image, kernel=kernel, target=target.to(image.device))
