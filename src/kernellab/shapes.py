"""Shape arithmetic of a 2-D cross-correlation, in plain Python: a config's sizes are checked
(kernellab.validation) before torch is imported.

Shapes are (height, width) pairs; padding is zeros on each side, as in `F.conv2d`.
"""

from __future__ import annotations

from collections.abc import Sequence

Pair = tuple[int, int]
IntOrPair = int | Sequence[int]


def pair(value: IntOrPair) -> Pair:
    """`3 -> (3, 3)`, `[1, 2] -> (1, 2)`."""
    if isinstance(value, int):
        return (value, value)
    height, width = value
    return (int(height), int(width))


def output_shape(
    input_hw: IntOrPair, kernel_hw: IntOrPair, padding: IntOrPair = 0, stride: IntOrPair = 1
) -> Pair:
    """The book's ⌊(n − k + 2p + s) / s⌋ per axis, with p zeros on each side."""
    return tuple(
        (n - k + 2 * p + s) // s
        for n, k, p, s in zip(
            pair(input_hw), pair(kernel_hw), pair(padding), pair(stride), strict=True
        )
    )
