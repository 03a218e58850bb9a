"""The book's `Conv2D` layer: one learnable kernel plus an optional scalar bias.

How it cross-correlates is its backend's (kernellab.backends); how it starts, its init's
(kernellab.registry.INITS).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from kernellab.backends import BACKENDS
from kernellab.registry import INITS
from kernellab.shapes import IntOrPair, pair


class Conv2D(nn.Module):
    """Y = corr2d(X, K) + b on a single image, as in the book; with `channels` (out, in) other
    than (1, 1), the book's multi-channel layer (one bias per output channel).

    The kernel is stored as PyTorch stores convolution weights, (out, in, kh, kw), and images
    travel as (1, in, h, w), so the default backend calls F.conv2d with no reshaping: each reshape
    would add an autograd node, about 15 µs a step on the book's tiny problem. `kernel` is the
    book's (kh, kw) view of a one-channel weight (the whole weight with channels); `forward`
    also takes and returns plain (h, w) images, or (in, h, w) ones.
    """

    def __init__(
        self,
        kernel_size: IntOrPair,
        padding: IntOrPair = 0,
        stride: IntOrPair = 1,
        bias: bool = True,
        init: str = "randn",
        backend: str = "torch",
        channels: tuple[int, int] = (1, 1),
    ) -> None:
        super().__init__()
        size = pair(kernel_size)
        (out, inp), self.channels = channels, channels
        self.padding, self.stride = pair(padding), pair(stride)
        self.backend, self.correlate = backend, BACKENDS[backend].forward()
        # Weight first, then bias, from the global RNG: the notebook's order, so a seed reproduces it.
        bound = 1 / math.sqrt(inp * size[0] * size[1])  # `uniform` uses nn.Conv2d's default range
        shape = size if channels == (1, 1) else (out, inp, *size)  # one channel: as the notebook
        self.weight = nn.Parameter(INITS[init](shape, bound).view(out, inp, *size))
        self.bias = nn.Parameter(INITS[init]((out,), bound)) if bias else None

    @property
    def kernel(self) -> Tensor:
        """The learnable kernel K, (kh, kw); with channels the weight, (out, in, kh, kw)."""
        return self.weight[0, 0] if self.channels == (1, 1) else self.weight

    def forward(self, X: Tensor) -> Tensor:
        if X.dim() == 2:  # a plain (h, w) image, as in the book
            return self.forward(X[None, None])[0, 0]
        if X.dim() == 3:  # a plain (in, h, w) image
            return self.forward(X[None])[0]
        return self.correlate(X, self.weight, self.bias, self.padding, self.stride)
