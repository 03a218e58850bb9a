"""The optimizers: plain gradient descent, and the class and arguments the config's `optim` names.

`GradientDescent` is `w -= lr * grad`, exactly as the notebook writes it.

It deliberately avoids `torch.optim`: constructing any `torch.optim` optimizer imports
`torch._dynamo` (about 2 s and 70 MB on torch 2.13), which would dominate a 20-step run.
Other optimizers (`optim=adam`) are `torch.optim` classes and pay that cost.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from typing import Any

import torch
import torch.optim  # loaded with torch anyway: constructing an optimizer is what costs
from omegaconf import OmegaConf

from kernellab.errors import require
from kernellab.resolved import AnyConfig, Resolved

FLOAT32_MAX = 3.4028234663852886e38


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


def optimizer_class(optim: AnyConfig) -> type:
    """The class `optim._target_` names; ConfigError unless it is an optimizer."""
    target = optim.get("_target_")
    module, _, name = str(target).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except (ImportError, ValueError):  # no such module, or an empty name
        cls = None

    require(
        isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer | GradientDescent),
        "optim._target_",
        target,
        "must name an optimizer class, e.g. torch.optim.SGD (see conf/optim/)",
    )
    return cls


def optimizer_arguments(optim: AnyConfig) -> dict[str, Any]:
    """What the optimizer class is constructed with, besides the parameters."""
    plain = optim.plain if isinstance(optim, Resolved) else OmegaConf.to_container(optim)
    return {k: v for k, v in plain.items() if not k.startswith("_")}


def validate_optimizer(optim: AnyConfig) -> type:
    cls = optimizer_class(optim)
    accepted = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    for key, value in optimizer_arguments(optim).items():
        require(
            takes_any or (key in accepted and key not in ("self", "params")),
            f"optim.{key}",
            value,
            f"is not an argument of {cls.__name__}; it takes "
            + ", ".join(k for k in accepted if k not in ("self", "params")),
        )
    lr = optim.get("lr")
    require(
        isinstance(lr, int | float) and 0 < lr <= FLOAT32_MAX,
        "optim.lr",
        lr,
        f"must be > 0 and at most float32's max ({FLOAT32_MAX:.4g})",
    )
    return cls
