"""The one way this suite measures time: medians of interleaved repetitions, synced step timers."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import ROOT


class BenchError(RuntimeError):
    """A measurement could not be taken (a run failed or did not complete)."""


@dataclass(frozen=True)
class Sample:
    """Repeated measurements of one quantity."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)


def interleaved(contenders: Mapping[str, Callable[[], float]], reps: int) -> dict[str, Sample]:
    """Run every contender once per round, `reps` rounds, so load drift hits all of them alike."""
    values: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(reps):
        for name, measure in contenders.items():
            values[name].append(measure())
    return {name: Sample(tuple(v)) for name, v in values.items()}


def no_sync() -> None:
    """The CPU needs no synchronisation before reading the clock."""


def sync_for(device: object) -> Callable[[], None]:
    """`torch.cuda.synchronize` for a CUDA device (kernels run asynchronously), else nothing."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return no_sync


def seconds_per_step(
    step: Callable[[], object], steps: int, warmup: int = 3, sync: Callable[[], None] = no_sync
) -> float:
    """Mean wall time of `step` over `steps` calls, after `warmup` untimed calls, synced at both ends."""
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - start) / steps


def steps_for(step: Callable[[], object], seconds: float, most: int) -> int:
    """How many calls of `step` fill about `seconds` (one call timed), between 1 and `most`."""
    start = time.perf_counter()
    step()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, min(most, round(seconds / once)))


def run_process(
    args: Sequence[str], timeout: float = 300, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `args` in the repo root; raise BenchError (with its stderr tail) if it fails."""
    proc = subprocess.run(
        list(args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise BenchError(f"`{' '.join(args)}` exited {proc.returncode}: " + " / ".join(tail))
    return proc


def process_seconds(args: Sequence[str], timeout: float = 300) -> float:
    """Wall time of a whole process, start-up included."""
    start = time.perf_counter()
    run_process(args, timeout)
    return time.perf_counter() - start


def python(*args: str | Path) -> list[str]:
    """A command line running this interpreter."""
    return [sys.executable, *map(str, args)]


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)
