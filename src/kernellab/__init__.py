"""kernellab: learn convolution kernels by gradient descent, configured with Hydra, logged to TensorBoard."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`kernellab.study`, loaded on first use: `import kernellab` stays light (no torch)."""
    if name == "study":
        from kernellab.notebook import study

        return study
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
