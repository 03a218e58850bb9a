"""Local workers: a batch's prepared jobs split over forked processes (`hydra.launcher.workers`).

After the launch has composed and placed every job (in this process), `run_in_workers` forks one
process per part of the batch. Each worker inherits the prepared jobs (no pickling of configs),
drives its part exactly as the single-process path does (`.hydra/` files, log files, callbacks:
in the worker, as Hydra's joblib launcher runs them), and sends each job's result back over a
pipe as it ends; the launcher's process turns it into that job's JobReturn (`PreparedJob._adopt`),
so the sweeper sees every value. Signals: SIGINT/SIGTERM reaching the launcher's process while it
waits are passed on to every worker, then to the handler that was there before; every worker is
waited for (no zombie, no orphan), and one still alive when the launcher gives up is killed.

How many (`resolve_workers`): `auto` is one worker per `MIN_JOBS_PER_WORKER` jobs of the batch, at
most the cores this process may use, at least 1; a number above the cores is clamped to them with a
warning on stderr. Which jobs (`split`): largest first onto the least loaded worker, by the
runner's weights (equal weights: job i to worker i mod N). GPUs (`gpu_assignment`): with two or
more GPUs visible, worker k sees only GPU k mod their count (`CUDA_VISIBLE_DEVICES`).

Linux/macOS only (`os.fork`); elsewhere every batch runs in one process.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection, Pipe, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.utils import JobReturn, JobStatus

from ._private import flush_loggers, return_value

if TYPE_CHECKING:
    from ._core import PreparedJob

#: `auto` gives each worker at least this many jobs: below it, a worker's start (fork, copied
#: pages, its first group's set-up: ~0.3-0.5 s on 2 busy cores) costs about what it saves at ~5-10
#: ms a job. An estimate, not a measured crossover: a 16-job grid took ~15% longer with 2 workers.
MIN_JOBS_PER_WORKER = 100
KILL_AFTER_S = 30.0  # a worker still alive this long after the launcher gave up is killed
SETTING = "hydra.launcher.workers"
_warned: set[Any] = set()


def available_cores() -> int:
    """Cores this process may run on (taskset, cgroups, SLURM affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def can_fork() -> bool:
    return hasattr(os, "fork") and sys.platform != "win32"


def parse_workers(setting: Any) -> int | None:
    """`auto` (or null) → None; a whole number >= 1 → it; anything else: ValueError, one line."""
    if setting is None or setting == "auto":
        return None
    value = setting
    if isinstance(setting, str) and setting.strip().isdigit():
        value = int(setting)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{SETTING}={setting}: must be auto or a number of processes >= 1")
    return value


def resolve_workers(setting: Any, jobs: int, cores: int | None = None) -> int:
    """How many workers a batch of `jobs` gets (see the module's docstring)."""
    wanted = parse_workers(setting)
    cores = cores or available_cores()
    if not can_fork():
        return 1
    if wanted is None:
        return max(1, min(cores, jobs // MIN_JOBS_PER_WORKER))
    if wanted > cores:
        if (wanted, cores) not in _warned:
            _warned.add((wanted, cores))
            print(
                f"warning: {SETTING}={wanted}: this process may use {cores} core(s); "
                f"using {cores} worker(s)",
                file=sys.stderr,
            )
        wanted = cores
    return max(1, min(wanted, jobs))


def cuda_in_use() -> bool:
    """Whether this process has initialised CUDA (an earlier batch trained here): a forked CUDA
    context is unusable, so such a process runs its batches itself. torch isn't imported for it."""
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_initialized())


def contiguous(jobs: int, parts: int) -> list[list[int]]:
    """Job indices 0..jobs-1 cut into at most `parts` runs of consecutive jobs, as equal as can be
    (no empty one): the shares of a batch whose jobs weigh alike."""
    bounds = [round(k * jobs / parts) for k in range(parts + 1)]
    return [list(range(a, b)) for a, b in itertools.pairwise(bounds) if b > a]


def split(weights: Sequence[float], workers: int) -> list[list[int]]:
    """Job indices per worker, each part in job order: heaviest job first onto the least loaded
    worker (ties: the lower worker), so equal weights go round-robin. No empty part."""
    loads = [0.0] * workers
    parts: list[list[int]] = [[] for _ in range(workers)]
    for index in sorted(range(len(weights)), key=lambda i: -weights[i]):
        k = min(range(workers), key=lambda w: (loads[w], w))
        parts[k].append(index)
        loads[k] += weights[index]
    return [sorted(part) for part in parts if part]


def visible_gpus(environ: Mapping[str, str] | None = None, proc: Path | None = None) -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES names them, found without
    initialising CUDA (a forked CUDA context is unusable): CUDA_VISIBLE_DEVICES when set, else one
    per GPU the NVIDIA driver lists in /proc."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [d.strip() for d in environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    gpus = proc if proc is not None else Path("/proc/driver/nvidia/gpus")
    try:
        return [str(i) for i in range(len(list(gpus.iterdir())))]
    except OSError:
        return []


def gpu_assignment(workers: int, gpus: Sequence[str]) -> list[str | None]:
    """Each worker's CUDA_VISIBLE_DEVICES: with 2+ GPUs, worker k gets GPU k mod their count
    (one worker per GPU when there are as many); with 0 or 1, None (the environment as it is)."""
    if len(gpus) < 2:
        return [None] * workers
    return [gpus[k % len(gpus)] for k in range(workers)]


WorkerFn = Callable[[Sequence["PreparedJob"], int, int], None]


def run_in_workers(
    parts: Sequence[Sequence[PreparedJob]],
    run: WorkerFn,
    gpus: Sequence[str | None] | None = None,
) -> list[int]:
    """Run `run(part, k, len(parts))` in a forked process per part of jobs prepared here (a
    runner without `Sharing` splitting its batch itself); returns each worker's exit status (0:
    `run` returned). Every job a worker finished has its JobReturn here when this returns; a job
    whose worker died first is left unfinished, for the caller to record."""
    by_idx = {job.idx: job for part in parts for job in part}

    def work(k: int, channel: Channel) -> None:
        for job in parts[k]:
            job._require_launch().on_finished = lambda job: channel.send(
                ("result", result_of(job.idx, job.result))
            )
        run(parts[k], k, len(parts))

    def receive(k: int, message: Any) -> None:
        idx, status, value, working_dir, task_name = message[1]
        by_idx[idx]._adopt(JobStatus[status], value, working_dir, task_name)

    statuses, _ = fork_workers(len(parts), work, receive, gpus)
    return statuses


class Channel:
    """A worker's end of its pipe to the launcher's process."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def send(self, message: Any) -> None:
        self.conn.send(message)

    def ready(self) -> None:
        """Tell the launcher's process this worker has prepared its share, and wait until every
        worker has (`fork_workers(barrier=True)`); the launcher gave up: exit quietly."""
        self.conn.send(("ready",))
        try:
            go = self.conn.recv()
        except (EOFError, OSError):
            go = None
        if go != "go":
            raise SystemExit(0)

    def abort(self, payload: Any) -> None:
        """This worker can't go on before the barrier (a job it can't compose): the launcher's
        process stops every worker and deals with `payload`."""
        self.conn.send(("abort", payload))


def fork_workers(
    count: int,
    work: Callable[[int, Channel], None],
    receive: Callable[[int, Any], None],
    gpus: Sequence[str | None] | None = None,
    barrier: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> tuple[list[int], Any]:
    """Run `work(k, channel)` in `count` forked processes; each message a worker sends is handed
    to `receive(k, message)` here as it comes. With `barrier`, every worker calls
    `channel.ready()` before it changes anything, and none goes on until all have (a worker that
    died before counts as ready); `on_ready` runs here just before they go on. A worker's
    `channel.abort(payload)` before the barrier SIGKILLs every worker (nothing written yet).
    Returns each worker's exit status, and the payload of an abort (or None)."""
    handled = (signal.SIGINT, signal.SIGTERM)
    for stream in (sys.stdout, sys.stderr):  # or the workers would print it again
        with contextlib.suppress(Exception):
            stream.flush()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, handled)  # no signal lost while forking
    pids: dict[int, int] = {}  # pid -> worker number
    conns: dict[Connection, int] = {}  # -> worker number
    previous: dict[int, Any] = {}
    aborted: Any = None
    try:
        for k in range(count):
            here, there = Pipe(duplex=True)
            pid = os.fork()
            if pid == 0:  # the worker
                for conn in conns:
                    conn.close()
                here.close()
                _worker(k, work, there, gpus[k] if gpus else None, blocked)
            there.close()
            pids[pid], conns[here] = k, k

        def forward(number: int, frame: Any) -> None:
            for pid in list(pids):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, number)
            handler = previous.get(number)
            if callable(handler):
                handler(number, frame)
            elif handler == signal.SIG_DFL:
                raise SystemExit(128 + number)

        previous = {number: signal.signal(number, forward) for number in handled}
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        pending = dict(conns)
        ready: set[int] = set() if barrier else set(range(count))

        def arrived(k: int) -> None:
            ready.add(k)
            if len(ready) == count:
                if on_ready is not None:
                    on_ready()
                for conn in pending:
                    with contextlib.suppress(OSError):
                        conn.send("go")

        while pending and aborted is None:
            for conn in wait(list(pending)):
                k = pending[conn]  # type: ignore[index]
                try:
                    message = conn.recv()  # type: ignore[union-attr]
                except (EOFError, OSError):
                    del pending[conn]  # type: ignore[arg-type]
                    if k not in ready:
                        arrived(k)
                    continue
                if message[0] == "ready":
                    arrived(k)
                elif message[0] == "abort":
                    aborted = message[1]
                    for pid in pids:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    break
                else:
                    receive(k, message)
    except BaseException:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        statuses = _reap(pids)
        for number, handler in previous.items():
            signal.signal(number, handler)
        for conn in conns:
            conn.close()
    return [statuses[pid] for pid in pids], aborted


