"""Plain gradient descent, `w -= lr * grad`, exactly as the notebook writes it.

It deliberately avoids `torch.optim`: constructing any `torch.optim` optimizer imports
`torch._dynamo` (about 2 s and 70 MB on torch 2.13), which would dominate a 20-step run.
Other optimizers (`optim=adam`) are `torch.optim` classes and pay that cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class GradientDescent:
    """The notebook's update, with the `step`/`zero_grad`/`state_dict` interface of `torch.optim`."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float) -> None:
        self.params = list(params)
        self.lr = lr

    @torch.no_grad()
    def step(self) -> None:
        torch._foreach_sub_(self.params, [p.grad for p in self.params], alpha=self.lr)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr = state["lr"]
