"""Sweeps as one program: which jobs can train together, and in how many batches.

Jobs whose tensor programs have the same shape train as one program (train.train_group): one
F.conv2d with N output channels computes every job's prediction, each job keeps its own seed,
image, target, learning rate and optimizer state, and its own number of steps. What must be equal
is `group_key`; everything else may differ between the jobs of a group.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Sequence
from typing import Any

import torch

from kernellab.backends import BACKENDS, DEFAULT
from kernellab.resolved import AnyConfig
from kernellab.validation import Geometry

# What a group may take of the memory available when it starts (the rest: the process itself,
# TensorBoard's buffers, other programs).
MEMORY_SHARE = 0.5
MAX_GROUP = 4096  # beyond this the per-job Python work (optimizers, logging) dominates anyway


def group_key(cfg: AnyConfig, geometry: Geometry, backend: str) -> tuple[Any, ...] | None:
    """Jobs with equal keys train as one program; None: the job trains alone.

    The key is what fixes the program's shape and where it runs: the image's shape (after
    `horizontal`), kernel size, padding, stride, bias, device, thread setting, optimizer class,
    target image file and the layer's (out, in) channels.
    Seeds, pictures, target kernels, learning rates and other optimizer arguments, steps and
    logging settings may differ. A backend whose entry says it doesn't batch (the book's loop, our
    corr2d, the fused one-pass step for one big image) and `trainer.cuda_graph` can't be batched
    (`backend`: `model.backend` with `auto` resolved).
    """
    if not BACKENDS[backend].batches or cfg.trainer.cuda_graph:
        return None
    return (
        geometry.input_shape,
        geometry.kernel_size,
        geometry.padding,
        geometry.stride,
        bool(cfg.model.bias),
        str(cfg.trainer.device),
        str(cfg.trainer.num_threads),
        str(cfg.optim._target_),
        # a target image's path: jobs with different target files train apart (each group
        # decodes its one file once; photos are cached a few at a time)
        cfg.task.target_image,
        geometry.channels,
    )


def group_jobs(keys: Sequence[tuple[Any, ...] | None]) -> list[list[int]]:
    """Indices of jobs that train together, in the order of each group's first job."""
    groups: dict[Any, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key if key is not None else ("alone", index), []).append(index)
    return list(groups.values())


def job_bytes(geometry: Geometry, backend: str) -> int:
    """Memory one job needs (and adds to a group), on the generous side: its backend's estimate
    (of one channel), times the most channels a side has."""
    estimate = BACKENDS[backend].job_bytes
    one = estimate(geometry.input_shape, geometry.output_shape, geometry.kernel_size)
    return one * max(geometry.channels)


def max_group_size(geometry: Geometry, device: torch.device) -> int:
    """How many such jobs fit in MEMORY_SHARE of the device's available memory, and in the open
    files the process may have (each job holds its event file and run-dir lock open)."""
    # a group is one grouped F.conv2d: each job costs what a job of the default backend does
    fits = int(MEMORY_SHARE * available_memory(device) // job_bytes(geometry, DEFAULT))
    return max(1, min(MAX_GROUP, fits, (open_files_allowed() - 64) // 2))


def open_files_allowed() -> int:
    """The open-file limit, raised to its hard maximum first (1,024 is a common soft default)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def available_memory(device: torch.device) -> int:
    """Bytes a new allocation can have: free GPU memory, or the kernel's MemAvailable."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")  # not Linux: all of it


def split(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]
