"""Running `python train.py` as a user would, for the tests that need a real process; the files a
test makes and reads back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PY = ROOT / "train.py"


def run_cli(
    *args: str, cwd: Path, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """`python train.py ARGS` in `cwd`."""
    proc = subprocess.run(
        [sys.executable, str(TRAIN_PY), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def start_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`python train.py ARGS` in `cwd` (in `env`, default this one's), started: stdout and stderr
    piped (read them with `communicate`)."""
    return subprocess.Popen(
        [sys.executable, str(TRAIN_PY), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


# An asymmetric 3x3 kernel with non-negative elements summing to 1: its output of an image in
# [0, 1] stays in [0, 1], so a 16-bit PNG holds it to 1/65535; a flip or transpose would show.
TRUTH_3X3 = [[0.1, 0.2, 0.0], [0.05, 0.3, 0.1], [0.0, 0.15, 0.1]]


def correlate(X, K):
    """The book's corr2d (no padding, stride 1) in numpy: the truth without kernellab."""
    import numpy as np

    windows = np.lib.stride_tricks.sliding_window_view(X, np.shape(K))
    return np.einsum("ijab,ab->ij", windows, np.asarray(K))


def write_target_pair(directory: Path, size: tuple[int, int] = (24, 28)) -> tuple[Path, Path]:
    """An 8-bit noise picture and its 16-bit PNG target through TRUTH_3X3: (image, target)."""
    import numpy as np
    from PIL import Image

    levels = np.random.default_rng(0).integers(0, 256, size)
    image = directory / "image.png"
    Image.fromarray(levels.astype(np.uint8)).save(image)
    target = directory / "target.png"
    Y = correlate(levels / 255, TRUTH_3X3)
    Image.fromarray(np.rint(Y * 65535).astype(np.uint16)).save(target)
    return image, target


# Two output channels from three input colours, 2x2 each: distinct non-negative elements whose
# outputs of pixels in [0, 1] stay within [0, 1.4].
TRUTH_2X3 = [
    [[[0.1, 0.0], [0.2, 0.05]], [[0.0, 0.3], [0.1, 0.0]], [[0.05, 0.0], [0.0, 0.2]]],
    [[[0.0, 0.15], [0.0, 0.1]], [[0.2, 0.0], [0.0, 0.1]], [[0.1, 0.1], [0.05, 0.0]]],
]


def write_rgb_picture(directory: Path, size: tuple[int, int] = (12, 14), seed: int = 0) -> Path:
    """An 8-bit RGB noise picture (rows x columns)."""
    import numpy as np
    from PIL import Image

    levels = np.random.default_rng(seed).integers(0, 256, (*size, 3))
    path = directory / f"rgb{seed}.png"
    Image.fromarray(levels.astype(np.uint8), mode="RGB").save(path)
    return path


def kernel_override(kernel: list) -> str:
    """`task.target_kernel=` for a nested list, without spaces (Hydra's grammar)."""
    import json

    return "task.target_kernel=" + json.dumps(kernel).replace(" ", "")


def accumulator(run_dir: Path) -> EventAccumulator:
    """A run's event files read back with TensorBoard's own reader, nothing sampled away."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(
        str(run_dir),
        size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0},
    )
    events.Reload()
    return events
