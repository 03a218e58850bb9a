"""The training step and the loop around it, for one run or a group of runs trained as one program.

A group's kernels and biases live in one flat tensor (each job's Parameters are views of it), so
recording a step is one copy of [losses, parameters] into a device-side buffer; the host reads the
buffer back in batches, so the loop never waits on it (see Progress).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from kernellab.backends import BACKENDS
from kernellab.console import Heartbeat, number
from kernellab.data import kernel_error
from kernellab.model import Conv2D
from kernellab.signals import StopRequest

FLUSH_SECONDS = 1.0  # console and event files lag training by at most this much
BUFFER_ROWS = 1024
CUDA_GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before capture, as PyTorch advises

Step = Callable[[], torch.Tensor]  # one step of every job; returns each job's loss, (N,)
Bias = float | list[float] | None  # a list: one per output channel (with several)


class Tracker(Protocol):
    """What the loop writes a run's progress to (tracking.TensorBoardTracker)."""

    def log_step(
        self, step: int, loss: float, kernel: Sequence[float], bias: Bias, error: float
    ) -> None: ...
    def flush(self) -> None: ...


# Writes the snapshots (tracker, flat kernel) of one step: all of a group's at once
# (tracking.log_snapshots).
SnapshotWriter = Callable[[int, Sequence[tuple[Any, Sequence[float]]]], None]


