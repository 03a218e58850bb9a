"""The config schema: typed dataclasses that hold every default, and `compose()` for notebooks.

The YAML in conf/ states only what differs from these defaults (the optimizer presets, the
experiments, Hydra's settings). Each field's `help` is the one place its meaning is written down:
`python -m kernellab.config` prints the reference table of docs/configuration.md from it (kernellab.config_help).

Importing this module registers the schema and the resolvers with Hydra; it must stay light (no
torch: `python train.py --help` loads it), so the names of the choices come from
kernellab.registry and kernellab.backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from kernellab import backends
from kernellab.paths import AUTO_RESUME, job_dir, output_subdir, run_dir
from kernellab.registry import IMAGES, INITS, NAMED_KERNELS

__all__ = ["AUTO_RESUME", "CONF_DIR", "Config", "compose"]

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def _choices(names: Any) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _help(default: Any, text: str, kind: str | None = None) -> Any:
    """A field's default and help; `kind`: the type `--help` shows for an `Any` field."""
    metadata = {"help": text, "type": kind} if kind else {"help": text}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# A yes/no key is typed `Any` (shown as `bool`): OmegaConf's bool type would turn `2`, `yes` or
# `'1'` into true, and kernellab.validation refuses all but true and false.


@dataclass
class TaskConfig:
    height: int = _help(6, "Image rows (before `horizontal` transposes it).")
    width: int = _help(8, "Image columns (before `horizontal` transposes it).")
    stripe: list[int] = _help([2, 6], "Columns [a, b) set to 0, as the book's `X[:, 2:6] = 0`.")
    orientation: str = _help(
        "vertical", "`vertical`, or `horizontal`: image and target kernel transposed."
    )
    image: str = _help(
        "stripes",
        f"Picture: {_choices(IMAGES)} (the book's stripes, noise, or its exercise's diagonal"
        " edge), or a picture file's path"
        " (PNG, JPEG, ...: grayscale, 0 black to 1 white, its own size).",
    )
    resize: list[int] | None = _help(
        None,
        "`[height, width]` to resize `task.image` (a picture file) to; `task.target_image` is"
        " never resized (resampling would change the filter between the two).",
    )
    target_kernel: Any = _help(
        None,
        f"A matrix, or a name: {_choices(NAMED_KERNELS)}, or with channels a nested list of shape"
        " (out, in, kh, kw); null: the book's `[[-1, 1]]`, or beside `task.target_image` no ground"
        " truth (`kernel_error` null).",
    )
    target_image: str | None = _help(
        None,
        "A picture file's path (8- or 16-bit, scaled to [0, 1] by its bit depth): the target Y"
        " itself, the image filtered by the unknown kernel; its size must be the convolution's"
        " output size. null: Y is `task.target_kernel` applied to the image.",
    )
    channels: str = _help(
        "gray",
        "`gray`, or `rgb`: a picture file's three colour channels (`task.image` must be a file);"
        " a target image is then taken as stored: gray (1 channel) or colour (3).",
    )


@dataclass
class ModelConfig:
    kernel_size: Any = _help(
        None, "`[kh, kw]` or an int (square); null: the target kernel's shape."
    )
    padding: Any = _help(0, "Zeros on each side: an int or `[ph, pw]`.")
    stride: Any = _help(1, "An int or `[sh, sw]`.")
    bias: Any = _help(True, "Learn a scalar bias.", kind="bool")
    init: str = _help(
        "randn", f"{_choices(INITS)}: `randn` as the seed notebook, `uniform` as nn.Conv2d."
    )
    backend: str = _help(backends.AUTO, backends.help_text())
    in_channels: int | None = _help(
        None, "Input channels; null: the image's (1 for gray, 3 for `task.channels=rgb`)."
    )
    out_channels: int | None = _help(
        None,
        "Output channels; null: the target's (a target image's channels, else the target kernel's"
        " `out`; 1 for a matrix).",
    )


