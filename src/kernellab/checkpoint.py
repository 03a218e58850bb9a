"""`checkpoint.pt`: everything `trainer.resume` needs to continue a run bit for bit.

Saved atomically (artifacts.atomic_write) and loaded with `weights_only=True`, so a foreign
pickle is refused; its contents are checked (types, shapes, finiteness) before any is used.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from kernellab.errors import ConfigError
from kernellab.rundir import atomic_write

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class Checkpoint:
    model: dict[str, torch.Tensor]  # Conv2D's state: weight (out, in, kh, kw), bias (out,) if any
    optimizer: dict[str, Any]  # the optimizer's state_dict()
    step: int  # steps completed
    rng: torch.Tensor  # torch's CPU RNG state after the run's initialisation
    initial_loss: float | None
    final_loss: float | None
    wall_time_s: float  # training time so far, over every session of the run

    def save(self, run_dir: Path) -> None:
        atomic_write(Path(run_dir) / CHECKPOINT_FILE, self.encode())

    def encode(self) -> bytes:
        buffer = io.BytesIO()
        torch.save({f.name: getattr(self, f.name) for f in fields(self)}, buffer)  # no deep copy
        return buffer.getvalue()

    @property
    def kernel_shape(self) -> list[int]:
        return list(self.model["weight"].shape[2:])

    @property
    def channels(self) -> list[int]:
        """(out, in)."""
        return list(self.model["weight"].shape[:2])

    @property
    def has_bias(self) -> bool:
        return "bias" in self.model


def checkpoint_path(location: str | Path) -> Path:
    """A run dir's `checkpoint.pt`, or the file itself."""
    path = Path(location)
    return path / CHECKPOINT_FILE if path.is_dir() else path


def load(location: str | Path) -> Checkpoint:
    """The checkpoint at `location` (a run dir or the file), checked; any problem is a ConfigError."""
    path = checkpoint_path(location)
    if not path.is_file():
        raise ConfigError("trainer.resume", location, f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles before refusing them
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, foreign or not a torch file at all
        raise ConfigError(
            "trainer.resume",
            location,
            f"{path} is not a readable kernellab checkpoint ({error.__class__.__name__})",
        ) from None
    problem = _problem(state)
    if problem:
        raise ConfigError(
            "trainer.resume", location, f"{path} is not a kernellab checkpoint: {problem}"
        )
    return Checkpoint(**{f.name: state[f.name] for f in fields(Checkpoint)})


def _problem(state: Any) -> str | None:
    """What is wrong with a loaded checkpoint's contents, or None."""
    if not isinstance(state, dict):
        return "not a dict"
    missing = {f.name for f in fields(Checkpoint)} - state.keys()
    if missing:
        return "missing " + ", ".join(sorted(missing))
    model = state["model"]
    weight = model.get("weight") if isinstance(model, dict) else None
    if not (isinstance(weight, torch.Tensor) and weight.dim() == 4):
        return "model.weight is not an (out, in, kh, kw) tensor"
    bias = model.get("bias")
    if bias is not None and not (isinstance(bias, torch.Tensor) and bias.shape == weight.shape[:1]):
        return "model.bias is not an (out,) tensor"
    for name, tensor in model.items():
        if tensor.dtype != torch.float32 or not torch.isfinite(tensor).all():
            return f"model.{name} is not finite float32"
    if not isinstance(state["optimizer"], dict):
        return "optimizer is not a state dict"
    step = state["step"]
    if not (isinstance(step, int) and step >= 0):
        return "step is not an int >= 0"
    rng = state["rng"]
    expected = torch.get_rng_state().shape
    if not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.shape == expected):
        return "rng is not a torch RNG state"
    for key in ("initial_loss", "final_loss", "wall_time_s"):
        value = state[key]
        if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
            return f"{key} is not a finite number"
    return None
