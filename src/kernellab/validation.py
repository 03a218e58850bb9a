"""Every value check Hydra's types can't do, and the shapes of a run they establish (`Geometry`).

`validate(cfg)` raises ConfigError on the first bad value, naming the key, the value and what is
allowed; it runs before Hydra creates a run dir (callbacks.Preflight) and again in train(). The
allowed names come from the registries (kernellab.registry, kernellab.backends); the optimizer's
checks are kernellab.optim's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import ListConfig, OmegaConf

from kernellab.backends import AUTO, BACKENDS, size_refusal
from kernellab.config import OBJECTIVES
from kernellab.errors import require
from kernellab.image_files import NO_SUCH_FILE, photo_channels, photo_size
from kernellab.registry import IMAGES, INITS, NAMED_KERNELS
from kernellab.resolved import AnyConfig
from kernellab.runtime import require_device_name
from kernellab.shapes import Pair, output_shape, pair

MAX_SEED = 2**63  # torch.manual_seed takes a signed 64-bit seed
# Every other int (sizes, steps, intervals, threads) stays below 2^31: torch's convolutions and
# the OS take C ints, and a Python int is unbounded (`model.stride=2^63` overflowed in conv2d)
MAX_INT = 2**31 - 1
FLOAT32_MAX = 3.4028234663852886e38
BOOK_KERNEL = [[-1.0, 1.0]]  # `task.target_kernel=null` without a target image: the book's
CHANNELS = {"gray": 1, "rgb": 3}  # `task.channels`: the image's channels
Kernel = list[Any]  # a target kernel: a matrix, or an (out, in, kh, kw) nested list


@dataclass(frozen=True)
class Geometry:
    """The validated shapes of a run."""

    # as written (a name resolved), before `horizontal`; None: no ground truth (a target image)
    target_kernel: Kernel | None
    kernel_size: Pair
    padding: Pair
    stride: Pair
    input_shape: Pair
    output_shape: Pair
    channels: Pair = (1, 1)  # (out, in): (1, 1) is the book's single-channel layer

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        """The model's weight, (out, in, kh, kw)."""
        return (*self.channels, *self.kernel_size)


def validate(cfg: AnyConfig) -> Geometry:
    """Check every value Hydra's types let through; raise ConfigError on the first bad one."""
    require(0 <= cfg.seed < MAX_SEED, "seed", cfg.seed, "must be an int in [0, 2^63)")
    _require_choice("objective", cfg.objective, OBJECTIVES)
    task, model = cfg.task, cfg.model
    _require_int("task.height", task.height, 1)
    _require_int("task.width", task.width, 1)
    stripe = list(task.stripe)
    require(
        len(stripe) == 2 and 0 <= stripe[0] <= stripe[1] <= task.width,
        "task.stripe",
        stripe,
        f"must be [a, b] with 0 <= a <= b <= task.width ({task.width})",
    )
    _require_choice("task.orientation", task.orientation, ("vertical", "horizontal"))
    target = _target_kernel(task.target_kernel, task.target_image is not None)
    _require_ground_truth(cfg, target)
    target_hw = kernel_dims(target)[1] if target else (1, 1)
    input_hw, picture = _input_shape(task)
    channels = _channels(cfg, target)
    if task.orientation == "horizontal":
        target_hw, input_hw = target_hw[::-1], input_hw[::-1]

    if model.kernel_size is None:
        require(
            target is not None,
            "model.kernel_size",
            None,
            "must be given with task.target_image and no task.target_kernel (the shape to learn),"
            " e.g. model.kernel_size=5",
        )
        kernel_size = target_hw
    else:
        kernel_size = _pair("model.kernel_size", model, 1)
    require(
        kernel_size[0] >= target_hw[0] and kernel_size[1] >= target_hw[1],
        "model.kernel_size",
        list(kernel_size),
        f"must be at least the target kernel's shape {list(target_hw)} on each axis",
    )
    padding = _pair("model.padding", model, 0)
    stride = _pair("model.stride", model, 1)
    padded = (input_hw[0] + 2 * padding[0], input_hw[1] + 2 * padding[1])
    require(
        kernel_size[0] <= padded[0] and kernel_size[1] <= padded[1],
        "model.kernel_size",
        list(kernel_size),
        f"must fit the padded input {list(padded)} ({picture} {list(input_hw)} + padding)",
    )
    require(isinstance(model.bias, bool), "model.bias", model.bias, "must be true or false")
    _require_choice("model.init", model.init, INITS)
    _require_choice("model.backend", model.backend, (AUTO, *BACKENDS))
    outputs = output_shape(input_hw, kernel_size, padding, stride)
    if task.target_image is not None:
        _require_target_image_size(task, picture, input_hw, (kernel_size, padding, stride), outputs)
    too_big = size_refusal(model.backend, outputs[0] * outputs[1])
    require(too_big is None, "model.backend", model.backend, str(too_big))
    _validate_trainer_and_logger(cfg)
    _validate_optimizer(cfg)  # last: the only check that imports torch
    return Geometry(
        target_kernel=target,
        kernel_size=kernel_size,
        padding=padding,
        stride=stride,
        input_shape=input_hw,
        output_shape=outputs,
        channels=channels,
    )


