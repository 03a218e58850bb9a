"""kernellab.preflight on real composed configs: what a command line is refused for, and the
size of a sweep counted from its overrides without listing its jobs. (`python train.py` meeting
these refusals, in real processes: tests/test_command_line.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from kernellab.config import CONF_DIR
from kernellab.errors import ConfigError, UserError
from kernellab.preflight import (
    MAX_SWEEP_JOBS,
    check_additions,
    check_study,
    check_sweep,
    check_sweep_dir,
)


@pytest.fixture
def command() -> Iterator:
    """A config with its hydra node, as the callbacks get it, typed as `overrides` on the command
    line (set after composing: composing a single run refuses sweep values)."""

    def make(*overrides: str, **settings: object) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            config = compose(config_name="config", return_hydra_config=True)
        OmegaConf.update(config, "hydra.overrides.task", list(overrides), force_add=True)
        for key, value in settings.items():
            OmegaConf.update(config, key.replace("__", "."), value, force_add=True)
        return config

    return make


def test_a_sweep_within_the_limit_passes(command):
    check_sweep(command("seed=range(0,10,3)", "optim.lr=0.1,0.2", "model.bias=false"))


def test_a_sweeps_size_is_the_product_of_its_value_counts(command):
    # range(0, 3000, 3): 1,000 values; range(1001): 1,001 -> 1,001,000 jobs, one sweep too many
    assert 1000 * 1001 > MAX_SWEEP_JOBS >= 1000 * 1000
    with pytest.raises(ConfigError, match=r"seed=range\(1001\).*makes a sweep of 1,001,000 jobs"):
        check_sweep(command("optim.lr=range(0,3000,3)", "seed=range(1001)"))
    check_sweep(command("optim.lr=range(0,3000,3)", "seed=range(1000)"))


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("seed=range(1,5,0)", "range()'s step must not be 0"),
        ("seed=range(5,1)", "the sweep has no values"),
        ("seed=interval(0,1)", "interval() is a search space for Optuna"),
        ("seed=glob(*)", "glob() picks options of a config group"),
        ("model.kernal_size=3,4", "is not a config key"),
        ("study.replicates=seed,task.seed", "a study setting is one value per sweep"),
    ],
)
def test_a_sweep_override_it_cant_run_is_refused(command, override, says):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}=.*{re.escape(says)}"):
        check_sweep(command(override))


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("hydra.launcher.n_jobs", 0, "must be >= 1"),
        ("hydra.launcher.workers", 0, "must be auto or a number >= 1"),
        ("hydra.launcher.tasks", "2", "must be a number of SLURM array tasks >= 1"),
    ],
)
def test_launcher_settings_out_of_range_are_refused(command, setting, value, says):
    with pytest.raises(ConfigError, match=says):
        check_sweep(command(**{setting.replace(".", "__"): value}))


def test_adding_a_key_the_schema_lacks_is_refused_and_open_prefixes_stay_open(command):
    with pytest.raises(UserError, match=r"^model\.kernal_size=3: is not a config key"):
        check_additions(command("+model.kernal_size=3"))
    with pytest.raises(UserError, match=r"^~trainer\.steps: trainer\.steps can't be deleted"):
        check_additions(command("~trainer.steps"))
    check_additions(command("+optim.nesterov=true", "++hydra.job.chdir=false"))


def test_study_settings_name_keys_of_the_config(command):
    check_study(command())
    config = command()
    config.study.replicates = ["seed", "no.such.key"]
    with pytest.raises(ConfigError):
        check_study(config)


def test_a_sweep_dir_holding_a_sweep_is_only_continued_by_that_sweep(command, tmp_path):
    first = command("seed=1,2", hydra__sweep__dir=str(tmp_path))
    check_sweep_dir(first)  # nothing there yet
    OmegaConf.save(first, tmp_path / "multirun.yaml")
    with pytest.raises(ConfigError, match="holds a sweep already: "):
        check_sweep_dir(first)
    continuing = command("seed=1,2", "trainer.resume=auto", hydra__sweep__dir=str(tmp_path))
    continuing.trainer.resume = "auto"
    check_sweep_dir(continuing)
    another = command("seed=3,4", "trainer.resume=auto", hydra__sweep__dir=str(tmp_path))
    another.trainer.resume = "auto"
    with pytest.raises(ConfigError, match=r"holds another sweep \(seed=1,2\)"):
        check_sweep_dir(another)
