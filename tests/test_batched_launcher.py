"""`hydra/launcher=batched` (src/hydra_plugins/kernellab_batched_launcher).

Hydra's own launcher test suites, then: the fast composition against Hydra's, job for job the
same results and files as Hydra's basic launcher, per-job log files, the batch-runner seam,
one composition per job under the basic sweeper, Optuna, the command line and the packaging.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hydra
import pytest
import yaml
from hydra._internal.hydra import Hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

import kernellab.config  # noqa: F401  (registers the schema)
from hydra_plugins.kernellab_batched_launcher import (
    BATCH_RUNNER_ATTR,
    PreparedJob,
    _compose,
    _logging,
    batch_runner,
    run_in_workers,
    split,
)
from hydra_plugins.kernellab_batched_launcher._compose import SweepComposer
from tests.helpers import run_cli


@pytest.fixture(autouse=True)
def unspecified_version_base() -> Iterator[None]:
    """Hydra's test suites expect the version base they set themselves (none: Hydra 1.1's
    behaviour, the job's cwd changed); kernellab's own tests leave 1.3 behind in the process."""
    from hydra.version import _UNSPECIFIED_, VersionBase

    base = VersionBase.instance()
    saved, base.version_base = base.version_base, _UNSPECIFIED_
    yield
    base.version_base = saved


ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
HYDRA_TEST_CONFIGS = Path(hydra.__file__).parent / "test_utils" / "configs"


@pytest.fixture(autouse=True)
def plugin_importable_in_subprocesses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps started by these tests (Hydra's integration suite, the CLI) import this checkout's
    plugin, whatever their working directory."""
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(SRC), path) if p))


@pytest.fixture(autouse=True)
def fresh_version_base() -> Iterator[None]:
    """Hydra's version_base is process-wide: other test modules set 1.3, Hydra's launcher
    suites expect it unset (their apps don't set it). Each test here starts unset."""
    from hydra.version import _UNSPECIFIED_, VersionBase

    base = VersionBase.instance()  # a Singleton: VersionBase() would be this same object
    saved = base.version_base
    base.version_base = _UNSPECIFIED_
    yield
    VersionBase.instance().version_base = saved


def test_discovery() -> None:
    assert "BatchedLauncher" in [x.__name__ for x in Plugins.instance().discover(Launcher)]


# --- Hydra's own suites ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "launcher_name, overrides",
    [
        ("batched", []),
        ("batched", ["hydra.launcher.reuse_validation=false"]),
        (
            "batched",
            ["hydra.launcher.fast_compose=false", "hydra.launcher.reuse_logging=false"],
        ),
    ],
)
@pytest.mark.slow  # Hydra's suites: ~40 s in-process; make test runs them
class TestBatchedLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize(
    "launcher_name, overrides",
    [
        ("batched", ["hydra.sweeper.max_batch_size=2"]),
        ("batched", ["hydra.sweeper.max_batch_size=2", "hydra.launcher.reuse_validation=false"]),
    ],
)
@pytest.mark.slow
class TestBatchedLauncherInBatches(BatchedSweeperTestSuite):
    pass


@pytest.mark.slow
@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [
        ({}, ["-m", "hydra/launcher=batched"]),
        ({}, ["-m", "hydra/launcher=batched", "hydra.launcher.fast_compose=false"]),
    ],
)
class TestBatchedLauncherIntegration(IntegrationTestSuite):
    pass


# --- the fast composition equals Hydra's ---------------------------------------------------

KERNELLAB_JOBS = [
    ["seed=3"],
    ["optim.lr=0.1"],
    ["model.kernel_size=[1,3]", "optim.lr=0.001"],
    ["optim=adam"],
    ["optim=adam", "optim.lr=0.2"],
    ["optim.lr=0.2", "optim=adam"],
    ["experiment=sobel_x"],
    ["experiment=sobel_x", "seed=2", "optim=adam"],
    ["hparams_search=edge_optuna", "seed=1"],
    ["++seed=4"],
    ["++trainer.print_every=1"],  # `+` adds no kernellab key (refused): a force-add of one
    ["+hydra.job.env_set.KL_NOTE=${hydra:job.num}"],
    ["task.target_kernel=sobel_x"],
    ["task.stripe=[1,3]"],
    ["trainer.steps=${seed}", "seed=7"],
    ["trainer.resume=null"],
    ["trainer.resume=/tmp/somewhere"],
    ["trainer.device='cpu'"],
    ["task.target_kernel=[[1,0],[0,-1]]"],
    ["hydra.job.name=other", "seed=1"],  # a hydra override: Hydra's full path
    # Hydra's errors, each the same either way
    ["trainer.steps=abc"],
    ["boo=bar"],
    ["optim=nope"],
    ["task.stripe=[a,b]"],
    ["+seed=1"],
    ["~logger.snapshot_every"],
    ["seed=1,2"],
    ["seed="],
]

HYDRA_TEST_JOBS = [
    ("db_conf", [], ["db=mysql", "db.user=someone"]),
    ("db_conf", [], ["db=postgresql", "db.user=someone"]),
    ("db_conf", [], ["db.user=someone"]),
    ("compose", [], ["+a=0"]),
    ("compose", [], ["group1=file2", "bar=200"]),
    ("compose", [], ["+group2=file1"]),
    ("compose", [], ["~group1"]),
    ("compose", ["hydra.job.config.override_dirname.kv_sep=_"], ["bar=1", "foo=2"]),
    ("unspecified_mandatory_default", [], ["group1=file1"]),
    ("unspecified_mandatory_default", [], []),
    ("custom_resolver", [], []),
]


@pytest.fixture
def config_loader() -> Iterator[Callable[..., Any]]:
    def load(config_dir: Path, config_name: str, hydra_overrides: list[str]) -> Any:
        GlobalHydra.instance().clear()
        hydra.initialize_config_dir(config_dir=str(config_dir), version_base="1.3")
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration(
            config_name, ["hydra.sweep.dir=/tmp/sweep", *hydra_overrides], RunMode.MULTIRUN
        )
        # as Hydra's sweep does before launching: ${now:} values are fixed on the master
        for key in ("hydra.sweep.dir", "hydra.run.dir", "hydra.output_subdir"):
            OmegaConf.select(master, key)
        return loader, master

    registered = not OmegaConf.has_resolver("my_custom_resolver")
    if registered:
        OmegaConf.register_new_resolver("my_custom_resolver", lambda: "foo")
    yield load
    GlobalHydra.instance().clear()
    if registered:  # Hydra's LauncherTestSuite registers it itself, later in this process
        OmegaConf.clear_resolver("my_custom_resolver")


