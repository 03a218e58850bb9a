"""The training step and the loop around it: recording, divergence, interruption, CUDA graphs."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kernellab.model import Conv2D
from kernellab.signals import StopRequest
from kernellab.tracking import StepBuffer, TensorBoardTracker

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0  # console and event files lag training by at most this much
BUFFER_ROWS = 1024
CUDA_GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before capture, as PyTorch advises

Step = Callable[[], torch.Tensor]


def make_step(model: Conv2D, optimizer, X: torch.Tensor, Y: torch.Tensor) -> Step:
    """One full-batch gradient step; returns the loss computed before the update."""

    def step() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.mse_loss(model(X), Y, reduction="sum")  # the book's sum of squared errors
        loss.backward()
        optimizer.step()
        return loss.detach()  # the value only: holding the autograd graph would outlive the step

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
    status: str  # completed | diverged | interrupted
    steps_completed: int
    first_loss: float | None
    last_loss: float | None
    kernel: torch.Tensor | None  # after the last completed step's update (from the buffer)
    bias: float | None
    diverged_at_step: int | None = None
    signal_name: str | None = None


def fit(
    step: Step,
    first: int,
    last: int,
    progress: Progress,
    stop: StopRequest,
) -> Outcome:
    """Run steps first..last; stop early on a non-finite loss or a stop request."""
    for number in range(first, last + 1):
        loss = step()
        if progress.record(number, loss) or stop.requested:
            break
    progress.flush()
    if progress.diverged_at is not None:
        return progress.outcome("diverged")
    return progress.outcome("interrupted" if stop.requested else "completed", stop.signal_name)


class Progress:
    """Each step's loss and kernel, buffered on the device and written out in batches.

    Writing to TensorBoard and the console, and checking the loss is finite, happen at a flush:
    when the buffer is full or a second has passed, so the loop never waits on the host.
    """

    def __init__(
        self,
        tracker: TensorBoardTracker,
        model: Conv2D,
        *,
        last_step: int,
        log_every: int,
        snapshot_every: int,
        print_every: int,
        resumed: tuple[int, float | None, float | None] = (0, None, None),
    ) -> None:
        """`resumed`: (steps already done, their first and last loss) when continuing a run."""
        self.tracker, self.last_step = tracker, last_step
        self.log_every = log_every
        self.snapshot_every = snapshot_every
        self.print_every = print_every
        self.kernel_shape = tuple(model.kernel.shape)
        self.kernel_size = model.kernel.numel()
        self.has_bias = model.bias is not None
        # detached views share the parameters' storage, so they follow every in-place update
        self.values = [model.weight.detach().view(-1)]
        if self.has_bias:
            self.values.append(model.bias.detach())
        self.buffer = StepBuffer(
            1 + sum(v.numel() for v in self.values), BUFFER_ROWS, model.weight.device
        )
        self.next_flush = time.perf_counter() + FLUSH_SECONDS
        self.last_step_done, self.first_loss, self.last_loss = resumed
        self.last_row: list[float] | None = None
        self.diverged_at: int | None = None

    def record(self, step: int, loss: torch.Tensor) -> bool:
        """Buffer this step; True once a flush has found the loss diverged."""
        self.buffer.record(step, [loss.reshape(1), *self.values])
        if self.buffer.full or time.perf_counter() >= self.next_flush:
            self.flush()
        return self.diverged_at is not None

    def flush(self) -> None:
        steps, rows = self.buffer.drain()
        for step, row in zip(steps, rows, strict=True):
            if not math.isfinite(row[0]):
                self.diverged_at = step
                break
            self._write(step, row)
        self.tracker.flush()
        self.next_flush = time.perf_counter() + FLUSH_SECONDS

    def outcome(self, status: str, signal_name: str | None = None) -> Outcome:
        kernel, bias = None, None
        if self.last_row is not None:
            flat, bias = self._split(self.last_row)
            kernel = torch.tensor(flat).view(self.kernel_shape)
        return Outcome(
            status=status,
            steps_completed=self.last_step_done,
            first_loss=self.first_loss,
            last_loss=self.last_loss,
            kernel=kernel,
            bias=bias,
            diverged_at_step=self.diverged_at,
            signal_name=signal_name,
        )

    def _write(self, step: int, row: list[float]) -> None:
        loss, (kernel, bias) = row[0], self._split(row)
        if self.first_loss is None:
            self.first_loss = loss
        self.last_loss, self.last_row, self.last_step_done = loss, row, step
        last = step == self.last_step
        if step % self.log_every == 0 or last:
            self.tracker.log_step(step, loss, kernel, bias)
        if step % self.snapshot_every == 0 or last:
            self.tracker.log_snapshot(step, torch.tensor(kernel).view(self.kernel_shape))
        if step % self.print_every == 0:
            log.info("step %d, loss %.4g", step, loss)

    def _split(self, row: list[float]) -> tuple[list[float], float | None]:
        """A buffered row's kernel (flat) and bias; row[0] is the loss."""
        return row[1 : 1 + self.kernel_size], row[1 + self.kernel_size] if self.has_bias else None
