"""What a config key may name, one entry each: pictures, named target kernels, initialisations.

Adding a picture, a named kernel or an initialisation is one entry here (README "Extending").
This module is light on purpose: the config schema reads the names from it for its help texts,
and `python train.py --help` must not import torch. An entry's function imports torch when it
first runs (once a job: nothing on the step's path).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


def _gaussian(size: int, sigma: float) -> list[list[float]]:
    """exp(-(x² + y²) / 2σ²) on the size×size grid centred at 0, normalised to sum 1."""
    x = [i - (size - 1) / 2 for i in range(size)]
    g = [[math.exp(-(a * a + b * b) / (2 * sigma * sigma)) for b in x] for a in x]
    total = sum(map(sum, g))
    return [[v / total for v in row] for row in g]


# `task.target_kernel`: the classic edge detectors and filters users ask for by name; any shape.
NAMED_KERNELS: dict[str, list[list[float]]] = {
    "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    # the book's exercise: a second derivative needs 3 taps (a derivative of degree d, d + 1)
    "second_derivative_x": [[1, -2, 1]],
    "second_derivative_y": [[1], [-2], [1]],
    "box_blur": [[1 / 9] * 3] * 3,
    "gaussian_5x5": _gaussian(5, 1.0),  # σ = 1: scripts/make_blur_pair.py's blur
}


def _stripes(height: int, width: int, stripe: Sequence[int]) -> Any:
    """The book's picture: ones, with columns [a, b) set to 0 (`X[:, 2:6] = 0`)."""
    import torch

    X = torch.ones(height, width)
    X[:, stripe[0] : stripe[1]] = 0
    return X


def _random(height: int, width: int, stripe: Sequence[int]) -> Any:
    """Uniform noise in [0, 1) from the global RNG (seeded by `seed`)."""
    import torch

    return torch.rand(height, width)


def _diagonal(height: int, width: int, stripe: Sequence[int]) -> Any:
    """The book's exercise: an image with a diagonal edge, ones on and below the diagonal
    (X[i, j] = 1 where j <= i). `[[-1, 1]]` finds it as -1 on the diagonal, its transpose as +1
    just above it: both detectors see a diagonal edge, which has both directions."""
    import torch

    return torch.ones(height, width).tril()


# `task.image`: name -> (height, width, stripe) -> X, a float32 (height, width) tensor.
IMAGES: dict[str, Callable[[int, int, Sequence[int]], Any]] = {
    "stripes": _stripes,
    "random": _random,
    "diagonal": _diagonal,
}


def _randn(shape: tuple[int, ...], bound: float) -> Any:
    import torch

    return torch.randn(shape)


def _zeros(shape: tuple[int, ...], bound: float) -> Any:
    import torch

    return torch.zeros(shape)


def _uniform(shape: tuple[int, ...], bound: float) -> Any:
    import torch

    return torch.empty(shape).uniform_(-bound, bound)


# `model.init`: name -> (shape, nn.Conv2d's bound 1/sqrt(kh*kw)) -> initial values, drawn from the
# global RNG.
INITS: dict[str, Callable[[tuple[int, ...], float], Any]] = {
    "randn": _randn,  # the seed notebook's
    "zeros": _zeros,
    "uniform": _uniform,  # nn.Conv2d's default range
}
