"""Shared fixtures: configs composed by Hydra exactly as `train.py` composes them, and CLI runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import kernellab.config  # noqa: F401  (registers the schema)

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PY = ROOT / "train.py"
CONF_DIR = ROOT / "conf"


def compose_config(*overrides: str) -> DictConfig:
    """The config `python train.py OVERRIDES` would run, typed and in struct mode."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture
def make_cfg() -> Iterator[Callable[..., DictConfig]]:
    yield compose_config
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One in-process run of the default experiment, shared by tests that only read it."""
    from kernellab.train import train

    run_dir = tmp_path_factory.mktemp("default_run")
    train(compose_config(), run_dir)
    return run_dir


def run_cli(
    *args: str, cwd: Path, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """`python train.py ARGS` in `cwd`, as a user would run it."""
    proc = subprocess.run(
        [sys.executable, str(TRAIN_PY), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc
