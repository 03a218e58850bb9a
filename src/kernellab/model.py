"""The book's `Conv2D` layer: one learnable kernel plus an optional scalar bias."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from kernellab.ops import IntOrPair, Pair, corr2d, corr2d_reference, pair

Correlate = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, Pair, Pair], torch.Tensor]


def _conv2d(X: torch.Tensor, K: torch.Tensor, bias, padding: Pair, stride: Pair) -> torch.Tensor:
    """F.conv2d on the (1, 1, h, w) views it expects, bias fused: the fewest autograd nodes."""
    Y = F.conv2d(X.view(1, 1, *X.shape), K.view(1, 1, *K.shape), bias, stride, padding)
    return Y.view(Y.shape[2:])


def _plus_bias(correlate: Callable[..., torch.Tensor]) -> Correlate:
    def correlate_plus_bias(X, K, bias, padding: Pair, stride: Pair) -> torch.Tensor:
        Y = correlate(X, K, padding, stride)
        return Y if bias is None else Y + bias

    return correlate_plus_bias


# How the forward pass cross-correlates: all three agree in values and gradients (tests check).
BACKENDS: dict[str, Correlate] = {
    "torch": _conv2d,  # F.conv2d: the fastest
    "corr2d": _plus_bias(corr2d),  # the project's vectorised op
    "loop": _plus_bias(corr2d_reference),  # the notebook's Python loop
}
INITS = ("randn", "zeros", "uniform")


class Conv2D(nn.Module):
    """Y = corr2d(X, weight) + bias on a single (h, w) image, as in the book."""

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
        self.correlate = BACKENDS[backend]
        # Weight first, then bias, from the global RNG: the notebook's order, so a seed reproduces it.
        bound = 1 / math.sqrt(size[0] * size[1])  # `uniform` uses nn.Conv2d's default range
        self.weight = nn.Parameter(_initial(init, size, bound))
        self.bias = nn.Parameter(_initial(init, (1,), bound)) if bias else None

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.correlate(X, self.weight, self.bias, self.padding, self.stride)


def _initial(init: str, shape: tuple[int, ...], bound: float) -> torch.Tensor:
    if init == "randn":
        return torch.randn(shape)
    if init == "zeros":
        return torch.zeros(shape)
    return torch.empty(shape).uniform_(-bound, bound)