def compose_both(loader: Any, master: DictConfig, overrides: list[str]) -> tuple[Any, Any]:
    results = []
    for compose in (
        lambda: loader.load_sweep_config(master, list(overrides)),
        lambda: SweepComposer(loader, master).compose(overrides),
    ):
        try:
            results.append(compose())
        except Exception as error:
            results.append(error)
    return results[0], results[1]


@pytest.mark.parametrize("overrides", KERNELLAB_JOBS, ids=" ".join)
def test_fast_composition_equals_hydras_for_kernellab(config_loader, overrides) -> None:
    loader, master = config_loader(ROOT / "conf", "config", [])
    expected, actual = compose_both(loader, master, overrides)
    assert_same_outcome(expected, actual)


@pytest.mark.parametrize(
    "config_name, hydra_overrides, overrides", HYDRA_TEST_JOBS, ids=lambda v: str(v)
)
def test_fast_composition_equals_hydras_for_hydras_test_configs(
    config_loader, config_name, hydra_overrides, overrides
) -> None:
    loader, master = config_loader(HYDRA_TEST_CONFIGS, config_name, hydra_overrides)
    expected, actual = compose_both(loader, master, overrides)
    assert_same_outcome(expected, actual)


def test_fast_composition_composes_once_per_group_choice(config_loader) -> None:
    loader, master = config_loader(ROOT / "conf", "config", [])
    composer = SweepComposer(loader, master)
    for lr in (0.1, 0.2):
        for optim in ("sgd", "adam"):
            for seed in range(3):
                composer.compose([f"optim={optim}", f"optim.lr={lr}", f"seed={seed}"])
    composer.compose(["hydra.job.name=x"])
    assert composer.stats == {"fast": 12, "full": 1, "bases": 2}


def test_task_config_is_the_job_config_without_hydra(config_loader) -> None:
    loader, master = config_loader(ROOT / "conf", "config", [])
    composer = SweepComposer(loader, master)
    for overrides in (["seed=3", "optim=adam"], ["+extra=${seed}"], ["hydra.job.name=x"]):
        job = composer.compose_job(overrides)
        expected = _compose.without_hydra(job.config)
        assert_same_config(expected, job.task_config())


@pytest.mark.parametrize(
    "overrides",
    [["seed=3", "optim=adam", "optim.lr=0.5"], ["+extra=${seed}", "~optim.lr"], ["seed=4"]],
    ids=" ".join,
)
def test_a_jobs_yaml_files_are_whole_dumps_of_its_configs(config_loader, overrides) -> None:
    loader, master = config_loader(ROOT / "conf", "config", [])
    composer = SweepComposer(loader, master)
    composer.compose_job(["seed=0"])  # the base's YAML, made before this job's values
    job = composer.compose_job(overrides)
    job.set_hydra({"job": {"id": 7}, "runtime": {"output_dir": "/tmp/sweep/7"}})
    task = job.task_config()
    assert job.task_yaml(task) == _compose.to_yaml(task)
    assert job.hydra_yaml() == _compose.to_yaml(OmegaConf.masked_copy(job.config, "hydra"))
    assert job.overrides_yaml() == _compose.to_yaml(OmegaConf.create(overrides))
    assert "id: '7'" in job.hydra_yaml()  # the schema's type (a string), as Hydra writes it


def test_set_hydra_sets_a_read_only_hydra_node_and_leaves_it_read_only(config_loader) -> None:
    loader, master = config_loader(ROOT / "conf", "config", [])
    job = SweepComposer(loader, master).compose_job(["seed=1"])
    OmegaConf.set_readonly(job.config.hydra, True)
    job.set_hydra({"job": {"num": 9}, "runtime": {"output_dir": "/tmp/sweep/9"}})
    assert (job.config.hydra.job.num, job.config.hydra.runtime.output_dir) == (9, "/tmp/sweep/9")
    assert OmegaConf.is_readonly(job.config.hydra)
    assert "num: 9" in job.hydra_yaml()


def test_a_logging_config_resolved_by_its_interpolations_only() -> None:
    cfg = OmegaConf.create(
        {
            "out": "/tmp/x",
            "sub": {"a": 1},
            "log": {
                "handlers": {"file": {"filename": "${out}/train.log", "level": "INFO"}},
                "loggers": {"hydra.core": {"level": "${sub.a}"}},  # a key with a dot
                "copy": "${sub}",  # a whole node
                "escaped": "\\${not_one}",
                "list": ["${out}", 2, {"deep": "${sub.a}"}],
            },
        }
    )
    raw = OmegaConf.to_container(cfg.log, resolve=False)
    resolved = _logging._interpolations_resolved(raw, cfg.log)
    assert resolved == OmegaConf.to_container(cfg.log, resolve=True)
    assert resolved["handlers"]["file"]["filename"] == "/tmp/x/train.log"
    assert raw["handlers"]["file"]["filename"] == "${out}/train.log"  # left as it was


def assert_same_outcome(expected: Any, actual: Any) -> None:
    if isinstance(expected, Exception):
        assert type(actual) is type(expected), actual
        assert str(actual) == str(expected)
        return
    assert not isinstance(actual, Exception), actual
    assert_same_config(expected, actual)
    for cfg in (expected, actual):  # what the launcher sets before the job runs
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.job.num = cfg.hydra.job.id = 5
            cfg.hydra.runtime.output_dir = "/tmp/sweep/job"
    resolved = []
    for cfg in (expected, actual):
        HydraConfig.instance().set_config(cfg)
        resolved.append(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))
    assert resolved[0] == resolved[1]