# The default optimizer, the seed notebook's `w -= lr * grad` (see kernellab.optim).
GRADIENT_DESCENT = {"_target_": "kernellab.optim.GradientDescent", "_partial_": True, "lr": 0.01}
# Help for the keys every optimizer has; its other keys are its class's own arguments.
OPTIM_HELP = {
    "_target_": "Optimizer class: `optim=sgd`, `momentum`, `adam`, `adamw`, or any `torch.optim` class;"
    " every other key under `optim` is passed to it (`optim.momentum=0.5`).",
    "lr": "Learning rate (> 0).",
}


@dataclass
class TrainerConfig:
    steps: int = _help(20, "Gradient steps (full-batch: one image).")
    device: str = _help(
        "cpu", "`cpu`, `cuda`, `cuda:N`, `mps`, or `auto` (cuda, then mps, then cpu)."
    )
    print_every: int | None = _help(
        None,
        "Print `step N, loss L` every N steps; null: about 4 lines a run at a round interval"
        " (every 5 of 20 steps), plus a line with an ETA every 10 s of a long run.",
    )
    divergence_threshold: float | None = _help(
        1e6,
        "Stop as `diverged` once the loss exceeds this multiple of the first step's loss (as a"
        " non-finite loss does); null: only a non-finite loss.",
    )
    num_threads: Any = _help(
        "auto", "Torch CPU threads: an int, or `auto` (by problem size and parallel jobs)."
    )
    cuda_graph: Any = _help(
        False,
        "On CUDA with `optim=sgd`: capture the step once in a CUDA graph and replay it.",
        kind="bool",
    )
    resume: str | None = _help(
        None,
        "A run dir or its `checkpoint.pt`: continue that run, in that dir. `auto`: continue the"
        " run in this run's own dir if it holds an unfinished one, else start (continues a sweep).",
    )
    checkpoint_every_s: float | None = _help(
        300.0,
        "Also save `checkpoint.pt` every this many seconds of training, so a kill loses at most"
        " that much; null: only at the end and on SIGINT/SIGTERM.",
    )


@dataclass
class LoggerConfig:
    log_every: int = _help(1, "Log `train/loss` and the kernel scalars every N steps.")
    snapshot_every: int | None = _help(
        None,
        "Log the `kernel/weights` histogram and the `kernel/image` and `kernel/compare` pictures"
        " every N steps and at the last; null: every ⌈steps/10⌉, about 10 a run.",
    )


@dataclass
class StudyConfig:
    replicates: list[str] = _help(
        ["seed"],
        "Config keys whose values only repeat an experiment: a sweep's jobs that differ only in"
        " these form a group, summarised by its distribution (`summary_groups.csv`, `groups/`).",
    )
    recovered_within: float = _help(
        0.05, "A job has recovered the target kernel when its `kernel_error` is at most this."
    )


OBJECTIVES = ("final_loss", "kernel_error")


@dataclass
class Config:
    seed: int = _help(0, "Seeds torch's RNG: the initial kernel and a `random` image.")
    objective: str = _help(
        "final_loss",
        "What a run returns to the sweeper and a sweep summary sorts by: `final_loss`, or"
        " `kernel_error` (distance of the learned kernel from the target).",
    )
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    # open: an optimizer's arguments are whatever its class takes (checked in geometry.validate)
    optim: dict[str, Any] = field(default_factory=lambda: dict(GRADIENT_DESCENT))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    study: StudyConfig = field(default_factory=StudyConfig)


ConfigStore.instance().store(name="config_schema", node=Config)


def _options_help() -> str:
    from kernellab.config_help import options_help  # only when --help prints

    return options_help()


for _name, _resolver in (
    ("kernellab.run_dir", run_dir),
    ("kernellab.output_subdir", output_subdir),
    ("kernellab.job_dir", job_dir),
    ("kernellab.options_help", _options_help),  # conf/hydra/help/kernellab.yaml
):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)


def compose(*overrides: str) -> DictConfig:
    """The config `python train.py OVERRIDES` runs, typed and in struct mode (no `hydra` node).

    For notebooks, tests and benchmarks: `train(compose("optim.lr=0.1"), Path("run"))`.
    """
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


if __name__ == "__main__":
    from kernellab.config_help import reference_table

    print(reference_table())
