"""The book's `Conv2D` layer: one learnable kernel plus an optional scalar bias."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from kernellab.ops import IntOrPair, Pair, corr2d, corr2d_reference, pair

# (X (1, 1, h, w), weight (1, 1, kh, kw), bias or None, padding, stride) -> Y (1, 1, oh, ow)
Correlate = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, Pair, Pair], torch.Tensor]


def _conv2d(
    X: torch.Tensor, weight: torch.Tensor, bias, padding: Pair, stride: Pair
) -> torch.Tensor:
    return F.conv2d(X, weight, bias, stride, padding)


def _on_planes(correlate: Callable[..., torch.Tensor]) -> Correlate:
    """Run a 2-D (h, w) cross-correlation on the layer's (1, 1, h, w) tensors, then add the bias."""

    def correlate_planes(X, weight, bias, padding: Pair, stride: Pair) -> torch.Tensor:
        Y = correlate(X[0, 0], weight[0, 0], padding, stride)[None, None]
        return Y if bias is None else Y + bias

    return correlate_planes


# How the forward pass cross-correlates: all agree in values and gradients (tests check).
BACKENDS: dict[str, Correlate] = {
    "torch": _conv2d,  # F.conv2d: the fastest for small images, and on a GPU
    # the training step fuses forward, loss and gradients in one pass (kernellab.stencil, CPU);
    # the model's own forward (the prediction picture) is F.conv2d's
    "fused": _conv2d,
    "corr2d": _on_planes(corr2d),  # the project's vectorised op
    "loop": _on_planes(corr2d_reference),  # the notebook's Python loop
}
AUTO = "auto"  # `model.backend`'s default: fused for big images on the CPU, else torch


def resolve_backend(name: str, device: torch.device, output_pixels: int) -> str:
    """`auto` is `fused` on the CPU from MIN_FUSED_PIXELS output pixels on (it is 50x faster
    than F.conv2d at 512² and needs no image-sized temporaries), else `torch`."""
    from kernellab.stencil import MIN_FUSED_PIXELS, numba_installed

    if name != AUTO:
        return name
    big = device.type == "cpu" and output_pixels >= MIN_FUSED_PIXELS
    return "fused" if big and numba_installed() else "torch"


def _uniform(shape: tuple[int, ...], bound: float) -> torch.Tensor:
    return torch.empty(shape).uniform_(-bound, bound)


# `model.init`: name -> (shape, nn.Conv2d's bound 1/sqrt(kh*kw)) -> initial values, from the
# global RNG. Adding an init is one entry here.
INITS: dict[str, Callable[[tuple[int, ...], float], torch.Tensor]] = {
    "randn": lambda shape, bound: torch.randn(shape),  # the seed notebook's
    "zeros": lambda shape, bound: torch.zeros(shape),
    "uniform": _uniform,  # nn.Conv2d's default range
}


class Conv2D(nn.Module):
    """Y = corr2d(X, K) + b on a single image, as in the book.

    The kernel is stored as PyTorch stores convolution weights, (out=1, in=1, kh, kw), and images
    travel as (1, 1, h, w), so the default backend calls F.conv2d with no reshaping: each reshape
    would add an autograd node, about 15 µs a step on the book's tiny problem. `kernel` is the
    book's (kh, kw) view of the weight; `forward` also takes and returns plain (h, w) images.
    """

    def __init__(
        self,
        kernel_size: IntOrPair,
        padding: IntOrPair = 0,
        stride: IntOrPair = 1,
        bias: bool = True,
        init: str = "randn",
        backend: str = "torch",
    ) -> None:
        super().__init__()
        size = pair(kernel_size)
        self.padding, self.stride = pair(padding), pair(stride)
        self.backend, self.correlate = backend, BACKENDS[backend]
        # Weight first, then bias, from the global RNG: the notebook's order, so a seed reproduces it.
        bound = 1 / math.sqrt(size[0] * size[1])  # `uniform` uses nn.Conv2d's default range
        self.weight = nn.Parameter(INITS[init](size, bound).view(1, 1, *size))
        self.bias = nn.Parameter(INITS[init]((1,), bound)) if bias else None

    @property
    def kernel(self) -> torch.Tensor:
        """The learnable kernel K, (kh, kw)."""
        return self.weight[0, 0]

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if X.dim() == 2:  # a plain (h, w) image, as in the book
            return self.forward(X[None, None])[0, 0]
        return self.correlate(X, self.weight, self.bias, self.padding, self.stride)
