"""A training run: build the task and model from a config, fit, and leave the results on disk.

`train(cfg, run_dir)` is pure of Hydra's runtime, so tests and notebooks call it directly;
`train.py` at the top level is the thin Hydra entry around it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from kernellab import artifacts, runtime
from kernellab.config import ConfigError, Geometry, validate
from kernellab.data import Task, input_image, make_task, target_kernel
from kernellab.loop import CudaGraphStep, Outcome, Progress, fit, make_step
from kernellab.model import Conv2D
from kernellab.optim import GradientDescent
from kernellab.signals import StopRequest
from kernellab.tracking import TensorBoardTracker, hyperparameters

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What `metrics.json` holds."""

    status: str  # completed | diverged | interrupted (the CLI adds failed)
    final_loss: float | None  # loss computed at the last completed step; None if there is none
    initial_loss: float | None
    weight: list[list[float]]
    bias: float | None
    steps_completed: int
    output_shape: list[int]
    device: str
    num_threads: int
    wall_time_s: float  # the training loop, logging included, summed over resumed sessions
    steps_per_s: float
    versions: dict[str, str]
    diverged_at_step: int | None = None
    signal: str | None = None

    @property
    def objective(self) -> float:
        """What a sweeper minimises: the final loss, or inf when the run has none (diverged)."""
        return math.inf if self.final_loss is None else self.final_loss


def train(cfg: DictConfig, run_dir: Path) -> TrainResult:
    geometry = validate(cfg)
    device = runtime.resolve_device(cfg.trainer.device)
    checkpoint = artifacts.load_checkpoint(cfg.trainer.resume) if cfg.trainer.resume else None
    artifacts.ensure_writable(run_dir)
    threads = runtime.choose_num_threads(
        cfg.trainer.num_threads, _multiply_adds(geometry), runtime.cores_for_this_job()
    )
    torch.set_num_threads(threads)

    torch.manual_seed(cfg.seed)
    task = _build_task(cfg, geometry, device)
    model = _build_model(cfg, geometry).to(device)
    optimizer = instantiate(cfg.optim)(model.parameters())
    # (1, 1, h, w): the layout F.conv2d takes, so the step reshapes nothing
    step = make_step(model, optimizer, task.image[None, None], task.target[None, None])
    if cfg.trainer.cuda_graph:
        step = _graphed(step, device, optimizer)

    done, wall_before, losses = 0, 0.0, (None, None)
    if checkpoint is not None:
        _restore(cfg, checkpoint, model, optimizer)
        done, wall_before = checkpoint["step"], checkpoint["wall_time_s"]
        losses = checkpoint["initial_loss"], checkpoint["final_loss"]

    tracker = TensorBoardTracker(
        run_dir, geometry.kernel_size, purge_step=done + 1 if done else None
    )
    if checkpoint is None:
        _log_run_start(tracker, cfg, task)
    progress = Progress(
        tracker,
        model,
        last_step=cfg.trainer.steps,
        log_every=cfg.logger.log_every,
        snapshot_every=cfg.logger.snapshot_every or max(1, math.ceil(cfg.trainer.steps / 10)),
        print_every=cfg.trainer.print_every,
        resumed=(done, *losses),
    )
    start = time.perf_counter()
    with StopRequest() as stop:
        outcome = fit(step, done + 1, cfg.trainer.steps, progress, stop)
    wall = wall_before + time.perf_counter() - start

    if outcome.status == "diverged":
        log.warning(
            "loss is not finite at step %d: training stopped; try a smaller optim.lr (now %g)",
            outcome.diverged_at_step,
            cfg.optim.lr,
        )
    else:
        with torch.no_grad():
            tracker.log_image("data/prediction", model(task.image), outcome.steps_completed)
    tracker.close()

    result = _result(outcome, model, geometry, device, threads, wall)
    if outcome.status != "diverged":  # a diverged model is not worth resuming
        artifacts.save_checkpoint(run_dir, _checkpoint(result, model, optimizer))
    artifacts.write_metrics(run_dir, asdict(result))
    return result


def _restore(cfg: DictConfig, checkpoint: dict[str, Any], model: Conv2D, optimizer) -> None:
    _check_compatible(cfg, checkpoint, model)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    torch.set_rng_state(checkpoint["rng"])
    log.info("resuming %s at step %d", cfg.trainer.resume, checkpoint["step"] + 1)


