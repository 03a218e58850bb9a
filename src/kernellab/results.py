"""What a run leaves when it ends: its `TrainResult` (metrics.json) and its last checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from kernellab.build import Member
from kernellab.checkpoint import CHECKPOINT_FILE, Checkpoint
from kernellab.data import kernel_error
from kernellab.lifecycle import objective
from kernellab.loop import Outcome
from kernellab.ops import conv2d_in_bands
from kernellab.rundir import METRICS_FILE, metrics_json
from kernellab.tracking import PREDICTION_TAG, TensorBoardTracker


@dataclass
class TrainResult:
    """What `metrics.json` holds."""

    status: str  # completed | diverged | interrupted (the CLI adds failed)
    final_loss: float | None  # loss computed at the last completed step; None if there is none
    initial_loss: float | None
    weight: list[Any]  # [[...]] (kh, kw); with channels (out, in, kh, kw)
    bias: float | list[float] | None  # a list: one per output channel, with several
    steps_completed: int
    output_shape: list[int]
    device: str
    num_threads: int
    wall_time_s: float  # the training loop, logging included, summed over resumed sessions
    steps_per_s: float
    versions: dict[str, str]
    kernel_error: float | None = None  # Frobenius distance of `weight` from the target kernel
    diverged_at_step: int | None = None
    signal: str | None = None

    def objective(self, name: str = "final_loss") -> float:
        """What a sweeper minimises (`objective`: final_loss or kernel_error); inf when the run
        has none (it diverged)."""
        return objective(vars(self), name)


def finish(
    member: Member,
    outcome: Outcome,
    tracker: TensorBoardTracker,
    device: torch.device,
    threads: int,
    wall: float,
) -> tuple[TrainResult, list[tuple[Path, bytes]]]:
    """Close the job's event file; its result, and its checkpoint (unless it diverged) and
    metrics.json to write."""
    job, model = member.job, member.model
    if outcome.status == "diverged":
        job.log.warning(
            "diverged: the loss at step %d %s; training stopped; try a smaller optim.lr (now %g)",
            outcome.diverged_at_step,
            outcome.diverged_because,
            job.cfg.optim.lr,
        )
    else:
        with torch.no_grad():
            prediction = conv2d_in_bands(
                member.task.image, model.kernel, model.bias, model.padding, model.stride
            )
            tracker.log_image(PREDICTION_TAG, prediction, outcome.steps_completed)
    tracker.close()
    wall += _wall_before(member)
    result = _result(outcome, member, device, threads, wall)
    files = [(job.run_dir / METRICS_FILE, metrics_json(asdict(result)))]
    if outcome.status != "diverged":  # a diverged model is not worth resuming
        done = (result.steps_completed, result.initial_loss, result.final_loss)
        state = checkpoint_of(member, done, wall - _wall_before(member))
        files.insert(0, (job.run_dir / CHECKPOINT_FILE, state.encode()))
    return result, files


def checkpoint_of(
    member: Member, done: tuple[int, float | None, float | None], wall: float
) -> Checkpoint:
    """The member's state now: `done` is (steps completed, first loss, last loss); `wall` this
    session's training time."""
    steps, first_loss, last_loss = done
    return Checkpoint(
        # copies: a group's parameters are views of one storage, which torch.save would save whole
        model={name: value.clone() for name, value in member.model.state_dict().items()},
        optimizer=member.optimizer.state_dict(),
        step=steps,
        rng=member.rng,
        initial_loss=first_loss,
        final_loss=last_loss,
        wall_time_s=_wall_before(member) + wall,
    )


def _wall_before(member: Member) -> float:
    return member.resumed.wall_time_s if member.resumed else 0.0


def _result(outcome: Outcome, member: Member, device, threads: int, wall: float) -> TrainResult:
    model, geometry = member.model, member.geometry
    if outcome.kernel is not None:  # the buffered values: for a diverged run, the last finite ones
        weight, bias, error = outcome.kernel.tolist(), outcome.bias, outcome.kernel_error
    else:  # nothing recorded (0 steps, or diverged at once): the model as it is
        kernel = model.kernel.detach().cpu()
        weight = kernel.tolist()
        bias = None if model.bias is None else model.bias.tolist()
        bias = bias[0] if bias and len(bias) == 1 else bias
        truth = member.task.kernel
        error = kernel_error(
            kernel.flatten().tolist(), None if truth is None else truth.flatten().tolist()
        )
    diverged = outcome.status == "diverged"
    return TrainResult(
        status=outcome.status,
        final_loss=None if diverged else outcome.last_loss,
        initial_loss=outcome.first_loss,
        weight=weight,
        bias=bias,
        steps_completed=outcome.steps_completed,
        output_shape=list(geometry.output_shape),
        device=str(device),
        num_threads=threads,
        wall_time_s=wall,
        steps_per_s=outcome.steps_completed / wall if wall > 0 else 0.0,
        versions=_versions(),
        kernel_error=error,
        diverged_at_step=outcome.diverged_at_step,
        signal=outcome.signal_name,
    )


def _versions() -> dict[str, str]:
    import hydra

    return {"torch": torch.__version__, "hydra": hydra.__version__}
