"""Where a run executes: the torch device, the number of CPU threads, the launcher's processes.

torch is imported only to resolve a device: the command-line checks that read the rest (kernellab.
preflight, kernellab.lifecycle) refuse a bad value before torch loads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernellab.errors import ConfigError

# Below this many multiply-adds per step (outputs x kernel elements), one thread is fastest:
# the seed task's step measured ~0.22 ms on 1 thread, ~0.29 ms on 2, ~1.9 ms on 2 under contention.
SMALL_PROBLEM_MACS = 1 << 16

if TYPE_CHECKING:
    import torch


_CUDA = re.compile(r"cuda(?::(\d+))?")


def require_device_name(name: str) -> None:
    """A device name `resolve_device` knows, checked without torch."""
    if name not in ("auto", "cpu", "mps") and not _CUDA.fullmatch(name):
        raise ConfigError("trainer.device", name, "must be cpu, cuda, cuda:N, mps or auto")


def resolve_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an unavailable device is a ConfigError, not a crash."""
    require_device_name(name)
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise ConfigError("trainer.device", name, "MPS is not available here; use cpu or auto")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ConfigError(
            "trainer.device", name, "CUDA is not available on this machine; use cpu or auto"
        )
    index = int(name.partition(":")[2] or 0)  # `cuda` or `cuda:N` (require_device_name)
    if index >= torch.cuda.device_count():
        raise ConfigError(
            "trainer.device", name, f"only {torch.cuda.device_count()} CUDA device(s) here"
        )
    return torch.device("cuda", index)


def choose_num_threads(
    setting: int | str, macs_per_step: int, cores: int, machine_cores: int | None = None
) -> int:
    """An int is forced, up to the cores this process may run on (`machine_cores`, default
    available_cores(): more threads than cores only slow a run down, and 100,000 crashed torch);
    `auto` gives tiny problems one thread, big ones this job's cores."""
    if setting != "auto":
        return min(int(setting), machine_cores or available_cores())
    return 1 if macs_per_step < SMALL_PROBLEM_MACS else max(1, cores)


def available_cores() -> int:
    """Cores this process may run on (respects taskset/cgroups/SLURM affinity)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _mps_available() -> bool:
    import torch

    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def cores_for_this_job(launcher: Mapping[str, Any]) -> int:
    """This job's fair share of cores, from its Hydra launcher's settings: joblib's n_jobs split
    the machine; submitit jobs get `cpus_per_task`; otherwise whatever the process may run on."""
    cores = available_cores()
    n_jobs, cpus_per_task = launcher.get("n_jobs"), launcher.get("cpus_per_task")
    if n_jobs is not None:
        return max(1, cores // max(1, joblib_workers(n_jobs)))
    if cpus_per_task:
        return min(cores, cpus_per_task)
    return cores


def joblib_workers(n_jobs: int) -> int:
    """joblib's reading of n_jobs: negative counts back from the cores (-1 = all of them)."""
    return n_jobs if n_jobs >= 0 else available_cores() + 1 + n_jobs


# class names, matched whole (KernellabSlurmBatchLauncher runs its jobs on SLURM)
IN_PROCESS_LAUNCHERS = (".BasicLauncher", ".BatchedLauncher")


def jobs_run_in_this_process(launcher: Mapping[str, Any]) -> bool:
    """Whether a launcher runs its jobs in the sweep's own process: Hydra's basic launcher,
    kernellab's batched one, and joblib with one worker; not joblib's pool, submitit or SLURM."""
    target = str(launcher.get("_target_", ""))
    if "joblib" in target:
        return joblib_workers(launcher.get("n_jobs") or -1) == 1
    return target.endswith(IN_PROCESS_LAUNCHERS)


def child_processes() -> list[int]:
    """The pids of this process's live children, zombies (exited, not yet reaped) left out
    (Linux: read from /proc; elsewhere none are found)."""
    me, children = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        if int(parent) == me and state != "Z":
            children.append(int(stat.parent.name))
    return children
