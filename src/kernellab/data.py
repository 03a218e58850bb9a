"""The experiment's data: the input image X, the target kernel, and the target Y = corr2d(X, kernel)."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kernellab.errors import ConfigError
from kernellab.image_files import PictureError, picture_size, read_picture
from kernellab.ops import IntOrPair, Pair, conv2d_in_bands
from kernellab.registry import IMAGES, NAMED_KERNELS

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
    image: torch.Tensor  # X, (h, w)
    # the target kernel, embedded at the centre of the model's kernel size; None: not known (a
    # target image without task.target_kernel)
    kernel: torch.Tensor | None
    target: torch.Tensor  # Y = corr2d(X, kernel) with the model's padding and stride, or a file


def target_kernel(
    matrix: Sequence[Sequence[float]] | None, orientation: str
) -> torch.Tensor | None:
    """The target kernel as a tensor (None: none); `horizontal` transposes it."""
    if matrix is None:
        return None
    K = torch.tensor(matrix, dtype=torch.float32)
    return K.t().contiguous() if orientation == "horizontal" else K


def input_image(
    height: int,
    width: int,
    stripe: Sequence[int],
    image: str,
    orientation: str,
    resize: Sequence[int] | None = None,
) -> torch.Tensor:
    """`task.image`: a name in IMAGES drawn at (height, width), or a photo's path (its own size,
    or `resize`); `horizontal` is its transpose."""
    X = IMAGES[image](height, width, stripe) if image in IMAGES else photo(image, resize)
    return X.t().contiguous() if orientation == "horizontal" else X


def target_image(path: str | None, orientation: str) -> torch.Tensor | None:
    """`task.target_image`: the target Y from a picture file, at its own size (None: none);
    `horizontal` transposes it with the image."""
    if path is None:
        return None
    Y = photo(path, key="task.target_image")
    return Y.t().contiguous() if orientation == "horizontal" else Y


def photo(path: str, size: Sequence[int] | None = None, key: str = "task.image") -> torch.Tensor:
    """A picture file (PNG, JPEG, TIFF, anything Pillow reads) in grayscale, 0 black to 1 white
    (image_files.read_picture); resized to (height, width) when `size` is given. A file that
    can't be used raises ConfigError naming `key`. The last few decoded are kept: a check and the
    run that follows it, or a group's jobs, decode a photo once."""
    try:
        info = os.stat(path)
        pixels = _decoded(path, info.st_mtime_ns, info.st_size, tuple(size) if size else None)
    except (OSError, PictureError) as error:
        raise ConfigError(
            key,
            path,
            str(error) if isinstance(error, PictureError) else error.strerror or str(error),
        ) from None
    return torch.from_numpy(pixels.copy())  # the cache's array stays as decoded


@functools.lru_cache(maxsize=4)
def _decoded(path: str, mtime_ns: int, size_bytes: int, size: tuple[int, ...] | None) -> np.ndarray:
    """The file as `read_picture` decodes it; keyed by its modification time and size too, so a
    file changed on disk is read again. Read-only: every caller shares the array."""
    pixels = read_picture(path, size)
    pixels.setflags(write=False)
    return pixels


def photo_size(path: str) -> tuple[int, int] | str:
    """(height, width) of a picture file from its header, or why it can't be read."""
    try:
        return picture_size(path)
    except PictureError as error:
        return str(error)


def kernel_error(kernel: Sequence[float], target: Sequence[float] | None) -> float | None:
    """The Frobenius distance between a learned kernel and the target, both flattened alike;
    None without a target (a target image with no ground truth)."""
    return None if target is None else math.dist(kernel, target)


def embed_kernel(kernel: torch.Tensor, size: Pair) -> torch.Tensor:
    """Place `kernel` at the centre of a zero kernel of `size`; odd margins round toward top-left."""
    top = (size[0] - kernel.shape[0]) // 2
    left = (size[1] - kernel.shape[1]) // 2
    embedded = torch.zeros(size)
    embedded[top : top + kernel.shape[0], left : left + kernel.shape[1]] = kernel
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
