"""Files a run leaves besides TensorBoard's and the checkpoint: `metrics.json`, written atomically.

Files are written to a temporary name in the same directory and renamed into place, so a kill
mid-write leaves the previous complete file or none, never a truncated one.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

from kernellab.errors import UserError

METRICS_FILE = "metrics.json"


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
    """Strict JSON: a non-finite number (a diverged kernel) is written as null."""
    text = json.dumps(_finite_or_null(metrics), indent=2, allow_nan=False) + "\n"
    atomic_write(run_dir / METRICS_FILE, text.encode())


def read_metrics(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / METRICS_FILE).read_text())


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


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(v) for v in value]
    return value
