"""The experiment's data: the input image X, the target kernel, and the target Y = corr2d(X, kernel)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from kernellab.ops import IntOrPair, Pair, conv2d_in_bands
from kernellab.registry import IMAGES, NAMED_KERNELS

__all__ = ["IMAGES", "NAMED_KERNELS", "Task", "input_image", "make_task", "target_kernel"]


@dataclass(frozen=True)
class Task:
    image: torch.Tensor  # X, (h, w)
    kernel: torch.Tensor  # the target kernel, embedded at the centre of the model's kernel size
    target: torch.Tensor  # Y = corr2d(X, kernel) with the model's padding and stride


def target_kernel(matrix: Sequence[Sequence[float]], orientation: str) -> torch.Tensor:
    """The target kernel as a tensor; `horizontal` transposes it."""
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


def photo(path: str, size: Sequence[int] | None = None) -> torch.Tensor:
    """A picture file (PNG, JPEG, anything Pillow reads) in grayscale, 0 black to 1 white;
    resized to (height, width) when `size` is given."""
    from PIL import Image

    with Image.open(path) as picture:
        gray = picture.convert("L")
        if size is not None:
            gray = gray.resize((size[1], size[0]), Image.Resampling.LANCZOS)
        X = torch.frombuffer(bytearray(gray.tobytes()), dtype=torch.uint8)
        return X.view(gray.height, gray.width).float() / 255


def photo_size(path: str) -> tuple[int, int] | str:
    """(height, width) of a picture file from its header, or why it can't be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            width, height = picture.size
    except FileNotFoundError:
        return "no such file"
    except IsADirectoryError:
        return "is a directory, not a picture"
    except UnidentifiedImageError:
        return "not a picture Pillow can read (empty, truncated or another format)"
    except OSError as error:
        return error.strerror or str(error)
    return (height, width) if height and width else "the picture is empty (0 pixels)"


def kernel_error(kernel: Sequence[float], target: Sequence[float]) -> float:
    """The Frobenius distance between a learned kernel and the target, both flattened alike."""
    return math.dist(kernel, target)


def embed_kernel(kernel: torch.Tensor, size: Pair) -> torch.Tensor:
    """Place `kernel` at the centre of a zero kernel of `size`; odd margins round toward top-left."""
    top = (size[0] - kernel.shape[0]) // 2
    left = (size[1] - kernel.shape[1]) // 2
    embedded = torch.zeros(size)
    embedded[top : top + kernel.shape[0], left : left + kernel.shape[1]] = kernel
    return embedded


def make_task(
    image: torch.Tensor,
    kernel: torch.Tensor,
    kernel_size: Pair,
    padding: IntOrPair,
    stride: IntOrPair,
) -> Task:
    """Y comes from X with the same padding and stride as the model, so any geometry is learnable.

    Computed with F.conv2d (which `corr2d` is tested against) on X's device, in bands of rows so
    that a photo of any size needs no more than its own bytes again.
    """
    kernel = embed_kernel(kernel, kernel_size).to(image.device)
    target = conv2d_in_bands(image, kernel, padding=padding, stride=stride)
    return Task(image=image, kernel=kernel, target=target)
