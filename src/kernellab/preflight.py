"""What a command line is refused for, before Hydra creates a run's or a sweep's dir: a key
added (`+key=`) or deleted (`~key`) that the schema needs or lacks, a study setting given where
it can't be, a sweep that is empty, enormous or sweeps a key the config lacks, the launcher's
and sweeper's bad settings (Optuna's in kernellab.optuna_settings), and a sweep dir that holds
another sweep. kernellab.lifecycle calls these in its `check_run` and `before_sweep`; nothing
here writes a file.
"""

from __future__ import annotations

import math
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, IntervalSweep, Override, RangeSweep
from omegaconf import DictConfig, OmegaConf

from kernellab.config_help import schema_rows
from kernellab.errors import ConfigError, UserError
from kernellab.optuna_settings import check_optuna, is_optuna
from kernellab.paths import AUTO_RESUME, MULTIRUN_YAML
from kernellab.runtime import joblib_workers
from kernellab.studies import check_settings

_MISSING = object()


def check_study(config: DictConfig) -> None:
    """`study.*`, refused where it is given (a single run is a study of one)."""
    keys = [key for key, _, _ in schema_rows() if not key.startswith("study.")]
    check_settings(config.study, keys, lambda key: _in_config(config, key))


def command_line_overrides(hydra_cfg: DictConfig) -> list[str]:
    """The overrides as typed: iterating the node would resolve an `${...}` inside them."""
    return OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)


# Where `+key=value` may add a key: Hydra's own settings, and an optimizer's class arguments
OPEN_PREFIXES = ("hydra.", "optim.")


def check_additions(config: DictConfig) -> None:
    """Refuse `+key=` and `++key=` of a key the schema doesn't have: a typo of a real key would
    silently train the defaults. Config groups (`+experiment=...`) and OPEN_PREFIXES stay open.
    Refuse `~key` of a schema key or section: every one of them is needed to train."""
    schema = {key for key, _, _ in schema_rows()}
    for override in OverridesParser.create().parse_overrides(command_line_overrides(config.hydra)):
        key = override.key_or_group
        if override.is_delete() and any(k == key or k.startswith(f"{key}.") for k in schema):
            raise UserError(
                f"{override.input_line}: {key} can't be deleted, kernellab needs every key of its "
                "schema; set it to another value instead"
            )
        is_group = key in config.hydra.runtime.choices
        if not (override.is_add() or override.is_force_add()) or is_group or key in schema:
            continue
        if not key.startswith(OPEN_PREFIXES):
            raise UserError(
                f"{override.input_line.lstrip('+')}: is not a config key: a `+` override can't "
                "add one (a typo would train the defaults); add a field to the schema "
                "(kernellab/config.py) instead"
            )


