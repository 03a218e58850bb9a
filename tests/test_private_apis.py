"""Each module holding a library's private names states the versions it was written for; on
another version these tests fail, saying which module to re-check, so an upgrade can't silently
break a patch."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import sys

import pytest

MODULES = [
    ("kernellab._hydra_private", "hydra-core"),
    ("kernellab._submitit_private", "submitit"),
    ("kernellab._optuna_private", "optuna"),
    ("kernellab._joblib_private", "joblib"),
    ("hydra_plugins.kernellab_batched_launcher._private", "hydra-core"),
    ("hydra_plugins.kernellab_batched_launcher._private", "omegaconf"),
]


@pytest.mark.parametrize(("module", "package"), MODULES)
def test_written_for_the_installed_version(module, package):
    written_for = importlib.import_module(module).WRITTEN_FOR
    if isinstance(written_for, dict):  # a module relying on several packages
        written_for = written_for[package]
    installed = ".".join(importlib.metadata.version(package).split(".")[:2])
    assert installed in written_for, (
        f"{module} uses private parts of {package} and was written for {package} "
        f"{', '.join(written_for)}; {installed} is installed: check each use there still holds "
        "(its comment says what it relies on), then add the version to WRITTEN_FOR"
    )


def test_the_private_names_used_still_exist():
    from submitit.local import local

    from kernellab._hydra_private import BasicSweeper

    assert callable(BasicSweeper.split_arguments)
    assert callable(local.start_controller)


def test_the_batched_launchers_private_names_still_work(tmp_path):

    from omegaconf import OmegaConf

    from hydra_plugins.kernellab_batched_launcher import _private

    assert _private.ConfigLoaderImpl is not None, (
        "Hydra's ConfigLoaderImpl moved: jobs compose slowly"
    )
    cfg = OmegaConf.create({"a": {"b": 1}, "c": "${a.b}", "hydra": {"x": "${c}"}})
    assert _private.node_value(_private.node(cfg, "c")) == "${a.b}"
    view = _private.hydra_view(cfg)
    assert view.hydra.x == 1  # the shared node resolves against the job's config
    handler = logging.FileHandler(str(tmp_path / "job.log"), delay=True)
    _private.reopen(handler)
    assert not handler.stream.closed
    handler.close()


def test_submitit_controllers_start_with_ctrl_c_ignored_once_patched(monkeypatch):
    import signal

    from submitit.local import local

    from kernellab._submitit_private import controllers_ignore_ctrl_c

    seen = []
    monkeypatch.setattr(local, "start_controller", lambda: seen.append(signal.getsignal(2)))
    controllers_ignore_ctrl_c()
    controllers_ignore_ctrl_c()  # idempotent: wrapped once
    local.start_controller()
    assert seen == [signal.SIG_IGN]
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # restored after the start


def test_optunas_handler_learns_its_stream(monkeypatch):
    from kernellab._optuna_private import plain_logs_off_terminal

    plain_logs_off_terminal()
    handlers = [h for h in logging.getLogger("optuna").handlers if h.formatter is not None]
    for handler in handlers:
        if hasattr(handler.formatter, "stream"):
            assert handler.formatter.stream is handler.stream


@pytest.mark.parametrize("template", ["help", "hydra_help"])
def test_the_help_patch_gives_hydras_own_text(monkeypatch, template):
    from pathlib import Path

    from hydra import initialize_config_dir
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import get_args_parser
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    import kernellab.config  # noqa: F401  (the schema and the help's resolver)
    from kernellab._hydra_private import help_fills_only_its_placeholders

    conf = Path(__file__).resolve().parents[1] / "conf"
    monkeypatch.setattr(Hydra, "get_help", Hydra.get_help)  # the original, restored after
    with initialize_config_dir(str(conf), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        cfg = hydra.compose_config("config", [], run_mode=RunMode.RUN)
        args = (cfg.hydra[template], cfg, get_args_parser(), False)
        want = Hydra.get_help(hydra, *args)
        help_fills_only_its_placeholders()
        assert Hydra.get_help(hydra, *args) == want


RUNS = [
    [],
    ["optim.lr=0.5", "seed=3"],
    ["experiment=sobel_x", "hydra.verbose=true"],
    ["optim=adam", "+hydra.job.env_set.X=1", "hydra.run.dir=somewhere"],
    ["hydra.mode=RUN", "trainer.steps=5"],
]


@pytest.mark.parametrize("overrides", RUNS)
def test_a_run_composed_once_is_hydras_own_config(monkeypatch, overrides):
    """What `_run_hydra` does for `python train.py OVERRIDES`: get_mode, then the run's
    composition (`hydra.mode=RUN` appended when no mode is set), with and without the patch."""
    from hydra._internal.hydra import Hydra
    from omegaconf import OmegaConf

    from kernellab._hydra_private import composes_a_run_once

    monkeypatch.setattr(Hydra, "get_mode", Hydra.get_mode)  # the original, restored after
    want = _run_config(overrides)
    composes_a_run_once()
    calls = _count_compositions(monkeypatch)
    got = _run_config(overrides)
    assert calls == [1]  # get_mode's only
    assert OmegaConf.to_yaml(got) == OmegaConf.to_yaml(want)


SWEEPS = [
    [],
    ["optim.lr=0.1,0.2", "hydra.sweep.dir=somewhere"],
    ["seed=range(3)", "experiment=sobel_x,laplacian", "hydra/launcher=basic"],
    ["hydra.mode=RUN", "seed=1,2"],
]


@pytest.mark.parametrize("overrides", SWEEPS)
def test_a_sweep_composed_once_is_hydras_own_config(monkeypatch, overrides):
    from hydra._internal.hydra import Hydra
    from omegaconf import OmegaConf

    from kernellab._hydra_private import composes_a_run_once

    monkeypatch.setattr(Hydra, "get_mode", Hydra.get_mode)
    want = _run_config(overrides, multirun=True)
    composes_a_run_once()
    calls = _count_compositions(monkeypatch)
    got = _run_config(overrides, multirun=True)
    assert calls == [1]
    assert OmegaConf.to_yaml(got) == OmegaConf.to_yaml(want)


def test_a_run_composed_once_refuses_what_hydras_run_refuses(monkeypatch):
    from hydra._internal.hydra import Hydra
    from hydra.errors import ConfigCompositionException

    from kernellab._hydra_private import composes_a_run_once

    monkeypatch.setattr(Hydra, "get_mode", Hydra.get_mode)
    composes_a_run_once()
    with pytest.raises(ConfigCompositionException, match="multirun"):
        _run_config(["optim.lr=0.1,0.2"])  # a sweep without -m
    calls = _count_compositions(monkeypatch)
    with pytest.raises(ConfigCompositionException, match="You must specify 'optim'"):
        _run_config(["optim=???"])  # a mandatory group left out: Hydra's own composition
    assert calls == [2]
    with pytest.raises(ConfigCompositionException, match="Sweeping over Hydra's configuration"):
        _run_config(["hydra.verbose=true,false"], multirun=True)


def _count_compositions(monkeypatch) -> list[int]:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    calls = [0]
    compose = ConfigLoaderImpl.load_configuration

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return compose(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counted)
    return calls


def _run_config(overrides: list[str], multirun: bool = False):
    from pathlib import Path

    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    import kernellab.config  # noqa: F401  (the schema)

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(str(conf), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        overrides = list(overrides)
        mode = hydra.get_mode(config_name="config", overrides=overrides)
        run_mode = RunMode.MULTIRUN if multirun else RunMode.RUN
        if mode is None or (multirun and mode == RunMode.RUN):  # as Hydra's _run_app
            overrides.append(f"hydra.mode={run_mode.name}")
        return hydra.compose_config("config", overrides, run_mode=run_mode)


def test_written_for_this_python():
    import atexit

    from kernellab._python_private import WRITTEN_FOR

    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert running in WRITTEN_FOR, (
        "kernellab._python_private uses CPython's atexit._run_exitfuncs and was written for "
        f"Python {', '.join(WRITTEN_FOR)}; {running} runs: check it still runs the atexit "
        "handlers (tests/test_command_line.py), then add the version to WRITTEN_FOR"
    )
    assert callable(getattr(atexit, "_run_exitfuncs", None))