def _checkpoint(result: TrainResult, model: Conv2D, optimizer) -> dict[str, Any]:
    """What `trainer.resume` needs to continue bit for bit (see artifacts.CHECKPOINT_KEYS)."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": result.steps_completed,
        "rng": torch.get_rng_state(),
        "initial_loss": result.initial_loss,
        "final_loss": result.final_loss,
        "wall_time_s": result.wall_time_s,
    }


def _result(
    outcome: Outcome, model: Conv2D, geometry: Geometry, device, threads: int, wall: float
) -> TrainResult:
    if outcome.kernel is not None:  # the buffered values: for a diverged run, the last finite ones
        weight, bias = outcome.kernel.tolist(), outcome.bias
    else:  # nothing recorded (0 steps, or diverged at once): the model as it is, inf/nan as null
        weight = [[_finite_or_none(v) for v in row] for row in model.kernel.detach().cpu().tolist()]
        bias = _finite_or_none(model.bias.item()) if model.bias is not None else None
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
        diverged_at_step=outcome.diverged_at_step,
        signal=outcome.signal_name,
    )


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _build_task(cfg: DictConfig, geometry: Geometry, device: torch.device) -> Task:
    t = cfg.task
    # drawn on the CPU, so a seed gives the same image on every device
    image = input_image(t.height, t.width, t.stripe, t.image, t.orientation).to(device)
    kernel = target_kernel(geometry.target_kernel, t.orientation)
    return make_task(image, kernel, geometry.kernel_size, geometry.padding, geometry.stride)


def _build_model(cfg: DictConfig, geometry: Geometry) -> Conv2D:
    return Conv2D(
        geometry.kernel_size,
        geometry.padding,
        geometry.stride,
        bias=cfg.model.bias,
        init=cfg.model.init,
        backend=cfg.model.backend,
    )


def _graphed(step, device: torch.device, optimizer) -> CudaGraphStep:
    if device.type != "cuda":
        raise ConfigError("trainer.cuda_graph", True, f"needs a CUDA device, not {device}")
    if not isinstance(optimizer, GradientDescent):
        raise ConfigError("trainer.cuda_graph", True, "works with optim=sgd only")
    return CudaGraphStep(step)


def _check_compatible(cfg: DictConfig, checkpoint: dict[str, Any], model: Conv2D) -> None:
    """The checkpoint must fit this model; `trainer.steps` may grow to extend a finished run."""
    saved = checkpoint["model"]
    if saved["weight"].shape != model.weight.shape or ("bias" in saved) != (model.bias is not None):
        raise ConfigError(
            "trainer.resume",
            cfg.trainer.resume,
            f"its model has kernel {list(saved['weight'].shape[2:])}, bias {'bias' in saved}; "
            f"this config has {list(model.kernel.shape)}, bias {model.bias is not None}: "
            "resume with the run's own model settings",
        )
    if checkpoint["step"] > cfg.trainer.steps:
        raise ConfigError(
            "trainer.steps",
            cfg.trainer.steps,
            f"must be >= the checkpoint's step {checkpoint['step']} to resume",
        )


def _log_run_start(tracker: TensorBoardTracker, cfg: DictConfig, task: Task) -> None:
    tracker.log_config(OmegaConf.to_yaml(cfg, resolve=True))
    tracker.log_hparams(hyperparameters(cfg))
    tracker.log_image("data/input", task.image)
    tracker.log_image("data/target", task.target)
    tracker.log_image("data/target_kernel", task.kernel)


def _multiply_adds(geometry: Geometry) -> int:
    (oh, ow), (kh, kw) = geometry.output_shape, geometry.kernel_size
    return oh * ow * kh * kw


def _versions() -> dict[str, str]:
    import hydra

    return {"torch": torch.__version__, "hydra": hydra.__version__}


def summary_lines(result: TrainResult) -> list[str]:
    bias = None if result.bias is None else _rounded(result.bias)
    return [f"weight: {_rounded(result.weight)}", f"bias: {bias}"]


def _rounded(value: Any) -> Any:
    return [_rounded(v) for v in value] if isinstance(value, list) else round(value, 4)