def check_sweep(config: DictConfig) -> None:
    """Refuse an empty or enormous sweep, a key that is not in the config, n_jobs < 1, and
    Optuna's bad settings (kernellab.optuna_settings)."""
    check_additions(config)
    grid = str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper")
    jobs, largest = 1, (0, "", "")
    n_jobs = config.hydra.launcher.get("n_jobs")
    if n_jobs is not None and joblib_workers(n_jobs) < 1:
        raise ConfigError(
            "hydra.launcher.n_jobs", n_jobs, "must be >= 1 (or -1 for all cores, as in joblib)"
        )
    workers = config.hydra.launcher.get("workers", "auto")  # hydra/launcher=batched
    if workers != "auto" and (type(workers) is not int or workers < 1):
        raise ConfigError("hydra.launcher.workers", workers, "must be auto or a number >= 1")
    tasks = config.hydra.launcher.get("tasks", 1)  # hydra/launcher=slurm_batched
    if type(tasks) is not int or tasks < 1:
        raise ConfigError(
            "hydra.launcher.tasks", tasks, "must be a number of SLURM array tasks >= 1"
        )
    parser = OverridesParser.create()
    for override in parser.parse_overrides(command_line_overrides(config.hydra)):
        is_group = override.key_or_group in config.hydra.runtime.choices  # e.g. optim=adam
        if is_group or override.is_add() or override.is_delete() or override.is_force_add():
            continue
        key, value = override.input_line.split("=", 1)
        if not _in_config(config, override.key_or_group):
            raise ConfigError(key, value, "is not a config key (see `python train.py --cfg job`)")
        if override.is_sweep_override():
            count = _sweep_values(override, key, value, grid)
            jobs *= count
            largest = max(largest, (count, key, value))
        if override.is_sweep_override() and key.startswith("study."):
            raise ConfigError(
                key,
                value,
                "a study setting is one value per sweep (it names no job); to look at a sweep "
                "another way: python -m kernellab.report SWEEP_DIR --recovered-within X",
            )
    if jobs > MAX_SWEEP_JOBS:
        _, key, value = largest
        raise ConfigError(
            key,
            value,
            f"makes a sweep of {jobs:,} jobs: at most {MAX_SWEEP_JOBS:,} (Hydra lists every job "
            "before the first starts); split it into several sweeps",
        )
    sweeper = config.hydra.sweeper
    for key, space in (sweeper.get("params") or {}).items():
        if not _in_config(config, key):
            raise ConfigError(
                f"hydra.sweeper.params.{key}", space, "searches a key that is not in the config"
            )
    for key in ("n_trials", "n_jobs"):  # Optuna's trial count and batch size
        if sweeper.get(key) is not None and sweeper[key] < 1:
            raise ConfigError(f"hydra.sweeper.{key}", sweeper[key], "must be >= 1")
    check_study(config)
    if is_optuna(sweeper):  # its storage opened, its direction and sampler: before the study
        check_optuna(sweeper)


MAX_SWEEP_JOBS = 1_000_000


def _sweep_values(override: Override, key: str, value: str, grid: bool) -> int:
    """How many values a sweep override has, counted without listing them (`range(10**9)`)."""
    sweep = override.value()
    if isinstance(sweep, IntervalSweep):
        if grid:
            raise ConfigError(
                key,
                value,
                "interval() is a search space for Optuna "
                "(hparams_search=...), not a grid: give values or range()",
            )
        return 1
    if isinstance(sweep, Glob):
        raise ConfigError(
            key,
            value,
            f"glob() picks options of a config group (optim=glob(*)); {key} is not a group",
        )
    if isinstance(sweep, RangeSweep):
        if not sweep.step:
            raise ConfigError(key, value, "range()'s step must not be 0")
        count = math.ceil((sweep.stop - sweep.start) / sweep.step)
    else:
        count = len(sweep.list)
    if count < 1:
        raise ConfigError(key, value, "the sweep has no values")
    return count


def check_sweep_dir(config: DictConfig) -> None:
    """A sweep dir that holds a sweep is only continued, by the same sweep with
    `trainer.resume=auto`: a new sweep there would overwrite finished jobs' results or mix two
    sweeps' jobs in one summary."""
    from kernellab.report import continue_command

    sweep_dir = Path(config.hydra.sweep.dir)
    if not (sweep_dir / MULTIRUN_YAML).is_file():
        return
    try:
        before = OmegaConf.load(sweep_dir / MULTIRUN_YAML).hydra
        theirs = _without_resume(OmegaConf.to_container(before.overrides.task))
        continuing = continue_command(sweep_dir, before)
    except Exception:  # a damaged multirun.yaml: still a sweep dir, not to be written over
        theirs, continuing = None, None
    how = f"continue it with {continuing}" if continuing else "choose another hydra.sweep.dir"
    if config.trainer.resume != AUTO_RESUME:
        raise ConfigError("hydra.sweep.dir", sweep_dir, f"holds a sweep already: {how}")
    if theirs != _without_resume(command_line_overrides(config.hydra)):
        raise ConfigError(
            "hydra.sweep.dir",
            sweep_dir,
            f"holds another sweep ({' '.join(theirs or ['unreadable'])}): {how}",
        )


def _without_resume(overrides: list[str]) -> list[str]:
    return [o for o in overrides if not o.startswith("trainer.resume=")]


def _in_config(config: DictConfig, key: str) -> bool:
    """Whether `key` names a node of the config (a null value counts; a missing key doesn't)."""
    return OmegaConf.select(config, key, default=_MISSING) is not _MISSING