def _input_shape(task: AnyConfig) -> tuple[Pair, str]:
    """The picture's (height, width) before `horizontal`, and how to name it in a message."""
    resize = task.resize
    if resize is not None:
        require(
            len(resize) == 2 and all(_is_int(v) and 1 <= v <= MAX_INT for v in resize),
            "task.resize",
            resize,
            f"must be [height, width] of ints in [1, {MAX_INT}], or null",
        )
    if task.image in IMAGES:
        require(
            resize is None,
            "task.resize",
            resize,
            f"resizes a picture file; the `{task.image}` picture is drawn at task.height x "
            "task.width: set those, or task.resize=null",
        )
        return (task.height, task.width), "image"
    size = photo_size(task.image)
    if size == NO_SUCH_FILE:  # perhaps a misspelt name
        size += f": must be one of {', '.join(IMAGES)}, or the path of a picture file"
    require(isinstance(size, tuple), "task.image", task.image, str(size))
    shape = tuple(resize) if resize is not None else size
    return shape, f"image {task.image}"


def _channels(cfg: AnyConfig, target: Kernel | None) -> Pair:
    """The layer's (out, in) channels: `model.*_channels`, or where null the images' and the
    target's; every one given must agree."""
    task, model = cfg.task, cfg.model
    _require_choice("task.channels", task.channels, CHANNELS)
    require(
        task.channels == "gray" or task.image not in IMAGES,
        "task.channels",
        task.channels,
        f"must be gray for the drawn `{task.image}` picture (one channel): rgb takes a picture"
        " file's three colour channels",
    )
    for key in ("model.in_channels", "model.out_channels"):
        value = model[key.rsplit(".", 1)[1]]
        if value is not None:
            _require_int(key, value, 1, " or null")
    kernel_channels = kernel_dims(target)[0] if target else None
    image_in, target_out = CHANNELS[task.channels], _target_image_channels(task)
    in_channels = model.in_channels or image_in
    out_channels = model.out_channels or target_out or (kernel_channels or (1, 1))[0]
    _require_channels_fit(task, target, (out_channels, in_channels), image_in, target_out)
    return out_channels, in_channels


