"""The optimizers: plain gradient descent, and the class and arguments the config's `optim` names.

`GradientDescent` is `w -= lr * grad`, exactly as the notebook writes it.

It deliberately avoids `torch.optim`: constructing any `torch.optim` optimizer imports
`torch._dynamo` (about 2 s and 70 MB on torch 2.13), which would dominate a 20-step run.
Other optimizers (`optim=adam`) are `torch.optim` classes and pay that cost.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.optim  # loaded with torch anyway: constructing an optimizer is what costs
from omegaconf import OmegaConf

from kernellab.errors import ConfigError, require, show
from kernellab.resolved import AnyConfig, Resolved
from kernellab.validation import FLOAT32_MAX


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
    cls = None
    if module and not module.startswith("."):  # a relative name (`..`) has no package to be in
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except Exception:  # no such module, an empty name, a module that fails to import
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
    """The optimizer class, its arguments named and typed as its signature says; the values
    themselves are tried by `probe_optimizer` on the run's parameter shapes."""
    cls = optimizer_class(optim)
    own, takes_any = _signature(cls)
    arguments = optimizer_arguments(optim)
    for key, value in arguments.items():
        require(
            takes_any or key in own,
            f"optim.{key}",
            value,
            f"is not an argument of {cls.__name__}; it takes " + ", ".join(own),
        )
        if key in own:
            _require_type(cls, own[key], value)
    missing = [k for k, p in own.items() if p.default is inspect.Parameter.empty]
    missing = [k for k in missing if k not in arguments]
    require(
        not missing,
        "optim._target_",
        optim.get("_target_"),
        f"{cls.__name__} needs " + ", ".join(f"optim.{k}" for k in missing),
    )
    lr = optim.get("lr")
    require(
        _is_number(lr) and 0 < lr <= FLOAT32_MAX,
        "optim.lr",
        lr,
        f"must be a number > 0 and at most float32's max ({FLOAT32_MAX:.4g})",
    )
    refusal = _step_refusal(cls)
    if refusal is not None:
        raise ConfigError("optim._target_", optim.get("_target_"), refusal)
    return cls


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@functools.lru_cache(maxsize=64)
def _signature(cls: type) -> tuple[dict[str, inspect.Parameter], bool]:
    """The arguments a class takes besides `params`, and whether it takes any keyword (read
    once a class: a sweep checks every job)."""
    try:  # a module with `from __future__ import annotations` has them as strings
        accepted = inspect.signature(cls.__init__, eval_str=True).parameters
    except Exception:  # a name its module can't resolve: read them as written
        accepted = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    own = {k: p for k, p in accepted.items() if k not in ("self", "params") and p.kind in _NAMED}
    return own, takes_any


def _require_type(cls: type, parameter: inspect.Parameter, value: Any) -> None:
    """`value` has the type the class's signature gives `parameter` (its annotation, else its
    default's type): a bool only a boolean, a float a finite number (not a bool), a tuple a list
    of that length of such; what the signature doesn't say is left to the probe."""
    kind = parameter.annotation
    if kind is inspect.Parameter.empty:
        kind = _type_of(parameter.default)
    if not _fits(kind, value):
        raise ConfigError(
            f"optim.{parameter.name}",
            value,
            f"must be {_describe(kind)} ({cls.__name__}'s {parameter.name})",
        )


def _type_of(default: Any) -> Any:
    if default is inspect.Parameter.empty or default is None:
        return Any
    if isinstance(default, tuple):
        return tuple[tuple(_type_of(v) for v in default)]  # type: ignore[misc]
    return type(default)