def assert_same_config(a: Any, b: Any, path: str = "") -> None:
    """Same values, interpolations, node types, flags and typing metadata, recursively."""
    assert type(a) is type(b), path
    if path == "":
        assert OmegaConf.to_yaml(a) == OmegaConf.to_yaml(b)
    meta_a, meta_b = a._metadata, b._metadata
    for field in ("ref_type", "object_type", "optional", "key", "flags", "flags_root"):
        assert getattr(meta_a, field, None) == getattr(meta_b, field, None), (path, field)
    if isinstance(a, DictConfig | ListConfig):
        for field in ("key_type", "element_type"):
            assert getattr(meta_a, field, None) == getattr(meta_b, field, None), (path, field)
        assert a._is_none() == b._is_none() and a._is_missing() == b._is_missing(), path
        if a._is_none() or a._is_missing() or a._is_interpolation():
            assert a._value() == b._value(), path
            return
        keys = list(a.keys()) if isinstance(a, DictConfig) else list(range(len(a)))
        assert keys == (list(b.keys()) if isinstance(b, DictConfig) else list(range(len(b))))
        for key in keys:
            assert_same_config(a._get_node(key), b._get_node(key), f"{path}.{key}")
    else:
        assert a._value() == b._value(), path
        assert type(a._value()) is type(b._value()), path


# --- job for job what Hydra's basic launcher gives ----------------------------------------


class Recorder(Callback):
    """Records the job callbacks (configured by tests with hydra.callbacks.recorder)."""

    events: list[tuple[str, Any]] = []  # noqa: RUF012
    returns: list[JobReturn] = []  # noqa: RUF012
    handlers_at_end: list[tuple[str, str | None]] = []  # noqa: RUF012

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        Recorder.events.append(("start", config.hydra.job.num))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        Recorder.events.append(("end", config.hydra.job.num))
        Recorder.returns.append(job_return)


def handler_files() -> list[tuple[str, str | None]]:
    return [
        (type(h).__name__, getattr(h, "baseFilename", None)) for h in logging.getLogger().handlers
    ]


def multirun(
    sweep_dir: Path,
    task: Callable[[DictConfig], Any],
    *overrides: str,
    raises: type[BaseException] | None = None,
) -> list[JobReturn]:
    """`train.py -m OVERRIDES` in this process, with `task` as the task function: the jobs'
    JobReturns in the order they ended. A sweeper raises a failed job's exception after its
    batch: `raises` expects that."""
    state = copy.deepcopy(hydra.core.singleton.Singleton.get_state())
    Recorder.events, Recorder.returns = [], []
    hydra.version.setbase("1.3")  # as train.py's @hydra.main
    try:
        app = Hydra.create_main_hydra_file_or_module(
            calling_file=str(ROOT / "train.py"),
            calling_module=None,
            config_path="conf",
            job_name="train",
        )
        argv = [
            *overrides,
            "~hydra.callbacks.sweep_report",
            f"+hydra.callbacks.recorder._target_={__name__}.Recorder",
            f"hydra.sweep.dir={sweep_dir}",
        ]
        if raises is None:
            app.multirun("config", task, argv, with_log_configuration=True)
        else:
            with pytest.raises(raises):
                app.multirun("config", task, argv, with_log_configuration=True)
        return list(Recorder.returns)
    finally:
        Recorder.handlers_at_end = handler_files()
        GlobalHydra.instance().clear()
        hydra.core.singleton.Singleton.set_state(state)
        for handler in logging.getLogger().handlers[:]:
            logging.getLogger().removeHandler(handler)
            handler.close()


