"""The config schema (typed dataclasses behind the YAML in conf/) and the checks Hydra's types can't do.

Each field's `help` is the one place its meaning is written down: `python -m kernellab.config`
prints the README's reference table from it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from kernellab.data import NAMED_KERNELS
from kernellab.model import BACKENDS, INITS
from kernellab.ops import Pair, output_shape, pair


def _help(default: Any, text: str) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass
class TaskConfig:
    height: int = _help(6, "Image rows (before `horizontal` transposes it).")
    width: int = _help(8, "Image columns (before `horizontal` transposes it).")
    stripe: list[int] = _help([2, 6], "Columns [a, b) set to 0, as the book's `X[:, 2:6] = 0`.")
    orientation: str = _help(
        "vertical", "`vertical`, or `horizontal`: image and target kernel transposed."
    )
    image: str = _help("stripes", "`stripes` (the book's picture) or `random` (uniform noise).")
    target_kernel: Any = _help(
        [[-1.0, 1.0]], "A matrix, or a name: " + ", ".join(f"`{n}`" for n in NAMED_KERNELS) + "."
    )


@dataclass
class ModelConfig:
    kernel_size: Any = _help(
        None, "`[kh, kw]` or an int (square); null: the target kernel's shape."
    )
    padding: Any = _help(0, "Zeros on each side: an int or `[ph, pw]`.")
    stride: Any = _help(1, "An int or `[sh, sw]`.")
    bias: bool = _help(True, "Learn a scalar bias.")
    init: str = _help("randn", "`randn` (the book's), `zeros`, or `uniform` (nn.Conv2d's range).")
    backend: str = _help(
        "torch", "`torch` (F.conv2d), `corr2d` (our vectorised op), `loop` (the book's)."
    )


@dataclass
class OptimConfig:
    _target_: str = _help(
        "kernellab.optim.GradientDescent",
        "Optimizer class: pick one with `optim=sgd` or `optim=adam`.",
    )
    _partial_: bool = _help(True, "Instantiated as a partial; the model's parameters come later.")
    lr: float = _help(0.01, "Learning rate (> 0).")


@dataclass
class TrainerConfig:
    steps: int = _help(20, "Gradient steps (full-batch: one image).")
    device: str = _help(
        "cpu", "`cpu`, `cuda`, `cuda:N`, `mps`, or `auto` (cuda, then mps, then cpu)."
    )
    print_every: int = _help(5, "Print `step N, loss L` every N steps.")
    num_threads: Any = _help(
        "auto", "Torch CPU threads: an int, or `auto` (by problem size and parallel jobs)."
    )
    cuda_graph: bool = _help(
        False, "On CUDA with `optim=sgd`: capture the step once in a CUDA graph and replay it."
    )
    resume: str | None = _help(
        None, "A run dir or its `checkpoint.pt`: continue that run, in that dir."
    )


@dataclass
class LoggerConfig:
    log_every: int = _help(1, "Log `train/loss` and the kernel scalars every N steps.")
    snapshot_every: int | None = _help(
        None,
        "Log the `kernel/weights` histogram and `kernel/image` every N steps and at the last;"
        " null: every ⌈steps/10⌉, about 10 a run.",
    )


@dataclass
class Config:
    seed: int = _help(0, "Seeds torch's RNG: the initial kernel and a `random` image.")
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


ConfigStore.instance().store(name="config_schema", node=Config)


def run_dir(resume: str | None, fresh: str) -> str:
    """`hydra.run.dir`: a resumed run continues in its own dir; a new one gets `fresh`."""
    if not resume:
        return fresh
    return str(Path(resume).parent) if resume.endswith(".pt") else resume


def output_subdir(resume: str | None, stamp: str) -> str:
    """`hydra.output_subdir`: a resumed run keeps its first `.hydra/` and files each resume's beside it."""
    return f".hydra/resume-{stamp}" if resume else ".hydra"


def job_dir(num: int, overrides: str) -> str:
    """`hydra.sweep.subdir`: `3_model.kernel_size=[1,3],optim.lr=0.001`, safe as one path part."""
    name = f"{num}_{overrides}" if overrides else str(num)
    return re.sub(r"[^\w.,=+\-\[\]]", "_", name)[:MAX_DIRNAME]


MAX_DIRNAME = 200  # bytes; file systems allow 255
for _name, _resolver in (
    ("kernellab.run_dir", run_dir),
    ("kernellab.output_subdir", output_subdir),
    ("kernellab.job_dir", job_dir),
):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)


EXIT_USAGE = 2  # the exit status of every user mistake


class UserError(Exception):
    """A mistake the user can fix: reported as one line, exit status 2, no traceback."""


