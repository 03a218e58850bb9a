"""Shared fixtures: configs composed exactly as `train.py` composes them; CUDA tests auto-skipped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from kernellab.config import compose


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The SLURM tests first: they spend minutes waiting on the cluster (time limits, requeues),
    which then overlaps the other tests' work instead of ending `make test` alone."""
    items.sort(key=lambda item: item.get_closest_marker("slurm") is None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("cuda") and not torch.cuda.is_available():
        pytest.skip("needs CUDA")


@pytest.fixture
def make_cfg() -> Iterator[Callable[..., DictConfig]]:
    yield compose
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One in-process run of the default experiment, shared by tests that only read it."""
    from kernellab.training import train

    run_dir = tmp_path_factory.mktemp("default_run")
    train(compose(), run_dir)
    return run_dir
