"""The config schema: typed dataclasses that hold every default, and `compose()` for notebooks.

The YAML in conf/ states only what differs from these defaults (the optimizer presets, the
experiments, Hydra's settings). Each field's `help` is the one place its meaning is written down:
`python -m kernellab.config` prints the README's reference table from it.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from kernellab import backends
from kernellab.errors import show
from kernellab.registry import IMAGES, INITS, NAMED_KERNELS

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def _choices(names: Any) -> str:
    return ", ".join(f"`{n}`" for n in names)


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
    image: str = _help(
        "stripes",
        f"Picture: {_choices(IMAGES)} (the book's stripes, or noise), or a picture file's path"
        " (PNG, JPEG, ...: grayscale, 0 black to 1 white, its own size).",
    )
    resize: list[int] | None = _help(None, "`[height, width]` to resize a picture file to.")
    target_kernel: Any = _help([[-1.0, 1.0]], f"A matrix, or a name: {_choices(NAMED_KERNELS)}.")


@dataclass
class ModelConfig:
    kernel_size: Any = _help(
        None, "`[kh, kw]` or an int (square); null: the target kernel's shape."
    )
    padding: Any = _help(0, "Zeros on each side: an int or `[ph, pw]`.")
    stride: Any = _help(1, "An int or `[sh, sw]`.")
    bias: bool = _help(True, "Learn a scalar bias.")
    init: str = _help(
        "randn", f"{_choices(INITS)}: `randn` as the seed notebook, `uniform` as nn.Conv2d."
    )
    backend: str = _help(backends.AUTO, backends.help_text())


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
    cuda_graph: bool = _help(
        False, "On CUDA with `optim=sgd`: capture the step once in a CUDA graph and replay it."
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


ConfigStore.instance().store(name="config_schema", node=Config)


AUTO_RESUME = "auto"  # trainer.resume: whatever this run's own dir holds


def run_dir(resume: str | None, fresh: str) -> str:
    """`hydra.run.dir`: a resumed run continues in its own dir; a new one gets `fresh`."""
    if not resume or resume == AUTO_RESUME:
        return fresh
    return str(Path(resume).parent) if resume.endswith(".pt") else resume


def output_subdir(resume: str | None, stamp: str, output_dir: str) -> str:
    """`hydra.output_subdir`: a resumed run keeps its first `.hydra/` and files each resume's
    beside it (with `trainer.resume=auto`: when the dir has one)."""
    if resume == AUTO_RESUME:
        resume = resume if (Path(output_dir) / ".hydra").is_dir() else None
    return f".hydra/resume-{stamp}" if resume else ".hydra"


def path_override(key: str, path: Path | str) -> str:
    """`key=<path>`, quoted for Hydra's override parser if it needs it (a job dir's name holds
    `=`, `,` and `[`)."""
    if re.fullmatch(r"[\w./\-]+", str(path)):
        return f"{key}={path}"
    # Hydra's escapes: \" is a quote; backslashes are doubled only before a quote or at the end
    quoted = re.sub(r'(\\*)"', lambda m: 2 * m[1] + '\\"', str(path))
    quoted = re.sub(r"(\\+)$", lambda m: 2 * m[1], quoted)
    return f'{key}="{quoted}"'


MAX_DIRNAME = 200  # bytes; file systems allow 255


def job_dir(num: int, overrides: str) -> str:
    """`hydra.sweep.subdir`: `3_model.kernel_size=[1,3],optim.lr=0.001`, safe as one path part."""
    name = f"{num}_{overrides}" if overrides else str(num)
    return re.sub(r"[^\w.,=+\-\[\]]", "_", name)[:MAX_DIRNAME]


def _options_help() -> str:
    return options_help()  # defined below; resolved only when --help prints


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


class Resolved(Mapping[str, Any]):
    """A config resolved to plain Python (`plain`: its dicts and lists), read like the DictConfig
    it came from (`cfg.model.bias`, `cfg.optim.get("lr")`, `cfg["seed"]`). A read costs ~0.1 µs
    where OmegaConf resolves each at ~20 µs, and a job's config is read a few hundred times on its
    way to training: about 2 ms a job of a big sweep."""

    __slots__ = ("plain",)

    def __init__(self, plain: dict[str, Any]) -> None:
        self.plain = plain

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __getitem__(self, key: str) -> Any:
        value = self.plain[key]
        return Resolved(value) if isinstance(value, dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self.plain)

    def __len__(self) -> int:
        return len(self.plain)

    def __repr__(self) -> str:
        return f"Resolved({self.plain!r})"


AnyConfig = DictConfig | Resolved  # a config as Hydra composed it, or resolved by check()


def resolved(cfg: AnyConfig) -> Resolved:
    """`cfg` without its `hydra` node (Hydra's settings, resolvable only inside a job), every
    interpolation resolved, as plain Python; a missing `???` value raises, as reading it from
    the DictConfig would."""
    if isinstance(cfg, Resolved):
        return cfg
    plain = {}
    for key in cfg:
        if key != "hydra":
            value = cfg[key]
            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
            plain[key] = value
    return Resolved(plain)


def config_yaml(plain: dict[str, Any]) -> str:
    """A resolved config (`Resolved.plain`) as YAML, through libyaml: OmegaConf.to_yaml's
    pure-Python dumper takes ~7 ms, which a sweep of 1,000 jobs pays 1,000 times.

    Top-level entries are dumped one by one (the lines are the same as in a whole dump), each
    kept by its `repr`: the jobs of a sweep share most of them (`repr` tells 1 from 1.0 and True,
    which `==` doesn't)."""
    return "".join(_entry_yaml(key, repr(value), value) for key, value in plain.items())


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_YAML_BY_REPR: dict[tuple[str, str], str] = {}


def _entry_yaml(key: str, value_repr: str, value: Any) -> str:
    text = _YAML_BY_REPR.get((key, value_repr))
    if text is None:
        if len(_YAML_BY_REPR) >= 1024:  # a sweep varies a few entries; don't grow without end
            _YAML_BY_REPR.clear()
        text = yaml.dump({key: value}, Dumper=_DUMPER, sort_keys=False, allow_unicode=True)
        _YAML_BY_REPR[(key, value_repr)] = text
    return text


def reference_table() -> str:
    """The README's table of every config key: default and meaning, read from the schema."""
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, default, text in schema_rows():
        lines.append(f"| `{key}` | `{show(default)}` | {text} |")
    return "\n".join(lines)


def schema_rows() -> list[tuple[str, Any, str]]:
    """(key, default, help) for every documented key, in the schema's order."""
    return [(key, default, text) for key, default, text, _ in _schema_rows(Config, "")]


def schema_types() -> dict[str, str]:
    """key -> its type as the schema writes it: `int`, `float | None`, `list[int]`, `Any`, ..."""
    return {key: kind for key, _, _, kind in _schema_rows(Config, "")}


def _schema_rows(schema: type, prefix: str) -> list[tuple[str, Any, str, str]]:
    rows = []
    for f in fields(schema):
        if is_dataclass(f.type) or (
            f.default_factory is not MISSING and is_dataclass(f.default_factory)
        ):
            rows += _schema_rows(f.default_factory, f"{prefix}{f.name}.")
        elif f.name == "optim":
            rows += [
                (f"optim.{k}", GRADIENT_DESCENT[k], text, type(GRADIENT_DESCENT[k]).__name__)
                for k, text in OPTIM_HELP.items()
            ]
        elif "help" in f.metadata:
            default = f.default if f.default is not MISSING else f.default_factory()
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            rows.append((prefix + f.name, default, f.metadata["help"], kind))
    return rows


HELP_WIDTH = 92


def options_help() -> str:
    """`python train.py --help`'s option list: every key with its default, type and meaning,
    from the schema's help texts (the README's reference table, for a terminal)."""
    types = schema_types()
    blocks = []
    for key, default, text in schema_rows():
        kind = types[key]
        kind = kind.replace(" | None", " or null")
        head = f"  {key}={show(default)}" + (f"  ({kind})" if kind != "Any" else "")
        body = textwrap.fill(text, HELP_WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 6)
        blocks.append(f"{head}\n{body}")
    # `$` would start a substitution in Hydra's help template (string.Template)
    return "\n".join(blocks).replace("$", "$$")


if __name__ == "__main__":
    print(reference_table())
