"""kernellab.optuna_settings: an Optuna search's storage, direction, sampler and failure rate,
refused in one line before the study starts, with no database file created."""

from __future__ import annotations

import sqlite3

import pytest
from omegaconf import OmegaConf

from kernellab.errors import ConfigError
from kernellab.optuna_settings import check_optuna, is_optuna
from tests.helpers import run_cli

SWEEPER = {
    "_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper",
    "direction": "minimize",
    "storage": None,
    "max_failure_rate": 0.0,
    "sampler": {"_target_": "optuna.samplers.TPESampler", "seed": None},
}


def sweeper(**settings):
    return OmegaConf.create({**SWEEPER, **settings})


def refusal(**settings) -> str:
    with pytest.raises(ConfigError) as error:
        check_optuna(sweeper(**settings))
    message = str(error.value)
    assert "\n" not in message
    return message


def test_the_defaults_pass_and_only_optunas_sweeper_is_checked():
    check_optuna(sweeper())
    check_optuna(sweeper(direction="maximize"))
    check_optuna(sweeper(direction=["minimize"]))
    assert is_optuna(sweeper())
    assert not is_optuna({"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"direction": "sideways"}, "hydra.sweeper.direction=sideways: must be minimize or maximize"),
        ({"direction": ["minimize", "maximize"]}, "hydra.sweeper.direction="),
        ({"max_failure_rate": 2}, "hydra.sweeper.max_failure_rate=2: must be a number in [0, 1]"),
        ({"storage": "notaurl"}, "hydra.sweeper.storage=notaurl: is not a database URL"),
        ({"storage": 5}, "hydra.sweeper.storage=5: must be a database URL"),
        ({"storage": "postgresql://127.0.0.1:1/x"}, "hydra.sweeper.storage=postgresql://127.0.0.1:1/x: Optuna can't open it"),
        ({"storage": "sqlite:////nonexistent/dir/x.db"}, "hydra.sweeper.storage=sqlite:////nonexistent/dir/x.db: its directory /nonexistent/dir does not exist"),
        ({"storage": "sqlite:////proc/x.db"}, "hydra.sweeper.storage=sqlite:////proc/x.db: the database can't be created in /proc"),
        ({"sampler": {"_target_": "optuna.samplers.NoSuchSampler"}}, "hydra.sweeper.sampler=optuna.samplers.NoSuchSampler: fails"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_refused_in_one_line(settings, message):
    assert refusal(**settings).startswith(message)


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("not a database")
    message = refusal(storage=f"sqlite:///{path}")
    assert message.startswith(f"hydra.sweeper.storage=sqlite:///{path}: Optuna can't open it: ")
    assert "file is not a database" in message
    assert path.read_text() == "not a database"
    assert refusal(storage=f"sqlite:///{tmp_path}").endswith("is not a file")


def test_a_new_database_is_not_created_by_the_check_and_an_existing_one_is_opened(tmp_path):
    check_optuna(sweeper(storage=f"sqlite:///{tmp_path / 'new.db'}"))
    assert list(tmp_path.iterdir()) == []
    sqlite3.connect(tmp_path / "old.db").close()  # an empty database Optuna can use
    check_optuna(sweeper(storage=f"sqlite:///{tmp_path / 'old.db'}"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "override",
    [
        "hydra.sweeper.storage=sqlite:///missing/edge.db",
        "hydra.sweeper.storage=postgresql://127.0.0.1:1/x",
        "hydra.sweeper.direction=sideways",
    ],
)
def test_train_py_refuses_a_bad_optuna_setting_before_writing(tmp_path, override):
    proc = run_cli("hparams_search=edge_optuna", override, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: hydra.sweeper.") and proc.stderr.count("\n") == 1
    assert not list(tmp_path.iterdir()), "nothing written, no database created"
