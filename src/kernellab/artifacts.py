"""The files a run leaves besides TensorBoard's: `metrics.json` and `checkpoint.pt`.

Both are written to a temporary name in the same directory and renamed into place, so a kill
mid-write leaves the previous complete file or none, never a truncated one.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path
from typing import Any

import torch

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
