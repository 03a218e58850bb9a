"""Running `python train.py` as a user would, for the tests that need a real process; the files a
test makes and reads back."""

from __future__ import annotations

import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from kernellab._python_private import exit_as_python_does

if TYPE_CHECKING:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PY = ROOT / "train.py"


def run_cli(
    *args: str, cwd: Path, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """`python train.py ARGS` in `cwd`, its output and exit status: forked from a process that has
    imported the training stack already (`forked_train_py`), or a fresh interpreter where this
    process's environment now differs in what Python and those imports read as they start."""
    if _read_at_start(os.environ) == _read_at_start(_SERVER_ENVIRONMENT):
        proc = forked_train_py(list(args), cwd, timeout)
    else:
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


# A fresh `python train.py` spends ~1.5 s of CPU importing torch, Hydra and kernellab before it reads
# its first override: most of the CPU a `make test` spends in the ~200 runs that only look at what a
# command writes and how it exits. Those fork from multiprocessing's fork server instead, started
# once per pytest process with these imported. Each run is still a process of its own (its own cwd,
# output, exit status, children and signals); what is about a fresh interpreter (what it imports,
# how it starts, how it ends on a signal) runs `start_cli` or `python` itself.
_FORK_SERVER = multiprocessing.get_context("forkserver")
_FORK_SERVER.set_forkserver_preload(
    [
        "kernellab.optim",
        "kernellab.hydra_job",
        "kernellab.batch_runner",
        "kernellab.command_line",
        "hydra_plugins.kernellab_batched_launcher._core",
    ]
)
_SERVER_ENVIRONMENT = dict(os.environ)  # what the fork server starts with
_READ_AT_START = ("PYTHON", "OMP_", "MKL_", "KMP_", "CUDA_", "NUMBA_")  # by Python, torch, numba


def _read_at_start(environment: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environment.items() if k.startswith(_READ_AT_START)}


def forked_train_py(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python train.py ARGS` in `cwd` forked from the fork server: as `subprocess.run` answers."""
    command = [sys.executable, str(TRAIN_PY), *args]
    with tempfile.TemporaryDirectory() as outputs:
        out, err = Path(outputs, "stdout"), Path(outputs, "stderr")
        child = _FORK_SERVER.Process(
            target=_train_py_as_main, args=(args, cwd, dict(os.environ), out, err)
        )
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired(command, timeout, out.read_text())
        return subprocess.CompletedProcess(
            command, child.exitcode, out.read_text(), err.read_text()
        )


def _train_py_as_main(
    args: list[str], cwd: Path, environment: dict[str, str], out: Path, err: Path
) -> None:
    """In the forked process: train.py run as `python train.py ARGS` runs it, to its exit status,
    in `environment`, its output in the files `out` and `err`."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environment)
    for fd, path in ((1, out), (2, err)):
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(opened, fd)
        os.close(opened)
    sys.argv = [str(TRAIN_PY), *args]
    status = 0
    try:
        runpy.run_path(str(TRAIN_PY), run_name="__main__")
    except SystemExit as exit_:
        status = _exit_status(exit_.code)
    except BaseException:  # as the interpreter answers what nothing caught: traceback, status 1
        sys.excepthook(*sys.exc_info())
        status = 1
    exit_as_python_does(status)


def _exit_status(code: object) -> int:
    """The exit status of `sys.exit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


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