def _alternatives(kind: Any) -> tuple[Any, ...]:
    """The members of a union (`float | None`, `Optional[bool]`), or the type alone."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return typing.get_args(kind)
    return (kind,)


def _fits(kind: Any, value: Any) -> bool:
    for alternative in _alternatives(kind):
        origin = typing.get_origin(alternative)
        if alternative is Any or alternative is inspect.Parameter.empty:
            return True
        if alternative is type(None) and value is None:
            return True
        if alternative is bool and isinstance(value, bool):
            return True
        if alternative is float and _is_number(value) and _finite(value):
            return True
        if alternative is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if alternative is str and isinstance(value, str):
            return True
        if origin is tuple and isinstance(value, list | tuple):
            items = typing.get_args(alternative)
            if len(items) == 2 and items[1] is Ellipsis:
                if all(_fits(items[0], v) for v in value):
                    return True
            elif len(value) == len(items) and all(map(_fits, items, value)):
                return True
        if origin is not tuple and alternative not in (*_READ, torch.Tensor, type(None)):
            return True  # a type this doesn't read (a dict, a callable): the probe decides
    return False


_READ = (bool, float, int, str, tuple)  # a tensor can't come from a config: never its type


def _describe(kind: Any) -> str:
    words = []
    for alternative in _alternatives(kind):
        if alternative is type(None):
            words.append("null")
        elif alternative is bool:
            words.append("true or false")
        elif alternative is float:
            words.append("a finite number")
        elif alternative is int:
            words.append("an int")
        elif alternative is str:
            words.append("a string")
        elif typing.get_origin(alternative) is tuple:
            items = typing.get_args(alternative)
            if len(items) == 2 and items[1] is Ellipsis:
                words.append(f"a list of {_describe(items[0])}")
            elif len(set(items)) == 1:
                words.append(f"a list of {len(items)} values, each {_describe(items[0])}")
            else:
                words.append(f"a list [{', '.join(_describe(i) for i in items)}]")
        elif alternative is not torch.Tensor:
            words.append(getattr(alternative, "__name__", str(alternative)))
    return " or ".join(dict.fromkeys(words)) or "a value its class takes"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(number: float) -> bool:
    return isinstance(number, int) or math.isfinite(number)  # an int of any size is finite


@functools.lru_cache(maxsize=64)
def _step_refusal(cls: type) -> str | None:
    """kernellab's loop calls `optimizer.step()`: why a class can't train this way (LBFGS needs a
    closure, SparseAdam sparse gradients), by name; None if it can."""
    step = inspect.signature(cls.step).parameters.get("closure")
    if step is not None and step.default is inspect.Parameter.empty:
        return (
            f"{cls.__name__} steps with a closure that re-evaluates the loss, and kernellab's loop"
            " takes one step per gradient: use another optimizer (e.g. torch.optim.Adam)"
        )
    if issubclass(cls, torch.optim.SparseAdam):
        return f"{cls.__name__} needs sparse gradients, and the kernel's are dense: use torch.optim.Adam"
    return None


# (class, its arguments' repr, parameter shapes, device) -> the refusal, or None: a sweep of 1,000
# seeds probes its optimizer once (constructing a torch.optim optimizer is what costs)
_PROBED: dict[tuple[type, str, tuple[tuple[int, ...], ...], str], str | None] = {}


def probe_optimizer(
    optim: AnyConfig, shapes: Sequence[tuple[int, ...]], device: torch.device | str = "cpu"
) -> None:
    """Construct the configured optimizer on throw-away parameters of the run's shapes and take
    two steps with a made-up gradient; ConfigError naming `optim._target_` and its arguments if
    that raises or leaves a parameter non-finite. `validate_optimizer` comes first."""
    cls = optimizer_class(optim)
    arguments = optimizer_arguments(optim)
    key = (cls, repr(sorted(arguments.items())), tuple(map(tuple, shapes)), str(device))
    if key not in _PROBED:
        if len(_PROBED) >= 256:  # a sweep varies a few arguments; don't grow without end
            _PROBED.clear()
        _PROBED[key] = _probe(cls, arguments, shapes, device)
    refusal = _PROBED[key]
    if refusal is not None:
        raise ConfigError("optim._target_", optim.get("_target_"), refusal)


def _probe(
    cls: type, arguments: dict[str, Any], shapes: Sequence[tuple[int, ...]], device: Any
) -> str | None:
    called = f"{cls.__name__}({', '.join(f'{k}={show(v)}' for k, v in arguments.items())})"
    try:
        with torch.enable_grad():
            params = [torch.zeros(s, device=device, requires_grad=True) for s in shapes]
            optimizer = cls(params, **arguments)
            for _ in range(2):  # the second step uses the state the first left (momentum)
                for p in params:
                    p.grad = torch.full_like(p, 1e-3)  # small: lr up to float32 max stays finite
                optimizer.step()
            finite = all(bool(torch.isfinite(p).all()) for p in params)
    except Exception as error:  # whatever the class raises is the user's to read, in one line
        reason = " ".join(str(error).split()) or "no message"
        return f"{called} fails on this run's parameters: {type(error).__name__}: {reason}"
    if not finite:
        return f"{called} turns this run's parameters non-finite in two steps"
    return None