def _reap(pids: dict[int, int]) -> dict[int, int]:
    """Wait for every worker (killing one still alive after KILL_AFTER_S); their exit statuses."""
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + KILL_AFTER_S
    while len(statuses) < len(pids):
        for pid in pids:
            if pid in statuses:
                continue
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                statuses[pid] = 1
                continue
            if done:
                statuses[pid] = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if len(statuses) < len(pids):
            time.sleep(0.01)
    return statuses


def _worker(
    k: int,
    work: Callable[[int, Channel], None],
    conn: Connection,
    gpu: str | None,
    mask: Any,
) -> None:
    """A worker's whole life: never returns (os._exit, so nothing of the launcher's process, its
    atexit handlers and buffers, runs twice)."""
    status = 1
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if gpu is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        work(k, Channel(conn))
        status = 0
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            flush_loggers()
            sys.stdout.flush()
            sys.stderr.flush()
            conn.close()
        os._exit(status)


def result_of(idx: int, ret: JobReturn | None) -> tuple[Any, ...]:
    """What the launcher's process needs of finished job `idx` to make its JobReturn, `(idx,
    status name, value, working_dir, task_name)`, sent from a worker or a SLURM task; a value that
    doesn't survive pickling (an exception with its own constructor) is sent as a RuntimeError."""
    import pickle

    assert ret is not None
    value = return_value(ret)
    try:
        pickle.loads(pickle.dumps(value))
    except Exception:
        value = RuntimeError(f"{type(value).__name__}: {value}")
    return (idx, ret.status.name, value, ret.working_dir, ret.task_name)
