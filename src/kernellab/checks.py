"""What a run is checked for before anything is written: its values, device, memory and resume.

`check(cfg, run_dir)` gives a `Checked`: the config resolved to plain Python, its geometry, the
device, the backend (`auto` resolved), the checkpoint it continues, or the metrics of the
finished run `trainer.resume=auto` finds. Preflight calls it before Hydra makes a dir; the job's
lifecycle (kernellab.lifecycle) before training; `train_group` for direct callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kernellab import batching, checkpoint, paths, runtime
from kernellab.backends import channels_refusal, device_refusal, resolve
from kernellab.checkpoint import CHECKPOINT_FILE, Checkpoint
from kernellab.data import input_image, target_image
from kernellab.errors import ConfigError
from kernellab.optim import probe_optimizer
from kernellab.paths import AUTO_RESUME
from kernellab.registry import IMAGES
from kernellab.resolved import AnyConfig, Resolved, resolved
from kernellab.rundir import read_metrics
from kernellab.validation import Geometry, validate


@dataclass(frozen=True)
class Checked:
    """What `check` established about a run's config."""

    config: Resolved  # the config checked, resolved to plain Python
    geometry: Geometry
    device: torch.device
    backend: str  # `model.backend`, `auto` resolved
    resumed: Checkpoint | None  # what `trainer.resume` names, fit for this config
    finished: dict[str, Any] | None = None  # `trainer.resume=auto` in a finished run: its metrics


def check(cfg: AnyConfig, run_dir: Path | None = None, geometry: Geometry | None = None) -> Checked:
    """Everything `train` would refuse before writing anything: values, device, memory, the
    optimizer (built and stepped on throw-away parameters of the run's shapes), the resume. (A
    group's memory is sized by batching.max_group_size; this checks one job's.)
    `run_dir`: where the run will train, for `trainer.resume=auto`; `geometry`: what
    `validate(cfg)` gave, if the caller has validated the values already."""
    cfg = resolved(cfg)
    geometry = geometry or validate(cfg)
    device = runtime.resolve_device(cfg.trainer.device)
    if cfg.trainer.cuda_graph:
        require_cuda_for_graphs(device)
    backend = backend_of(cfg, geometry, device)
    for refusal in (device_refusal(backend, device), channels_refusal(backend, geometry.channels)):
        if refusal is not None:
            raise ConfigError("model.backend", backend, refusal)
    _check_memory(geometry, backend, device)
    t = cfg.task
    if t.image not in IMAGES:  # decoded now (and kept): a broken file leaves no run dir
        input_image(t.height, t.width, t.stripe, t.image, "vertical", t.resize, t.channels)
    if t.target_image is not None:
        target_image(t.target_image, "vertical", t.channels)
    probe_optimizer(cfg.optim, _parameter_shapes(geometry, cfg.model.bias), device)
    if cfg.trainer.resume == AUTO_RESUME:
        finished = _finished_run(run_dir, cfg.trainer.steps) if run_dir else None
        if finished is not None:
            return Checked(cfg, geometry, device, backend, None, finished)
        if not (run_dir and (run_dir / CHECKPOINT_FILE).is_file()):
            return Checked(cfg, geometry, device, backend, None)  # nothing to continue: a new run
    elif cfg.trainer.resume and run_dir is not None:
        _require_resume_in_its_own_dir(cfg.trainer.resume, run_dir)
    return Checked(cfg, geometry, device, backend, _resume_point(cfg, geometry, run_dir))


def _parameter_shapes(geometry: Geometry, bias: bool) -> list[tuple[int, ...]]:
    """The shapes of a run's parameters (kernellab.model.Conv2D): the kernel, then the bias."""
    kernel = geometry.kernel_shape
    return [kernel, kernel[:1]] if bias else [kernel]


def _check_memory(geometry: Geometry, backend: str, device: torch.device) -> None:
    """Refuse a run whose tensors can't fit, before allocating any (a 30000² image needs 18 GB)."""
    needed = batching.job_bytes(geometry, backend)
    available = batching.available_memory(device)
    if needed <= available:
        return
    (h, w), (oh, ow) = geometry.input_shape, geometry.output_shape
    key, value = "model.padding", geometry.padding[0]
    if oh * ow <= 4 * h * w:  # the image itself, not the padding, is what is too big
        key, value = "task.height", h
    raise ConfigError(
        key,
        value,
        f"a {h}x{w} image with a {oh}x{ow} output needs about {needed / 1e9:.3g} GB on {device},"
        f" and {available / 1e9:.3g} GB is available: use a smaller image or padding",
    )


def _finished_run(run_dir: Path, steps: int) -> dict[str, Any] | None:
    """The metrics of the run in `run_dir` if it has nothing left to do: diverged, or completed
    with at least `steps` steps (one asked for more continues from its checkpoint, as
    `trainer.resume=<its dir>` with more steps does)."""
    try:
        metrics = read_metrics(run_dir)
    except (OSError, ValueError):
        return None
    status, done = metrics.get("status"), metrics.get("steps_completed")
    if status == "completed" and isinstance(done, int) and done < steps:
        return None if (run_dir / CHECKPOINT_FILE).is_file() else metrics
    return metrics if status in ("completed", "diverged") else None


def _require_resume_in_its_own_dir(resume: str, run_dir: Path) -> None:
    """`trainer.resume=<dir>` continues that run in that dir: another run dir (an explicit
    `hydra.run.dir`) would silently pick one of the two."""
    own = Path(paths.run_dir(resume, ""))
    if own.resolve() != run_dir.resolve():
        raise ConfigError(
            "trainer.resume",
            resume,
            f"continues the run in {own}, but the run dir is {run_dir} (hydra.run.dir): a resume"
            " trains in its run's own dir; leave hydra.run.dir out",
        )


def _resume_point(cfg: AnyConfig, geometry: Geometry, run_dir: Path | None) -> Checkpoint | None:
    """The checkpoint `trainer.resume` names, checked against this config; None for a new run."""
    if not cfg.trainer.resume:
        return None
    state = checkpoint.load(run_dir if cfg.trainer.resume == AUTO_RESUME else cfg.trainer.resume)
    channels = state.channels != list(geometry.channels)
    if (
        state.kernel_shape != list(geometry.kernel_size)
        or state.has_bias != cfg.model.bias
        or channels
    ):
        theirs, ours = (
            (f", channels {state.channels}", f", channels {list(geometry.channels)}")
            if channels
            else ("", "")
        )
        raise ConfigError(
            "trainer.resume",
            cfg.trainer.resume,
            f"its model has kernel {state.kernel_shape}, bias {state.has_bias}{theirs}; this config"
            f" has {list(geometry.kernel_size)}, bias {cfg.model.bias}{ours}: resume with the"
            " run's own model settings",
        )
    if state.step > cfg.trainer.steps:
        raise ConfigError(
            "trainer.steps",
            cfg.trainer.steps,
            f"must be >= the checkpoint's step {state.step} to resume",
        )
    return state


def backend_of(cfg: AnyConfig, geometry: Geometry, device: torch.device) -> str:
    """`model.backend`, with `auto` resolved for this problem and device."""
    (oh, ow) = geometry.output_shape
    return resolve(cfg.model.backend, device.type, oh * ow, geometry.channels != (1, 1))


def require_cuda_for_graphs(device: torch.device) -> None:
    """`trainer.cuda_graph` needs a CUDA device."""
    if device.type != "cuda":
        raise ConfigError("trainer.cuda_graph", True, f"needs a CUDA device, not {device}")