class ConfigError(UserError, ValueError):
    """A user's config value is invalid: one line naming the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"{key}={_show(value)}: {allowed}")
        self.key = key


@dataclass(frozen=True)
class Geometry:
    """The validated shapes of a run."""

    target_kernel: list[list[float]] | str
    kernel_size: Pair
    padding: Pair
    stride: Pair
    input_shape: Pair
    output_shape: Pair


def validate(cfg: DictConfig) -> Geometry:
    """Check every value Hydra's types let through; raise ConfigError on the first bad one."""
    task, model = cfg.task, cfg.model
    _require(task.height >= 1, "task.height", task.height, "must be an int >= 1")
    _require(task.width >= 1, "task.width", task.width, "must be an int >= 1")
    stripe = list(task.stripe)
    _require(
        len(stripe) == 2 and 0 <= stripe[0] <= stripe[1] <= task.width,
        "task.stripe",
        stripe,
        f"must be [a, b] with 0 <= a <= b <= task.width ({task.width})",
    )
    _require_choice("task.orientation", task.orientation, ("vertical", "horizontal"))
    _require_choice("task.image", task.image, ("stripes", "random"))
    target = _target_kernel(task.target_kernel)
    target_hw = (len(target), len(target[0])) if isinstance(target, list) else (3, 3)
    if task.orientation == "horizontal":
        target_hw = target_hw[::-1]
    input_hw = (task.height, task.width)
    if task.orientation == "horizontal":
        input_hw = input_hw[::-1]

    kernel_size = target_hw if model.kernel_size is None else _pair("model.kernel_size", model, 1)
    _require(
        kernel_size[0] >= target_hw[0] and kernel_size[1] >= target_hw[1],
        "model.kernel_size",
        list(kernel_size),
        f"must be at least the target kernel's shape {list(target_hw)} on each axis",
    )
    padding = _pair("model.padding", model, 0)
    stride = _pair("model.stride", model, 1)
    padded = (input_hw[0] + 2 * padding[0], input_hw[1] + 2 * padding[1])
    _require(
        kernel_size[0] <= padded[0] and kernel_size[1] <= padded[1],
        "model.kernel_size",
        list(kernel_size),
        f"must fit the padded input {list(padded)} (image {list(input_hw)} + padding)",
    )
    _require_choice("model.init", model.init, INITS)
    _require_choice("model.backend", model.backend, tuple(BACKENDS))
    _require(
        math.isfinite(cfg.optim.lr) and cfg.optim.lr > 0, "optim.lr", cfg.optim.lr, "must be > 0"
    )
    _validate_trainer_and_logger(cfg)
    return Geometry(
        target_kernel=target,
        kernel_size=kernel_size,
        padding=padding,
        stride=stride,
        input_shape=input_hw,
        output_shape=output_shape(input_hw, kernel_size, padding, stride),
    )


def _validate_trainer_and_logger(cfg: DictConfig) -> None:
    trainer, logger = cfg.trainer, cfg.logger
    _require(trainer.steps >= 0, "trainer.steps", trainer.steps, "must be an int >= 0")
    _require(trainer.print_every >= 1, "trainer.print_every", trainer.print_every, "must be >= 1")
    threads = trainer.num_threads
    _require(
        threads == "auto" or (_is_int(threads) and threads >= 1),
        "trainer.num_threads",
        threads,
        "must be `auto` or an int >= 1",
    )
    _require(logger.log_every >= 1, "logger.log_every", logger.log_every, "must be >= 1")
    snapshots = logger.snapshot_every
    _require(
        snapshots is None or snapshots >= 1,
        "logger.snapshot_every",
        snapshots,
        "must be >= 1 or null",
    )


def _target_kernel(spec: Any) -> list[list[float]] | str:
    key = "task.target_kernel"
    if isinstance(spec, str):
        _require_choice(key, spec, tuple(NAMED_KERNELS))
        return spec
    rows = OmegaConf.to_container(spec) if isinstance(spec, ListConfig) else spec
    _require(
        isinstance(rows, list)
        and rows
        and all(isinstance(r, list) and r and len(r) == len(rows[0]) for r in rows)
        and all(_is_number(v) for r in rows for v in r),
        key,
        spec,
        "must be a non-empty rectangular matrix of numbers, e.g. [[-1,1]], or one of "
        + ", ".join(NAMED_KERNELS),
    )
    return [[float(v) for v in r] for r in rows]


def _pair(key: str, node: DictConfig, minimum: int) -> Pair:
    value = node[key.rsplit(".", 1)[1]]
    items = list(value) if isinstance(value, ListConfig | Sequence) else [value]
    _require(
        len(items) in (1, 2) and all(_is_int(v) and v >= minimum for v in items),
        key,
        value,
        f"must be an int >= {minimum} or a pair [h, w] of ints >= {minimum}",
    )
    return pair(items[0] if len(items) == 1 else items)


def _require(ok: Any, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


def _require_choice(key: str, value: Any, choices: Sequence[str]) -> None:
    _require(value in choices, key, value, "must be one of " + ", ".join(choices))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value)
    return str(value).replace(" ", "") if isinstance(value, list | tuple) else str(value)


def reference_table() -> str:
    """The README's table of every config key: default and meaning, read from the schema."""
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, default, text in _schema_rows(Config, ""):
        lines.append(f"| `{key}` | `{_show(default)}` | {text} |")
    return "\n".join(lines)


def _schema_rows(schema: type, prefix: str) -> list[tuple[str, Any, str]]:
    rows = []
    for f in fields(schema):
        if is_dataclass(f.type) or (
            f.default_factory is not MISSING and is_dataclass(f.default_factory)
        ):
            rows += _schema_rows(f.default_factory, f"{prefix}{f.name}.")
        elif "help" in f.metadata:
            default = f.default if f.default is not MISSING else f.default_factory()
            rows.append(
                (prefix + f.name, "null" if default is None else default, f.metadata["help"])
            )
    return rows


if __name__ == "__main__":
    print(reference_table())