class Observer:
    """A task function recording what a job sees."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, cfg: DictConfig) -> Any:
        hc = HydraConfig.get()
        logging.getLogger("kernellab.test").info("job %s seed %s", hc.job.num, cfg.seed)
        self.seen.append(
            {
                "cfg": OmegaConf.to_yaml(cfg),
                "hydra": OmegaConf.to_yaml(hc),
                "run_dir": hc.run.dir,
                "sweep_subdir": hc.sweep.subdir,
                "output_subdir": hc.output_subdir,
                "output_dir": hc.runtime.output_dir,
                "cwd": os.getcwd(),
                "env": os.environ.get("KL_BATCHED_TEST"),
                "handlers": handler_files(),
            }
        )
        if cfg.seed == 13:
            raise ValueError("unlucky")
        return cfg.seed * 10


def job_files(job_dir: Path) -> dict[str, str]:
    files = {}
    for path in sorted(job_dir.rglob("*")):
        if path.is_file():
            text = path.read_text()
            if path.suffix == ".log":  # timestamps differ
                text = re.sub(r"^\[[^\]]*\]", "[time]", text, flags=re.M)
            if path.suffix == ".yaml":  # the same content; libyaml folds long strings its own way
                text = yaml.safe_dump(yaml.safe_load(text), sort_keys=False)
            files[str(path.relative_to(job_dir))] = text
    return files


@pytest.mark.slow  # whole sweeps, twice: seconds each
@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["hydra.job.chdir=true"],
        ["hydra.launcher.reuse_logging=false", "hydra.launcher.fast_compose=false"],
        ["hydra.sweeper.max_batch_size=2"],  # the failing jobs are in the second
    ],
    ids=["default", "chdir", "plain", "two-batches"],
)
def test_jobs_match_the_basic_launchers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str]
) -> None:
    sweep = [
        "seed=1,13",
        "optim=sgd,adam",
        "++trainer.print_every=${seed}",
        "+hydra.job.env_set.KL_BATCHED_TEST=yes",
        *extra,
    ]
    results = {}
    for launcher in ("basic", "batched"):
        observer = Observer()
        own = [a for a in sweep if launcher == "batched" or not a.startswith("hydra.launcher.")]
        argv = [f"hydra/launcher={launcher}", *own]
        (tmp_path / launcher).mkdir()
        monkeypatch.chdir(tmp_path / launcher)  # a relative sweep dir, as kernellab's
        returns = multirun(Path("sweep"), observer, *argv, raises=ValueError)
        results[launcher] = (returns, observer.seen, list(Recorder.events))

    def same(value: Any) -> Any:  # the two sweeps differ in their dirs and launcher only
        text = str(value).replace(str(tmp_path / "batched"), str(tmp_path / "basic"))
        text = re.sub(r"(hydra/(?:launcher|sweeper))(=|: )(basic|batched)", r"\1\2X", text)
        text = re.sub(r"\d\d-\d\d-\d\d-\d{6}", "<time>", text)  # ${now:} differs by sweep
        text = re.sub(r"(?m)^ *- hydra\.launcher\..*\n", "", text)
        return re.sub(r"(?m)^( *)(launcher|sweeper):\n(?:\1  .*\n)+", r"\1\2: X\n", text)

    (basic, seen_basic, events_basic), (batched, seen_batched, events_batched) = (
        results["basic"],
        results["batched"],
    )
    assert len(basic) == len(batched) == 4
    assert events_basic == events_batched == [(e, n) for n in range(4) for e in ("start", "end")]
    for rb, rx, sb, sx in zip(basic, batched, seen_basic, seen_batched, strict=True):
        assert rx.overrides == rb.overrides
        assert rx.status == rb.status
        assert rx.task_name == rb.task_name == "train"
        if rb.status == JobStatus.COMPLETED:
            assert rx.return_value == rb.return_value
        else:
            assert type(rx._return_value) is type(rb._return_value) is ValueError
        assert same(rx.working_dir) == rb.working_dir
        assert_same_config(rb.cfg, rx.cfg)
        assert same(OmegaConf.to_yaml(rx.hydra_cfg)) == same(OmegaConf.to_yaml(rb.hydra_cfg))
        assert {k: same(v) for k, v in sx.items()} == {k: same(v) for k, v in sb.items()}
        dirs = [Path(r.hydra_cfg.hydra.runtime.output_dir) for r in (rb, rx)]
        files_basic, files_batched = job_files(dirs[0]), job_files(dirs[1])
        assert set(files_batched) == {".hydra/config.yaml", ".hydra/hydra.yaml"} | {
            ".hydra/overrides.yaml",
            "train.log",
        }
        assert {k: same(v) for k, v in files_batched.items()} == {
            k: same(v) for k, v in files_basic.items()
        }
    # every job's log has its own line and only it
    logs = [(Path(r.hydra_cfg.hydra.runtime.output_dir) / "train.log").read_text() for r in batched]
    for num, text in enumerate(logs):
        assert re.findall(r"job (\d+) seed", text) == [str(num)]
    # after the sweep, Hydra's own logging (the console only) is back
    assert Recorder.handlers_at_end == [("StreamHandler", None)]


def test_logging_is_configured_once_per_launch(tmp_path: Path, monkeypatch) -> None:
    from hydra_plugins.kernellab_batched_launcher import _logging

    calls = []
    real = _logging.configure_log
    monkeypatch.setattr(_logging, "configure_log", lambda *a: calls.append(a) or real(*a))
    multirun(tmp_path / "s", Observer(), "hydra/launcher=batched", "seed=range(5)")
    assert len(calls) == 3  # Hydra's logging, the first job's, Hydra's again
    calls.clear()
    multirun(
        tmp_path / "t",
        Observer(),
        "hydra/launcher=batched",
        "seed=range(5)",
        "hydra.job_logging.disable_existing_loggers=true",  # dictConfig must run per job
    )
    assert len(calls) == 2 + 5


@pytest.mark.slow  # whole sweeps, twice: seconds each
@pytest.mark.parametrize("verbose", [False, True])
def test_jobs_that_change_logging_affect_later_jobs_as_with_the_basic_launcher(
    tmp_path: Path, verbose: bool
) -> None:
    """Jobs that add a root handler or change levels: a later job gets what it gets from the
    basic launcher, which configures the job logging (and hydra.verbose) afresh per job."""
    lines = {}
    argv = ["seed=range(6)", *(["hydra.verbose=kernellab.test"] if verbose else [])]
    for launcher in ("basic", "batched"):
        extra = tmp_path / f"{launcher}.log"
        observer = Observer()

        def task(cfg: DictConfig, extra: Path = extra, observer: Observer = observer) -> Any:
            num = HydraConfig.get().job.num
            if num == 1:
                logging.getLogger().addHandler(logging.FileHandler(extra))
            if num == 2:
                logging.getLogger().handlers[-1].setLevel(logging.ERROR)
            if num == 3:
                logging.getLogger("kernellab").setLevel(logging.WARNING)
            if num == 4:
                logging.getLogger("kernellab.test").setLevel(logging.WARNING)
            return observer(cfg)

        try:
            returns = multirun(tmp_path / launcher, task, f"hydra/launcher={launcher}", *argv)
        finally:
            for name in ("kernellab", "kernellab.test"):
                logging.getLogger(name).setLevel(logging.NOTSET)
        logs = [Path(r.hydra_cfg.hydra.runtime.output_dir, "train.log") for r in returns]
        lines[launcher] = [re.findall(r"job (\d+) seed", p.read_text()) for p in [*logs, extra]]
    assert lines["batched"] == lines["basic"]
    if verbose:  # kernellab.test is set to DEBUG again for every job
        assert lines["basic"] == [["0"], ["1"], [], ["3"], [], ["5"], ["1"]]
    else:
        assert lines["basic"] == [["0"], ["1"], [], [], [], [], ["1"]]


# --- the batch-runner seam -----------------------------------------------------------------


def make_task() -> Callable[[DictConfig], Any]:
    """A fresh task function (batch_runner sets an attribute on the one it decorates)."""

    def seed_task(cfg: DictConfig) -> Any:
        logging.getLogger("kernellab.test").info("sequential %s", cfg.seed)
        return cfg.seed

    return seed_task


def test_batch_runner_gets_prepared_jobs_and_drives_them(tmp_path: Path) -> None:
    seen: list[PreparedJob] = []
    outside = logging.getLogger("kernellab.test")

    def run_batch(jobs: list[PreparedJob]) -> None:
        seen.extend(jobs)
        for job in jobs:
            assert not job.started and not job.finished
            job.start()
        assert Recorder.events == [("start", n) for n in range(3)]
        outside.info("between jobs")
        for step in range(2):
            for job in jobs:
                with job.activate():
                    assert HydraConfig.get().job.num == job.idx
                    outside.info("job %s step %s", job.idx, step)
        for job in jobs:
            job.finish(job.task_cfg.seed * 100)

    task = batch_runner(run_batch)(make_task())
    returns = multirun(tmp_path / "s", task, "hydra/launcher=batched", "seed=5,6,7")
    assert [r.return_value for r in returns] == [500, 600, 700]
    assert [j.idx for j in seen] == [0, 1, 2]
    assert [j.overrides for j in seen] == [["seed=5"], ["seed=6"], ["seed=7"]]
    for job, ret in zip(seen, returns, strict=True):
        assert job.result is ret
        assert job.output_dir == tmp_path / "s" / f"{job.idx}_seed={job.task_cfg.seed}"
        assert job.config.hydra.runtime.output_dir == str(job.output_dir)
        assert job.hydra_cfg.hydra.job.num == job.idx and job.config.hydra.job.id == str(job.idx)
        assert "hydra" not in job.task_cfg and job.task_cfg.seed == 5 + job.idx
        assert (job.output_dir / ".hydra" / "hydra.yaml").is_file()
        log = (job.output_dir / "train.log").read_text()
        assert re.findall(r"job (\d) step (\d)", log) == [(str(job.idx), "0"), (str(job.idx), "1")]
        assert "between jobs" not in log and "sequential" not in log
    assert Recorder.events[3:] == [("end", n) for n in range(3)]


def test_batch_runner_may_run_jobs_the_normal_way(tmp_path: Path) -> None:
    task = batch_runner(lambda jobs: [job.run() for job in jobs])(make_task())
    returns = multirun(tmp_path / "s", task, "hydra/launcher=batched", "seed=1,2")
    assert [r.return_value for r in returns] == [1, 2]
    for ret in returns:
        log = Path(ret.hydra_cfg.hydra.runtime.output_dir, "train.log").read_text()
        assert f"sequential {ret.return_value}" in log


def test_batch_runner_is_ignored_when_switched_off(tmp_path: Path) -> None:
    calls = []
    task = batch_runner(calls.append)(make_task())
    argv = ["hydra/launcher=batched", "hydra.launcher.batch_runner=false", "seed=1,2"]
    returns = multirun(tmp_path / "s", task, *argv)
    assert [r.return_value for r in returns] == [1, 2] and calls == []


def test_jobs_a_batch_runner_leaves_unfinished_fail(tmp_path: Path) -> None:
    def run_batch(jobs: list[PreparedJob]) -> None:
        jobs[0].finish("done")

    task = batch_runner(run_batch)(make_task())
    with pytest.raises(RuntimeError, match="the batch runner did not finish job 1"):
        multirun(tmp_path / "s", task, "hydra/launcher=batched", "seed=1,2")
    assert Recorder.events == [("start", 0), ("end", 0), ("start", 1), ("end", 1)]


def test_a_batch_runner_that_raises_fails_its_unfinished_jobs(tmp_path: Path) -> None:
    def run_batch(jobs: list[PreparedJob]) -> None:
        jobs[0].run()
        jobs[1].start()
        raise ValueError("batch exploded")

    task = batch_runner(run_batch)(make_task())
    with pytest.raises(ValueError, match="batch exploded"):
        multirun(tmp_path / "s", task, "hydra/launcher=batched", "seed=1,2,3")
    assert [e for e in Recorder.events if e[0] == "end"] == [("end", 0), ("end", 1), ("end", 2)]


@pytest.mark.parametrize("order", ["inside", "outside"])
def test_batch_runner_decorator_works_on_either_side_of_hydra_main(order: str) -> None:
    from hydra_plugins.kernellab_batched_launcher._core import find_batch_runner

    def run_batch(jobs: list[PreparedJob]) -> None:
        pass

    def main(cfg: DictConfig) -> None:
        pass

    decorate_main = hydra.main(version_base="1.3", config_path=None)
    if order == "inside":
        app = decorate_main(batch_runner(run_batch)(main))
    else:
        app = batch_runner(run_batch)(decorate_main(main))
    # Hydra hands the launcher the innermost function
    assert find_batch_runner(app.__wrapped__) is run_batch
    assert getattr(main, BATCH_RUNNER_ATTR) is run_batch
    assert find_batch_runner(make_task()) is None


# --- the basic sweeper's validation: one composition per job ------------------------------


@pytest.mark.parametrize(
    "argv, full, fast",
    [
        (["hydra/launcher=basic"], 2 * 4, 0),
        (["hydra/launcher=batched"], 1, 4),  # validation composes, the launch reuses
        (["hydra/launcher=batched", "hydra.launcher.reuse_validation=false"], 4 + 1, 4),
        (["hydra/launcher=batched", "hydra.launcher.fast_compose=false"], 2 * 4, 0),
    ],
    ids=["basic", "batched", "batched-own-validation", "batched-hydra-composition"],
)
def test_how_often_each_job_is_composed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], full: int, fast: int
) -> None:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    counts = {"full": 0, "fast": 0}
    real_load = ConfigLoaderImpl.load_sweep_config
    real_compose = SweepComposer.compose_job

    def load(self, *args, **kwargs):
        counts["full"] += 1
        return real_load(self, *args, **kwargs)

    def compose(self, overrides):
        result = real_compose(self, overrides)
        counts["fast"] += result._base is not None
        return result

    monkeypatch.setattr(ConfigLoaderImpl, "load_sweep_config", load)
    monkeypatch.setattr(SweepComposer, "compose_job", compose)
    returns = multirun(tmp_path / "s", make_task(), *argv, "seed=range(4)")
    assert [r.return_value for r in returns] == [0, 1, 2, 3]
    assert counts == {"full": full, "fast": fast}


def test_a_core_that_keeps_no_validation_keeps_no_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """slurm_batched's submitting process (`keeps_validation=False`: its tasks compose their own
    jobs): the validation pass composes and checks every job and keeps none of their configs (a
    hundred thousand kept were ~20 GB); a launch in that process composes its jobs itself."""
    from hydra_plugins.kernellab_batched_launcher._core import BatchedLauncherCore

    cores: list[BatchedLauncherCore] = []
    kept_at_launch: list[int] = []
    real_init, real_launch = BatchedLauncherCore.__init__, BatchedLauncherCore.launch

    def init(self: BatchedLauncherCore, keeps_validation: bool = True, **options: Any) -> None:
        real_init(self, keeps_validation=False, **options)
        cores.append(self)

    def launch(self: BatchedLauncherCore, *args: Any) -> list[JobReturn]:
        kept_at_launch.append(len(self._validated))
        return real_launch(self, *args)

    monkeypatch.setattr(BatchedLauncherCore, "__init__", init)
    monkeypatch.setattr(BatchedLauncherCore, "launch", launch)
    argv = ["hydra/launcher=batched", "hydra.launcher.workers=1", "seed=range(4)"]
    returns = multirun(tmp_path / "s", make_task(), *argv)
    assert [r.return_value for r in returns] == [0, 1, 2, 3]
    assert kept_at_launch == [0] and cores[0]._checked == 4  # composed, checked, not kept


@pytest.mark.parametrize("reuse", ["true", "false"])
def test_a_bad_job_is_refused_before_any_job_runs(tmp_path: Path, reuse: str) -> None:
    calls = []
    argv = ["hydra/launcher=batched", f"hydra.launcher.reuse_validation={reuse}"]
    with pytest.raises(Exception, match=r"trainer\.steps=abc"):
        multirun(tmp_path / "s", calls.append, *argv, "trainer.steps=1,abc")
    assert calls == []


def test_only_the_sweepers_validation_is_taken_over() -> None:
    from hydra_plugins.kernellab_batched_launcher._validation import (
        ValidationSharingLoader,
        unwrap,
    )

    master, other = OmegaConf.create({"a": 1}), OmegaConf.create({"a": 1})

    class Loader:
        def load_sweep_config(self, master_config, sweep_overrides):
            return ("hydra", master_config is master, sweep_overrides)

        def list_groups(self, parent):
            return ["g"]

        secret = 42

    class Core:
        config = master

        def compose_for_launch(self, overrides):
            return ("launcher", overrides)

    loader = ValidationSharingLoader(Loader(), Core())  # type: ignore[arg-type]
    assert unwrap(ValidationSharingLoader(loader, Core())) is loader.loader  # type: ignore[arg-type]

    class Validator(Sweeper):  # Hydra's validate_batch_is_legal, inherited
        def __init__(self, config):
            self.hydra_context = HydraContext(config_loader=loader, callbacks=None)  # type: ignore[arg-type]
            self.config = config

        def setup(self, **kwargs):
            pass

        def sweep(self, arguments):
            pass

    calls = []
    Core.compose_for_launch = lambda self, o: calls.append(("launcher", o))  # type: ignore[method-assign]
    Validator(master).validate_batch_is_legal([["x=1"], ["x=2"]])
    assert calls == [("launcher", ["x=1"]), ("launcher", ["x=2"])]
    Validator(other).validate_batch_is_legal([["x=3"]])  # another config: Hydra's loader
    assert len(calls) == 2
    assert loader.load_sweep_config(master, ["x=4"]) == ("hydra", True, ["x=4"])  # not validation
    assert loader.list_groups("") == ["g"] and loader.secret == 42


# --- Optuna, and the command line ---------------------------------------------------------


@pytest.mark.slow  # whole sweeps, twice: seconds each
def test_optuna_sweeper_with_the_batched_launcher(tmp_path: Path) -> None:
    argv = [
        "hydra/launcher=batched",
        "hparams_search=edge_optuna",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.sampler.seed=0",
    ]
    observer = Observer()
    returns = multirun(tmp_path / "s", lambda cfg: float(observer(cfg)), *argv)
    assert len(returns) == 4
    assert [r.hydra_cfg.hydra.job.num for r in returns] == [0, 1, 2, 3]
    assert all(r.status == JobStatus.COMPLETED for r in returns)
    for ret in returns:
        keys = {o.split("=")[0] for o in ret.overrides}
        assert keys == {"hparams_search", "optim.lr", "model.kernel_size", "optim"}
        log = Path(ret.hydra_cfg.hydra.runtime.output_dir, "train.log").read_text()
        assert re.findall(r"job (\d+) seed", log) == [str(ret.hydra_cfg.hydra.job.num)]
    assert (tmp_path / "s" / "optimization_results.yaml").is_file()


@pytest.mark.slow
def test_cli_sweep_trains_every_job(tmp_path: Path) -> None:
    from kernellab.rundir import read_metrics

    proc = run_cli(
        "-m",
        "hydra/launcher=batched",
        "seed=0,1,2",
        "trainer.steps=5",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    jobs = sorted(p.parent for p in (tmp_path / "sweep").glob("*/.hydra"))
    assert [p.name for p in jobs] == [f"{i}_seed={i},trainer.steps=5" for i in range(3)]
    for job in jobs:
        assert read_metrics(job)["status"] == "completed"
        assert "step 5, loss" in (job / "train.log").read_text()
    assert (tmp_path / "sweep" / "summary.csv").is_file()
    assert "recovered the kernel in" in proc.stdout  # three seeds of one setting: a study


@pytest.mark.slow
def test_cli_optuna_study(tmp_path: Path) -> None:
    proc = run_cli(
        "-m",
        "hydra/launcher=batched",
        "hparams_search=edge_optuna",
        "hydra.sweeper.n_trials=3",
        "trainer.steps=5",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "sweep" / "optimization_results.yaml").is_file()
    assert len([p for p in (tmp_path / "sweep").iterdir() if (p / "metrics.json").is_file()]) == 3


@pytest.mark.slow
def test_wheel_ships_the_plugin(tmp_path: Path) -> None:
    project = tmp_path / "project"  # a copy: building in place would leave build/ behind
    shutil.copytree(
        ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    subprocess.run(
        [*pip_wheel, "--no-build-isolation", "--wheel-dir", str(tmp_path / "dist"), str(project)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (wheel,) = (tmp_path / "dist").glob("kernellab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    plugin = "hydra_plugins/kernellab_batched_launcher/"
    modules = ("__init__.py", "batched_launcher.py", "config.py", "_core.py", "_validation.py")
    assert {plugin + m for m in modules} <= names
    assert "kernellab/training.py" in names
    assert "hydra_plugins/__init__.py" not in names  # a namespace package, shared with others


def test_validation_is_recognised_under_a_wrapper(monkeypatch: pytest.MonkeyPatch) -> None:
    """A profiler or spy that wraps Hydra's validate_batch_is_legal (functools.wraps) before
    the launcher is imported doesn't hide Hydra's function from it."""
    import functools
    import importlib

    from hydra_plugins.kernellab_batched_launcher import _validation

    original = Sweeper.validate_batch_is_legal

    @functools.wraps(original)
    def spy(self, batch):
        return original(self, batch)

    monkeypatch.setattr(Sweeper, "validate_batch_is_legal", spy)
    try:
        assert importlib.reload(_validation)._VALIDATION is original.__code__
    finally:
        monkeypatch.undo()
        importlib.reload(_validation)


def test_interpolations_parsed_once_resolve_as_before_and_only_during_a_launch() -> None:
    import omegaconf.base

    from hydra_plugins.kernellab_batched_launcher._private import interpolations_parsed_once

    cfg = OmegaConf.create({"a": 1, "b": "${a}-x", "c": "${oc.env:KL_NO_SUCH_VAR,default}/${b}"})
    plain = OmegaConf.to_container(cfg, resolve=True)
    parse = omegaconf.base.parse
    with interpolations_parsed_once():
        assert omegaconf.base.parse is not parse
        twice = [OmegaConf.to_container(cfg, resolve=True) for _ in range(2)]
        cfg.a = 2  # a cached tree still reads the current values
        changed = OmegaConf.to_container(cfg, resolve=True)
    assert omegaconf.base.parse is parse
    assert twice == [plain, plain] == [{"a": 1, "b": "1-x", "c": "default/1-x"}] * 2
    assert changed == {"a": 2, "b": "2-x", "c": "default/2-x"}


# --- local workers (hydra.launcher.workers) ------------------------------------------------


def test_workers_setting_auto_rule_and_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    from hydra_plugins.kernellab_batched_launcher import _workers

    per = _workers.MIN_JOBS_PER_WORKER
    assert _workers.resolve_workers("auto", 16, cores=2) == 1  # a small grid: one process
    assert _workers.resolve_workers("auto", 2 * per - 1, cores=2) == 1
    assert _workers.resolve_workers("auto", 2 * per, cores=2) == 2
    assert _workers.resolve_workers("auto", 1000, cores=2) == 2  # at most the cores
    assert _workers.resolve_workers(None, 1000, cores=1) == 1
    assert _workers.resolve_workers(2, 1, cores=2) == 1  # never more workers than jobs
    assert _workers.resolve_workers("2", 10, cores=2) == 2
    assert capsys.readouterr().err == ""
    assert _workers.resolve_workers(9, 100, cores=2) == 2  # clamped, with a warning
    err = capsys.readouterr().err
    assert (
        err
        == "warning: hydra.launcher.workers=9: this process may use 2 core(s); using 2 worker(s)\n"
    )
    for bad in (0, -1, "many", 1.5, True):
        with pytest.raises(ValueError, match="must be auto or a number of processes >= 1"):
            _workers.resolve_workers(bad, 10, cores=2)


def test_workers_split_balances_weights_and_keeps_job_order() -> None:
    from hydra_plugins.kernellab_batched_launcher import split

    assert split([1.0] * 5, 2) == [[0, 2, 4], [1, 3]]  # equal weights: round robin
    assert split([1.0] * 3, 5) == [[0], [1], [2]]  # no empty worker
    parts = split([100.0, 1, 1, 1, 1, 100, 1, 1], 2)
    loads = [sum([100.0, 1, 1, 1, 1, 100, 1, 1][i] for i in part) for part in parts]
    assert sorted(i for part in parts for i in part) == list(range(8))
    assert abs(loads[0] - loads[1]) <= 1 and all(part == sorted(part) for part in parts)


def test_workers_gpu_assignment(tmp_path: Path) -> None:
    from hydra_plugins.kernellab_batched_launcher import gpu_assignment, visible_gpus

    assert gpu_assignment(2, []) == [None, None]  # no GPU: the environment as it is
    assert gpu_assignment(2, ["0"]) == [None, None]  # one: every worker shares it
    assert gpu_assignment(2, ["0", "1"]) == ["0", "1"]  # one worker on each
    assert gpu_assignment(3, ["4", "6"]) == ["4", "6", "4"]
    assert gpu_assignment(1, ["0", "1", "2"]) == ["0"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    driver = tmp_path / "gpus"
    for bus in ("0000:17:00.0", "0000:65:00.0"):
        (driver / bus).mkdir(parents=True)
    assert visible_gpus({}, driver) == ["0", "1"]
    assert visible_gpus({}, tmp_path / "no-driver") == []


def pid_task(cfg: DictConfig) -> Any:
    if cfg.seed == 13:
        raise ValueError("unlucky")
    return (os.getpid(), cfg.seed)


def sweep_returns(sweep_dir: Path, task: Callable[[DictConfig], Any], *overrides: str) -> list:
    """`train.py -m OVERRIDES` in this process: the JobReturns the sweeper got, in job order."""
    state = copy.deepcopy(hydra.core.singleton.Singleton.get_state())
    hydra.version.setbase("1.3")
    try:
        app = Hydra.create_main_hydra_file_or_module(
            calling_file=str(ROOT / "train.py"),
            calling_module=None,
            config_path="conf",
            job_name="train",
        )
        argv = [*overrides, "~hydra.callbacks.sweep_report", f"hydra.sweep.dir={sweep_dir}"]
        batches = app.multirun("config", task, argv, with_log_configuration=True)
        return [ret for batch in batches for ret in batch]
    finally:
        GlobalHydra.instance().clear()
        hydra.core.singleton.Singleton.set_state(state)
        for handler in logging.getLogger().handlers[:]:
            logging.getLogger().removeHandler(handler)
            handler.close()


def children_and_zombies() -> list[int]:
    """This process's children, zombies (exited, never waited for) included, in pid order."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                children.append(int(stat.parent.name))
    return sorted(children)


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["none", "one-by-one"])
def test_workers_run_a_batch_in_other_processes_and_leave_none(tmp_path: Path, runner: str) -> None:
    """Without a batch runner, and with one that runs each job the normal way."""
    task: Any = pid_task
    if runner != "none":
        seen: list[int] = []

        def run_batch(jobs: list[PreparedJob]) -> None:
            seen.append(jobs[0].workers)
            parts = split([1.0] * len(jobs), jobs[0].workers)
            run_in_workers(
                [[jobs[i] for i in p] for p in parts], lambda p, k, n: [j.run() for j in p]
            )

        task = batch_runner(run_batch)(lambda cfg: pid_task(cfg))
    argv = ["hydra/launcher=batched", "hydra.launcher.workers=2", "seed=1,2,3,4,5"]
    others = children_and_zombies()  # the tests' own (tests.helpers' fork server)
    got = sweep_returns(tmp_path / "w", task, *argv)
    if runner != "none":
        assert seen == [2]
    assert [r.status for r in got] == [JobStatus.COMPLETED] * 5
    values = [r.return_value for r in got]
    assert [seed for _, seed in values] == [1, 2, 3, 4, 5]
    pids = {pid for pid, _ in values}
    assert len(pids) == 2 and os.getpid() not in pids  # two workers, neither this process
    assert children_and_zombies() == others  # every worker waited for: no zombie
    for ret in got:
        assert ret.overrides == [f"seed={ret.cfg.seed}"]
        assert Path(ret.hydra_cfg.hydra.runtime.output_dir, ".hydra", "overrides.yaml").is_file()
        assert Path(ret.hydra_cfg.hydra.runtime.output_dir, "train.log").is_file()


@pytest.mark.slow
def test_a_failed_jobs_exception_comes_back_from_its_worker(tmp_path: Path) -> None:
    argv = ["hydra/launcher=batched", "hydra.launcher.workers=2", "seed=1,13,3"]
    with pytest.raises(ValueError, match="unlucky"):  # the sweeper raises it, as always
        sweep_returns(tmp_path / "w", pid_task, *argv)


@pytest.mark.slow
def test_a_job_whose_worker_dies_fails(tmp_path: Path) -> None:
    def task(cfg: DictConfig) -> Any:
        if cfg.seed == 2:
            os._exit(3)  # the worker dies without a word
        return cfg.seed

    argv = ["hydra/launcher=batched", "hydra.launcher.workers=2", "seed=1,2,3,4"]
    with pytest.raises(RuntimeError, match="the batch runner did not finish job 1"):
        sweep_returns(tmp_path / "w", task, *argv)


# --- workers share a batch out before it is composed --------------------------------------


def test_contiguous_shares() -> None:
    from hydra_plugins.kernellab_batched_launcher._workers import contiguous

    assert contiguous(5, 2) == [[0, 1], [2, 3, 4]]
    assert contiguous(1000, 2) == [list(range(500)), list(range(500, 1000))]
    assert contiguous(2, 5) == [[0], [1]]  # no empty share


def test_planning_configs_apply_only_the_overrides_that_weigh(config_loader) -> None:
    """A thousand seeds are one config to weigh; an override of a weighed key, or a group
    choice, makes another; an override the planner can't read is composed in full."""
    loader, master = config_loader(ROOT / "conf", "config", [])
    composer = SweepComposer(loader, master)
    keys = ["trainer.steps", "model.kernel_size"]
    seeds = [composer.planning_config([f"seed={s}", "optim.lr=0.1"], keys) for s in range(5)]
    assert all(cfg is seeds[0] for cfg in seeds)
    assert composer.stats == {"fast": 0, "full": 0, "bases": 1}  # no job composed
    steps = composer.planning_config(["seed=1", "trainer.steps=7"], keys)
    assert steps.trainer.steps == 7 and seeds[0].trainer.steps != 7
    kernel = composer.planning_config(["model.kernel_size=[1,3]"], keys)
    assert list(kernel.model.kernel_size) == [1, 3]
    adam = composer.planning_config(["optim=adam", "seed=2"], keys)
    assert adam.optim._target_ == "torch.optim.Adam" and composer.stats["bases"] == 2
    assert composer.planning_config(["seed=5", "optim=adam"], keys) is adam
    with pytest.raises(Exception, match="snapshot_every"):  # not `key=value`: composed in full
        composer.planning_config(["~logger.snapshot_every"], keys)