def _require_channels_fit(
    task: AnyConfig, target: Kernel | None, layer: Pair, image_in: int, target_out: int | None
) -> None:
    """The layer's (out, in) must be the image's channels, the target image's and the target
    kernel's; a refusal names both shapes."""
    out_channels, in_channels = layer
    model = f"the model would be (out {out_channels}, in {in_channels})"
    require(
        in_channels == image_in,
        "model.in_channels",
        in_channels,
        f"must be the image's {image_in} channel(s) (task.channels={task.channels}): {model}",
    )
    require(
        target_out is None or out_channels == target_out,
        "model.out_channels",
        out_channels,
        f"must be the target image's {target_out} channel(s): {model}",
    )
    if target is None:
        return
    shape = nested_shape(target) or ()
    require(
        kernel_dims(target)[0] == layer,
        "task.target_kernel",
        task.target_kernel,
        f"must have the model's channels: its shape is {list(shape)}"
        + (" (a matrix: out 1, in 1)" if len(shape) == 2 else "")
        + f" and {model}; give an (out, in, kh, kw) nested list",
    )


def _target_image_channels(task: AnyConfig) -> int | None:
    """A target image's channels: 1 with task.channels=gray, else as the file stores it
    (a file that can't be read is refused by its size check)."""
    if task.target_image is None:
        return None
    if task.channels == "gray":
        return 1
    channels = photo_channels(task.target_image)
    return channels if isinstance(channels, int) else None


def _require_ground_truth(cfg: AnyConfig, target: Kernel | None) -> None:
    """`objective=kernel_error` needs a kernel to measure the learned one against."""
    require(
        target is not None or cfg.objective != "kernel_error",
        "objective",
        cfg.objective,
        "needs a ground truth: give task.target_kernel beside task.target_image, or use"
        " objective=final_loss",
    )


def _require_target_image_size(
    task: AnyConfig, picture: str, input_hw: Pair, conv: tuple[Pair, Pair, Pair], outputs: Pair
) -> None:
    """The target image must be the convolution's output, pixel for pixel (`horizontal`: after
    transposing it with the image)."""
    size = photo_size(task.target_image)
    require(isinstance(size, tuple), "task.target_image", task.target_image, str(size))
    if task.orientation == "horizontal":
        size = size[::-1]
    (kh, kw), padding, stride = conv
    require(
        tuple(size) == tuple(outputs),
        "task.target_image",
        task.target_image,
        f"is {size[0]}x{size[1]}, but {picture} is {input_hw[0]}x{input_hw[1]} and a {kh}x{kw}"
        f" kernel with padding {list(padding)}, stride {list(stride)} makes"
        f" {outputs[0]}x{outputs[1]}: the target must be {outputs[0]}x{outputs[1]}"
        + (" (sizes after horizontal transposes both)" if task.orientation == "horizontal" else ""),
    )


def _validate_optimizer(cfg: AnyConfig) -> None:
    """The optimizer's class and arguments (a torch.optim class is inspected: torch loads)."""
    from kernellab.optim import GradientDescent, validate_optimizer

    optimizer = validate_optimizer(cfg.optim)
    if cfg.trainer.cuda_graph:
        require(
            optimizer is GradientDescent, "trainer.cuda_graph", True, "works with optim=sgd only"
        )


def _validate_trainer_and_logger(cfg: AnyConfig) -> None:
    trainer, logger = cfg.trainer, cfg.logger
    require_device_name(trainer.device)  # whether it is here: kernellab.checks, with torch
    _require_int("trainer.steps", trainer.steps, 0)
    if trainer.print_every is not None:
        _require_int("trainer.print_every", trainer.print_every, 1, " or null")
    threshold = trainer.divergence_threshold
    require(
        threshold is None or (math.isfinite(threshold) and threshold > 1),
        "trainer.divergence_threshold",
        threshold,
        "must be a number > 1 or null",
    )
    require(
        trainer.resume is None or str(trainer.resume).strip(),
        "trainer.resume",
        trainer.resume,
        "must be a run dir or its checkpoint.pt (or null for a new run)",
    )
    every = trainer.checkpoint_every_s
    require(
        every is None or (math.isfinite(every) and every > 0),
        "trainer.checkpoint_every_s",
        every,
        "must be a number of seconds > 0, or null",
    )
    threads = trainer.num_threads
    require(
        threads == "auto" or (_is_int(threads) and 1 <= threads <= MAX_INT),
        "trainer.num_threads",
        threads,
        "must be `auto` or an int >= 1 (and < 2^31; above the cores available: as many)",
    )
    cuda_graph = trainer.cuda_graph
    require(isinstance(cuda_graph, bool), "trainer.cuda_graph", cuda_graph, "must be true or false")
    _require_int("logger.log_every", logger.log_every, 1)
    if logger.snapshot_every is not None:
        _require_int("logger.snapshot_every", logger.snapshot_every, 1, " or null")


