"""The files a run leaves besides TensorBoard's: `metrics.json` and `checkpoint.pt`.

Both are written to a temporary name in the same directory and renamed into place, so a kill
mid-write leaves the previous complete file or none, never a truncated one.
"""

from __future__ import annotations

import io
import json
import os
import uuid
import warnings
from pathlib import Path
from typing import Any

import torch

from kernellab.config import ConfigError, UserError

METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "checkpoint.pt"


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # same dir: rename stays atomic
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    text = json.dumps(metrics, indent=2, allow_nan=False) + "\n"
    atomic_write(run_dir / METRICS_FILE, text.encode())


def read_metrics(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / METRICS_FILE).read_text())


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(run_dir / CHECKPOINT_FILE, buffer.getvalue())


CHECKPOINT_KEYS = {"model", "optimizer", "step", "rng", "initial_loss", "final_loss", "wall_time_s"}


def load_checkpoint(location: str) -> dict[str, Any]:
    """A run dir's `checkpoint.pt` (or that file), checked; unreadable files are a ConfigError."""
    path = Path(location)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
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
    if not isinstance(state, dict) or not state.keys() >= CHECKPOINT_KEYS:
        raise ConfigError("trainer.resume", location, f"{path} is not a kernellab checkpoint")
    return state


def ensure_writable(run_dir: Path) -> None:
    """Create `run_dir` and write to it, or fail naming the path; touch nothing else.

    Called before Hydra makes its dirs (Preflight) and again by train() for direct callers.
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-probe-{uuid.uuid4().hex}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        reason = error.strerror or str(error)
        raise UserError(f"output dir {run_dir} cannot be created or written: {reason}") from None