def seed_task(cfg: DictConfig) -> Any:
    logging.getLogger("kernellab.test").info("seed %s", cfg.seed)
    return cfg.seed * 10


@pytest.mark.slow
def test_two_workers_make_the_jobs_one_makes(tmp_path: Path) -> None:
    """Returns (values, overrides, dirs, configs) and every job file, with and without workers."""
    sweep = [
        "hydra/launcher=batched",
        "seed=1,2,3",
        "optim=sgd,adam",
        "++trainer.print_every=${seed}",
        "+hydra.job.env_set.KL_BATCHED_TEST=yes",
    ]
    got = {
        n: sweep_returns(tmp_path / str(n), seed_task, *sweep, f"hydra.launcher.workers={n}")
        for n in (1, 2)
    }

    def same(value: Any) -> Any:
        text = str(value).replace(str(tmp_path / "2"), str(tmp_path / "1"))
        return re.sub(r"workers(=|: )[12]", r"workers\1N", text)

    assert len(got[1]) == len(got[2]) == 6
    for one, two in zip(got[1], got[2], strict=True):
        assert two.overrides == one.overrides
        assert two.status == one.status == JobStatus.COMPLETED
        assert two.return_value == one.return_value
        assert two.task_name == one.task_name == "train"
        assert same(two.working_dir) == one.working_dir
        assert_same_config(one.cfg, two.cfg)
        assert same(OmegaConf.to_yaml(two.hydra_cfg)) == same(OmegaConf.to_yaml(one.hydra_cfg))
        dirs = [Path(r.hydra_cfg.hydra.runtime.output_dir) for r in (one, two)]
        files_one, files_two = job_files(dirs[0]), job_files(dirs[1])
        assert set(files_two) == {".hydra/config.yaml", ".hydra/hydra.yaml"} | {
            ".hydra/overrides.yaml",
            "train.log",
        }
        assert {k: same(v) for k, v in files_two.items()} == {
            k: same(v) for k, v in files_one.items()
        }


@pytest.mark.slow
def test_a_bad_job_is_refused_before_any_worker_starts_a_job(tmp_path: Path) -> None:
    from kernellab.runtime import child_processes

    argv = ["hydra/launcher=batched", "hydra.launcher.workers=2", "trainer.steps=1,2,3,abc"]
    others = set(child_processes())  # the tests' own (tests.helpers' fork server)
    with pytest.raises(Exception, match=r"trainer\.steps=abc"):
        sweep_returns(tmp_path / "s", pid_task, *argv)
    assert not list((tmp_path / "s").rglob(".hydra"))  # no job started
    assert not (tmp_path / "s" / "launch.log").exists()
    assert set(child_processes()) == others