def _target_kernel(spec: Any, has_target_image: bool) -> Kernel | None:
    """The ground-truth kernel, a matrix or an (out, in, kh, kw) nested list; null: none beside a
    target image, else the book's."""
    key = "task.target_kernel"
    if spec is None:
        return None if has_target_image else [list(row) for row in BOOK_KERNEL]
    if isinstance(spec, str):
        _require_choice(key, spec, NAMED_KERNELS)
        return [[float(v) for v in row] for row in NAMED_KERNELS[spec]]
    rows = OmegaConf.to_container(spec) if isinstance(spec, ListConfig) else spec
    shape = nested_shape(rows)
    require(
        shape is not None and len(shape) in (2, 4),
        key,
        spec,
        "must be a non-empty rectangular matrix of numbers within float32's range, e.g. [[-1,1]],"
        " a nested list of shape (out, in, kh, kw) such as [[[[0.3]],[[0.6]],[[0.1]]]], or one of "
        + ", ".join(NAMED_KERNELS),
    )
    # one channel to one is the book's layer: its (1, 1, kh, kw) kernel is the matrix it holds
    return _floats(rows[0][0] if shape[:2] == (1, 1) and len(shape) == 4 else rows)


def nested_shape(value: Any) -> tuple[int, ...] | None:
    """The shape of a non-empty rectangular nested list of float32 numbers; None if it is
    ragged, empty or holds anything else."""
    if not isinstance(value, list):
        return () if _is_float32(value) else None
    shapes = {nested_shape(v) for v in value}
    if not value or len(shapes) != 1 or None in shapes:
        return None
    return (len(value), *shapes.pop())


def _floats(value: Any) -> Any:
    return [_floats(v) for v in value] if isinstance(value, list) else float(value)


def kernel_dims(kernel: Kernel) -> tuple[Pair, Pair]:
    """A target kernel's (out, in) channels and (kh, kw): a matrix is one channel to one."""
    shape = nested_shape(kernel)
    assert shape is not None
    return ((1, 1), shape) if len(shape) == 2 else (shape[:2], shape[2:])


def _pair(key: str, node: AnyConfig, minimum: int) -> Pair:
    value = node[key.rsplit(".", 1)[1]]
    items = list(value) if isinstance(value, ListConfig | Sequence) else [value]
    require(
        len(items) in (1, 2) and all(_is_int(v) and minimum <= v <= MAX_INT for v in items),
        key,
        value,
        f"must be an int >= {minimum} or a pair [h, w] of ints >= {minimum} (each < 2^31)",
    )
    return pair(items[0] if len(items) == 1 else items)


def _require_int(key: str, value: Any, minimum: int, alternative: str = "") -> None:
    """An int in [minimum, 2^31): what torch and the OS take."""
    require(
        _is_int(value) and minimum <= value <= MAX_INT,
        key,
        value,
        f"must be an int >= {minimum}{alternative} (and < 2^31)",
    )


def _require_choice(key: str, value: Any, choices: Any) -> None:
    require(value in choices, key, value, "must be one of " + ", ".join(choices))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_float32(value: Any) -> bool:
    """A number a float32 kernel can hold (finite, |v| <= float32's max)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) <= FLOAT32_MAX
    )