def share_storage(models: Sequence[Conv2D]) -> torch.Tensor:
    """Move every model's parameters into one flat tensor, job after job: [w..., b] per job.

    The Parameters become views of it, so optimizers update it in place and one detached view of
    it follows every job's kernel and bias.
    """
    params = [p for model in models for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    offset = 0
    for p in params:
        p.data = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    return flat


def make_step(
    models: Sequence[Conv2D],
    optimizers: Sequence,
    X: torch.Tensor,
    Y: torch.Tensor,
    active: list[bool],
) -> Step:
    """One full-batch gradient step of every job; `active[j]` False leaves job j's parameters alone.

    X is (1, 1, h, w) when every job sees the same image, else (1, N, h, w); Y is (1, N, oh, ow).
    One job runs its model's own backend; several run one F.conv2d with N output channels
    (grouped when the images differ). Each job's loss is the book's sum of squared errors.
    With channels (out, in) each job has `in` of X's channels (or shares them) and `out` of
    Y's: X (1, in or N·in, h, w), Y (1, N·out, oh, ow).
    """
    if len(models) == 1:
        return _single_step(models[0], optimizers[0], X, Y, active)
    first = models[0]
    weights = [m.weight for m in models]
    biases = [m.bias for m in models] if first.bias is not None else None
    groups = X.shape[1] // first.weight.shape[1]
    per_job = first.weight.shape[0] > 1  # a job's loss sums its output channels

    def step() -> torch.Tensor:
        for optimizer in optimizers:
            optimizer.zero_grad()
        bias = torch.cat(biases) if biases is not None else None
        pred = F.conv2d(X, torch.cat(weights), bias, first.stride, first.padding, 1, groups)
        losses = F.mse_loss(pred, Y, reduction="none").sum((0, 2, 3))
        if per_job:
            losses = losses.view(len(models), -1).sum(1)
        losses.sum().backward()  # job j's loss is the only term that depends on its parameters
        for optimizer, on in zip(optimizers, active, strict=True):
            if on:
                optimizer.step()
        return losses.detach()  # values only: holding the autograd graph would outlive the step

    return step


def _single_step(
    model: Conv2D, optimizer, X: torch.Tensor, Y: torch.Tensor, active: list[bool]
) -> Step:
    """A group of one: the model's own backend, and not one autograd node more than the book's;
    a backend with a loss of its own (`fused`: one pass over the image) computes it."""
    build_loss = BACKENDS[model.backend].loss
    if build_loss is not None:
        loss_of = build_loss(model, X, Y)
    else:

        def loss_of() -> torch.Tensor:
            return F.mse_loss(model(X), Y, reduction="sum")

    def step() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_of()
        loss.backward()
        if active[0]:
            optimizer.step()
        return loss.detach().view(1)

    return step


class CudaGraphStep:
    """The whole step (forward, backward, update) captured once in a CUDA graph, then replayed.

    The first calls run eagerly on a side stream (warm-up); they are real training steps. The
    image, target, parameters and gradients stay at fixed addresses, so replays need no copies.
    """

    def __init__(self, step: Step, warmup_steps: int = CUDA_GRAPH_WARMUP_STEPS) -> None:
        self.step, self.warmup_left = step, warmup_steps
        self.graph: torch.cuda.CUDAGraph | None = None
        self.loss: torch.Tensor | None = None

    def __call__(self) -> torch.Tensor:
        if self.graph is not None:
            self.graph.replay()
            return self.loss
        if self.warmup_left > 0:
            self.warmup_left -= 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                loss = self.step()
            torch.cuda.current_stream().wait_stream(side)
            return loss
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss = self.step()
        self.graph.replay()  # capture records without running: this is the step's real run
        return self.loss


@dataclass
class Outcome:
    """How one job's training ended."""

    status: str  # completed | diverged | interrupted
    steps_completed: int
    first_loss: float | None
    last_loss: float | None
    kernel: torch.Tensor | None  # after the last completed step's update (from the buffer)
    bias: Bias
    kernel_error: float | None  # the kernel's distance from the target, with `kernel`
    diverged_at_step: int | None = None
    diverged_because: str | None = None  # `is not finite` or `exceeds ... the first step's loss`
    signal_name: str | None = None


@dataclass
class Schedule:
    """Job j trains steps done[j]+1 .. last[j]."""

    done: list[int]
    last: list[int]

    def active(self, step: int, diverged: Sequence[int | None]) -> list[bool]:
        return [
            d < step <= last and gone is None
            for d, last, gone in zip(self.done, self.last, diverged, strict=True)
        ]


def fit(
    step: Step,
    active: list[bool],
    schedule: Schedule,
    progress: Progress,
    stop: StopRequest,
    checkpoint_every_s: float | None = None,
    save_checkpoints: Callable[[], None] = lambda: None,
) -> list[Outcome]:
    """Run the steps every job still has; a job stops early when it diverges; all stop on a stop
    request (after the current step). Every `checkpoint_every_s`, everything so far is written
    out and `save_checkpoints` called."""
    every = checkpoint_every_s or math.inf
    next_checkpoint = time.perf_counter() + every
    for step_number in range(min(schedule.done) + 1, max(schedule.last, default=0) + 1):
        active[:] = schedule.active(step_number, progress.diverged_at)
        if not any(active):
            break
        progress.record(step_number, step())
        if stop.requested:
            break
        if time.perf_counter() >= next_checkpoint:
            progress.flush()  # the checkpoint's step is then every job's last written step
            save_checkpoints()
            next_checkpoint = time.perf_counter() + every
    progress.flush()
    progress.heartbeat.close()
    return progress.outcomes(stop.signal_name if stop.requested else None)


class StepBuffer:
    """Rows of [each job's loss, then every job's parameters] per step, kept on the device."""

    def __init__(self, width: int, capacity: int, device: torch.device) -> None:
        self.rows = torch.empty(capacity, width, device=device)
        self.row_views = self.rows.unbind(0)  # made once: indexing a row per step costs a dispatch
        self.steps: list[int] = []

    def record(self, step: int, values: list[torch.Tensor]) -> None:
        """`values`: detached 1-D tensors (a `cat` with `out=` can't be differentiated)."""
        torch.cat(values, out=self.row_views[len(self.steps)])
        self.steps.append(step)

    @property
    def full(self) -> bool:
        return len(self.steps) == len(self.rows)

    def drain(self) -> tuple[list[int], list[list[float]]]:
        """The recorded steps and their rows as Python floats (the only host sync)."""
        steps, rows = self.steps, self.rows[: len(self.steps)].tolist()
        self.steps = []
        return steps, rows


@dataclass
class JobLog:
    """Where one job's progress goes, how often, and what counts as diverging."""

    tracker: Tracker
    log: logging.Logger
    target: list[float] | None  # the target kernel as the model sees it, flattened; None: none
    last_step: int
    log_every: int
    snapshot_every: int
    print_every: int
    divergence_threshold: float | None  # a multiple of the first step's loss
    resumed: tuple[int, float | None, float | None] = (0, None, None)  # (steps, first, last loss)


class Progress:
    """Each step's losses and parameters, buffered on the device and written out in batches.

    Writing to TensorBoard and the logs, and checking each loss is finite, happen at a flush: when
    the buffer is full or a second has passed, so the loop never waits on the host.
    """

    def __init__(
        self,
        jobs: Sequence[JobLog],
        parameters: torch.Tensor,
        kernel_shape: tuple[int, ...],
        bias_size: int,  # 0: no bias; else one per output channel
        schedule: Schedule,
        heartbeat: Heartbeat,
        log_snapshots: SnapshotWriter,
    ) -> None:
        self.jobs, self.parameters, self.schedule = jobs, parameters.detach(), schedule
        self.heartbeat, self.log_snapshots = heartbeat, log_snapshots
        self.kernel_shape, self.bias_size = kernel_shape, bias_size
        self.kernel_size = math.prod(kernel_shape)
        self.width = self.kernel_size + bias_size  # parameters per job
        n = len(jobs)
        self.buffer = StepBuffer(n + n * self.width, BUFFER_ROWS, parameters.device)
        self.next_flush = time.perf_counter() + FLUSH_SECONDS
        self.steps_done = [job.resumed[0] for job in jobs]
        self.first_loss = [job.resumed[1] for job in jobs]
        self.last_loss = [job.resumed[2] for job in jobs]
        self.last_params: list[list[float] | None] = [None] * n
        self.last_error: list[float | None] = [None] * n
        self.diverged_at: list[int | None] = [None] * n
        self.diverged_because: list[str | None] = [None] * n

    def record(self, step: int, losses: torch.Tensor) -> None:
        self.buffer.record(step, [losses, self.parameters])
        if self.buffer.full or time.perf_counter() >= self.next_flush:
            self.flush()

    def flush(self) -> None:
        steps, rows = self.buffer.drain()
        n = len(self.jobs)
        for step, row in zip(steps, rows, strict=True):
            active = self.schedule.active(step, self.diverged_at)
            snapshots: list[tuple[Tracker, list[float]]] = []
            for j, on in enumerate(active):
                if not on:
                    continue
                problem = self._divergence(j, row[j])
                if problem:
                    self.diverged_at[j], self.diverged_because[j] = step, problem
                    continue
                start = n + j * self.width
                params = row[start : start + self.width]
                if self._write(j, step, row[j], params):
                    snapshots.append((self.jobs[j].tracker, params[: self.kernel_size]))
            if snapshots:
                self.log_snapshots(step, snapshots)
        for job in self.jobs:
            job.tracker.flush()
        if steps:
            self.heartbeat.beat(steps[-1], self._state())
        self.next_flush = time.perf_counter() + FLUSH_SECONDS

    def _divergence(self, j: int, loss: float) -> str | None:
        if not math.isfinite(loss):
            return "is not finite"
        threshold, first = self.jobs[j].divergence_threshold, self.first_loss[j]
        if threshold is not None and first is not None and loss > threshold * first:
            return f"exceeds {threshold:g} × the first step's loss ({number(first)})"
        return None

    def _state(self) -> str:
        if len(self.jobs) == 1:
            return f"loss {number(self.last_loss[0])}"
        training = sum(d is None for d in self.diverged_at)
        finite = [loss for loss in self.last_loss if loss is not None]
        best = f", best loss {number(min(finite))}" if finite else ""
        return f"{training} of {len(self.jobs)} jobs training{best}"

    def snapshot(self, j: int) -> tuple[int, float | None, float | None]:
        """Job j's (steps written, first loss, last loss): what its checkpoint records."""
        return self.steps_done[j], self.first_loss[j], self.last_loss[j]

    def outcomes(self, signal_name: str | None) -> list[Outcome]:
        return [self._outcome(j, signal_name) for j in range(len(self.jobs))]

    def _outcome(self, j: int, signal_name: str | None) -> Outcome:
        kernel, bias = None, None
        if self.last_params[j] is not None:
            flat, bias = self._split(self.last_params[j])
            kernel = torch.tensor(flat).view(self.kernel_shape)
        if self.diverged_at[j] is not None:
            status, signal_name = "diverged", None
        elif self.steps_done[j] < self.schedule.last[j] and signal_name:
            status = "interrupted"
        else:
            status, signal_name = "completed", None
        return Outcome(
            status=status,
            steps_completed=self.steps_done[j],
            first_loss=self.first_loss[j],
            last_loss=self.last_loss[j],
            kernel=kernel,
            bias=bias,
            kernel_error=self.last_error[j],
            diverged_at_step=self.diverged_at[j],
            diverged_because=self.diverged_because[j],
            signal_name=signal_name,
        )

    def _write(self, j: int, step: int, loss: float, params: list[float]) -> bool:
        """Record job j's step and log what is due; True when a snapshot is due too."""
        job, (kernel, bias) = self.jobs[j], self._split(params)
        if self.first_loss[j] is None:
            self.first_loss[j] = loss
        error = kernel_error(kernel, job.target)
        self.last_loss[j], self.last_params[j], self.steps_done[j] = loss, params, step
        self.last_error[j] = error
        last = step == job.last_step
        if step % job.log_every == 0 or last:
            job.tracker.log_step(step, loss, kernel, bias, error)
        if step % job.print_every == 0:
            job.log.info("step %d, loss %s", step, number(loss))
        return step % job.snapshot_every == 0 or last

    def _split(self, params: list[float]) -> tuple[list[float], Bias]:
        """A job's kernel (flat) and bias (a float; a list with several output channels) from
        its slice of a row."""
        kernel, bias = params[: self.kernel_size], params[self.kernel_size :]
        return kernel, (bias if len(bias) > 1 else bias[0]) if bias else None
