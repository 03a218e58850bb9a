"""Which SLURM job or array task runs each job of a sweep, and which of them are still on the
cluster: what lets a summary written while they run (Ctrl-C on the submitting process, or
`python -m kernellab.report` by hand) call their jobs `running` rather than `not started`, and
name the `scancel` that stops them.

The launchers of `hydra/launcher=slurm` and `slurm_batched` `record` each job's SLURM id in
`<sweep dir>/slurm_tasks.json` once sbatch has taken them; `still_queued` asks `squeue` which
of those ids it still lists (pending, running, requeued, completing). No squeue on this machine
(a sweep dir copied off the cluster), or no answer: none, and the summary says what the job dirs
hold, as it always did. Light: no torch, no Hydra.
"""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from kernellab.rundir import atomic_write

TASKS_FILE = "slurm_tasks.json"
SQUEUE_TIMEOUT_S = 30


def record(sweep_dir: Path, tasks: Mapping[str, Sequence[int]]) -> None:
    """Add `tasks` (SLURM id, e.g. `1234_0`, → the job numbers it runs) to the sweep's list; a
    job submitted again (a continued sweep, Optuna's next trials) takes its newest id."""
    path = Path(sweep_dir) / TASKS_FILE
    by_job = {job: task for task, jobs in _read(path).items() for job in jobs}
    by_job.update({job: task for task, jobs in tasks.items() for job in jobs})
    merged: dict[str, list[int]] = {}
    for job, task in sorted(by_job.items()):
        merged.setdefault(task, []).append(job)
    atomic_write(path, json.dumps({"tasks": merged}, separators=(",", ":")).encode())


def _read(path: Path) -> dict[str, list[int]]:
    try:
        tasks = json.loads(path.read_text())["tasks"]
        return {str(task): [int(job) for job in jobs] for task, jobs in tasks.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def still_queued(sweep_dir: Path) -> dict[int, str]:
    """Job number → SLURM id, for the sweep's jobs whose SLURM job or task squeue still lists."""
    tasks = _read(Path(sweep_dir) / TASKS_FILE)
    if not tasks:
        return {}
    listed = _squeue()
    return {job: task for task, jobs in tasks.items() if task in listed for job in jobs}


def _squeue() -> set[str]:
    """The ids of this user's SLURM jobs and array tasks (one per task: `-r`), as squeue lists
    them; empty when there is no squeue or it doesn't answer."""
    if shutil.which("squeue") is None:
        return set()
    try:
        listing = subprocess.run(
            ["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i"],
            capture_output=True,
            text=True,
            timeout=SQUEUE_TIMEOUT_S,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return {line.strip() for line in listing.splitlines() if line.strip()}


def scancel_ids(tasks: Sequence[str]) -> list[str]:
    """What `scancel` takes to stop these tasks: each array's id (`1234` for `1234_0`), each
    lone job's own, once."""
    return sorted({task.split("_", 1)[0] for task in tasks}, key=lambda i: (len(i), i))
