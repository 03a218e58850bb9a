"""Building a job from its config: its task (image, target kernel, target), model and optimizer.

Everything a job draws is drawn from its own seed, exactly as a single run draws it, so a job
trained in a group learns what it learns alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from kernellab.checkpoint import Checkpoint
from kernellab.checks import backend_of
from kernellab.data import Task, input_image, make_task, target_image, target_kernel
from kernellab.errors import ConfigError
from kernellab.model import Conv2D
from kernellab.optim import optimizer_arguments, optimizer_class
from kernellab.paths import AUTO_RESUME
from kernellab.resolved import AnyConfig
from kernellab.validation import Geometry

if TYPE_CHECKING:
    from kernellab.training import Job


@dataclass
class Member:
    """A job inside a group being trained: what was built for it."""

    job: Job
    geometry: Geometry
    task: Task
    model: Conv2D
    optimizer: object
    rng: torch.Tensor  # torch's RNG state after this job's initialisation
    resumed: Checkpoint | None


def member(
    job: Job,
    geometry: Geometry,
    resumed: Checkpoint | None,
    device: torch.device,
) -> Member:
    cfg = job.cfg
    # Everything a run draws is drawn on the CPU. torch.manual_seed would also queue a seeding of
    # every CUDA device, capturing a stack trace each time until CUDA starts: ~1 ms a job.
    torch.default_generator.manual_seed(cfg.seed)
    task = _build_task(cfg, geometry, device)
    model = _build_model(cfg, geometry, device).to(device)
    optimizer = optimizer_class(cfg.optim)(model.parameters(), **optimizer_arguments(cfg.optim))
    if resumed is not None:
        try:
            model.load_state_dict(resumed.model)
            optimizer.load_state_dict(resumed.optimizer)
        except (RuntimeError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                "trainer.resume",
                cfg.trainer.resume,
                f"its optimizer or model state does not fit this config ({error}); resume with "
                "the run's own optim and model settings",
            ) from None
        torch.set_rng_state(resumed.rng)
        job.log.info(
            "resuming %s at step %d",
            job.run_dir if cfg.trainer.resume == AUTO_RESUME else cfg.trainer.resume,
            resumed.step + 1,
        )
    return Member(job, geometry, task, model, optimizer, torch.get_rng_state(), resumed)


def stacked_data(members: list[Member]) -> tuple[torch.Tensor, torch.Tensor]:
    """X (1, 1 or N, h, w): one image when every job has the same; Y (1, N, oh, ow). With
    channels, each job's in (out) channels one after another: X (1, in or N·in, h, w), Y (1,
    N·out, oh, ow)."""
    images = [m.task.image for m in members]
    shared = all(image is images[0] or torch.equal(image, images[0]) for image in images)
    targets = [m.task.target for m in members]
    if images[0].dim() == 3:
        X = images[0][None] if shared else torch.cat(images)[None]
        return X, torch.cat(targets)[None]
    X = images[0][None, None] if shared else torch.stack(images)[None]
    return X, torch.stack(targets)[None]


def _build_task(cfg: AnyConfig, geometry: Geometry, device: torch.device) -> Task:
    t = cfg.task
    # drawn on the CPU, so a seed gives the same image on every device
    image = input_image(t.height, t.width, t.stripe, t.image, t.orientation, t.resize, t.channels)
    kernel = target_kernel(geometry.target_kernel, t.orientation)
    target = target_image(t.target_image, t.orientation, t.channels)
    if geometry.channels != (1, 1):  # the layer's layout: (in, h, w) and (out, oh, ow)
        image = image if image.dim() == 3 else image[None]
        target = target if target is None or target.dim() == 3 else target[None]
    image = image.to(device)
    return make_task(
        image, kernel, geometry.kernel_size, geometry.padding, geometry.stride, target=target
    )


def _build_model(cfg: AnyConfig, geometry: Geometry, device: torch.device) -> Conv2D:
    return Conv2D(
        geometry.kernel_size,
        geometry.padding,
        geometry.stride,
        bias=cfg.model.bias,
        init=cfg.model.init,
        backend=backend_of(cfg, geometry, device),
        channels=geometry.channels,
    )


def multiply_adds(geometry: Geometry) -> int:
    (oh, ow), (out, inp, kh, kw) = geometry.output_shape, geometry.kernel_shape
    return oh * ow * out * inp * kh * kw
