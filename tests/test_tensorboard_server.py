"""The real TensorBoard dashboard over a real sweep: what a user sees after `tensorboard --logdir`.

A 2x2 sweep runs as a subprocess, then the venv's `tensorboard` serves its sweep dir on loopback and
the test reads it back through the same HTTP data API the web page uses. Every job must be one run
(event files directly in the job dir), its curves must end at the values in its `metrics.json`, and
the HParams dashboard must list the swept hyperparameters with one session per job. A single run
dir served on its own (a run named ".") must show its HParams metric values too.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from tests.helpers import run_cli

# Bounded: the sweep takes ~5-15 s and each server ~2 s here; a hang fails instead of stalling CI.
# one xdist worker: the module's sweep and servers are made once (module fixtures), not per worker
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240), pytest.mark.xdist_group("tensorboard")]

# The sweep: 2 learning rates x 2 kernel shapes, 15 steps each (a few seconds on a CPU).
LRS = (0.01, 0.02)
KERNEL_SIZES = ([1, 2], [1, 3])
STEPS = 15
SWEEP_ARGS = (
    "-m",
    "optim.lr=" + ",".join(map(str, LRS)),
    "model.kernel_size=" + ",".join(json.dumps(k, separators=(",", ":")) for k in KERNEL_SIZES),
    f"trainer.steps={STEPS}",
)

# Tag names as docs/tensorboard.md's tag table promises them (spelt out, not imported from
# kernellab.tracking, so that renaming a tag there breaks this test as it breaks users' dashboards).
LOSS_TAG = "train/loss"
ERROR_TAG = "kernel/error"
BIAS_TAG = "kernel/bias"
HISTOGRAM_TAG = "kernel/weights"
IMAGE_TAGS = (
    "kernel/image",
    "kernel/compare",
    "data/input",
    "data/target",
    "data/target_kernel",
    "data/prediction",
)
HPARAMS_METRICS = [LOSS_TAG, ERROR_TAG, BIAS_TAG]  # metrics.json's final_loss, kernel_error, bias
SWEPT_HPARAMS = ("optim.lr", "model.kernel_size")
ALL_STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]

LOAD_DEADLINE_S = 60.0  # server start (~1.5 s here) plus loading four tiny runs
HTTP_TIMEOUT_S = 10.0
REL_TOL = 1e-6  # event files store float32; metrics.json holds the same float32s as Python floats


@dataclass(frozen=True)
class DataPath:
    """One way TensorBoard can load a logdir, and how to tell it has finished."""

    flags: tuple[str, ...]
    provider: str  # the class /data/environment names, proving which path actually served
    loads_before_serving: bool  # True: the first answer already has all the data


# How TensorBoard is started, per data path. Both bind only 127.0.0.1.
DATA_PATHS = {
    # `--load_fast=false`: the pure-Python multiplexer, no Rust data server subprocess.
    # `--reload_interval=0 --reload_task=blocking`: load the logdir exactly once, *before* the HTTP
    # server binds its port. So the first answer already has every run fully loaded: no race with
    # a background reload thread, no re-reading every 5 s (the default) while we query. This is
    # the deterministic path, and about as fast here (~1.5 s to the first answer) as the Rust one.
    "python": DataPath(
        flags=("--load_fast=false", "--reload_interval=0", "--reload_task=blocking"),
        provider="MultiplexerDataProvider",
        loads_before_serving=True,
    ),
    # `--load_fast=true`: what `tensorboard --logdir outputs` picks by default (`auto`) on this
    # platform, the tensorboard-data-server binary behind gRPC. `true`, not `auto`: a missing
    # binary must fail, not silently fall back to Python and test nothing new.
    # `--reload_interval=0` becomes the data server's `--reload=once`, but that server answers
    # while it loads, so readiness is polled (loading_progress) rather than assumed.
    "rust": DataPath(
        flags=("--load_fast=true", "--reload_interval=0"),
        provider="GrpcDataProvider",
        loads_before_serving=False,
    ),
}
# Neither needs `--samples_per_plugin`: downsampling starts above 1000 scalars per series (the
# default), and the exact point counts checked here are 15.


@dataclass(frozen=True)
class Job:
    """One job of the sweep as it left its dir: the run TensorBoard should show."""

    name: str  # the job subdir's name, which is the run's name relative to the logdir
    metrics: dict[str, Any]
    lr: float
    kernel_size: list[int]

    @property
    def weight_tags(self) -> dict[str, float]:
        """`kernel/w_{i}_{j}` -> the final weight, for every element of the learned kernel."""
        return {
            f"kernel/w_{i}_{j}": value
            for i, row in enumerate(self.metrics["weight"])
            for j, value in enumerate(row)
        }


@dataclass(frozen=True)
class Sweep:
    dir: Path
    jobs: dict[str, Job]


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """HParams metric tag -> the run's final value, from its metrics.json."""
    values = (metrics["final_loss"], metrics["kernel_error"], metrics["bias"])
    return dict(zip(HPARAMS_METRICS, values, strict=True))


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def get(self, route: str, **query: str) -> Any:
        url = f"{self.base_url}{route}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            return json.load(response)

    def post(self, route: str, body: bytes, content_type: str) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}{route}", data=body, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return json.load(response)

    def post_json(self, route: str, body: dict[str, Any]) -> Any:
        """The HParams plugin parses a POST's raw body as its JSON request proto."""
        return self.post(route, json.dumps(body).encode(), "application/json")

    def post_form(self, route: str, **fields: str) -> Any:
        """The Time Series plugin reads its `requests` from form fields, as the web page sends them."""
        return self.post(
            route, urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded"
        )


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """Run the sweep once for the module; find its jobs by their metrics.json, not by dir names."""
    cwd = tmp_path_factory.mktemp("tb_sweep")
    sweep_dir = cwd / "sweep"
    run_cli(*SWEEP_ARGS, f"hydra.sweep.dir={sweep_dir}", cwd=cwd, timeout=180, check=True)
    jobs = {}
    for metrics_path in sorted(sweep_dir.glob("*/metrics.json")):
        job_dir = metrics_path.parent
        cfg = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
        jobs[job_dir.name] = Job(
            name=job_dir.name,
            metrics=json.loads(metrics_path.read_text()),
            lr=float(cfg.optim.lr),
            kernel_size=list(cfg.model.kernel_size),
        )
    assert len(jobs) == len(LRS) * len(KERNEL_SIZES), f"jobs found: {sorted(jobs)}"
    for job in jobs.values():
        assert job.metrics["steps_completed"] == STEPS, (job.name, job.metrics)
        shape = [len(job.metrics["weight"]), len(job.metrics["weight"][0])]
        assert shape == job.kernel_size, (job.name, shape)
    return Sweep(sweep_dir, jobs)


@pytest.fixture(scope="module")
def single_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """`python train.py` once: its run dir and metrics.json."""
    cwd = tmp_path_factory.mktemp("tb_run")
    run_dir = cwd / "run"
    run_cli(f"trainer.steps={STEPS}", f"hydra.run.dir={run_dir}", cwd=cwd, timeout=120, check=True)
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module", params=sorted(DATA_PATHS))
def server(
    request: pytest.FixtureRequest, sweep: Sweep, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A real `tensorboard` on a free loopback port, loaded with the sweep; always stopped after."""
    yield from serve(request.param, sweep.dir, set(sweep.jobs), tmp_path_factory)


@pytest.fixture(scope="module", params=sorted(DATA_PATHS))
def run_server(
    request: pytest.FixtureRequest,
    single_run: tuple[Path, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """TensorBoard pointed at one run dir: the run is named "."."""
    yield from serve(request.param, single_run[0], {"."}, tmp_path_factory)


def serve(
    data_path_name: str, logdir: Path, runs: set[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    data_path = DATA_PATHS[data_path_name]
    log_dir = tmp_path_factory.mktemp(f"tensorboard_{data_path_name}")
    port = free_loopback_port()
    command = [
        *(sys.executable, "-m", "tensorboard.main"),
        *("--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)),
        *data_path.flags,
    ]
    # Output to files, not pipes: nobody reads a pipe while the server runs, and a full pipe
    # would block it.
    stdout_path, stderr_path = log_dir / "stdout.txt", log_dir / "stderr.txt"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
    server = Server(f"http://127.0.0.1:{port}", process, stderr_path)
    try:
        wait_until_loaded(server, runs, data_path.loads_before_serving)
        provider = server.get("/data/environment")["debug"]["data_provider"]
        assert provider.startswith(data_path.provider), provider
        yield server
    finally:
        stop(process)


def free_loopback_port() -> int:
    """A port nothing listens on now (the OS picks it); TensorBoard binds it a moment later."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (TensorBoard exits cleanly, and its data server follows), then SIGKILL if stuck."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until_loaded(server: Server, runs: set[str], loads_before_serving: bool) -> None:
    """Poll until the server answers and has loaded the sweep, or fail by the deadline.

    With `loads_before_serving`, answering at all means loaded: then whatever is wrong with the
    data is left to the tests, which say precisely what. Otherwise loading is done when every job
    is a run whose loss curve reaches the last step and whose final `data/prediction` image (the
    last thing a run writes) is listed; a broken feature then ends here, as a timeout that says
    what the server showed last.
    """
    deadline = time.monotonic() + LOAD_DEADLINE_S
    last_seen = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"tensorboard exited with {server.process.returncode} before loading the sweep\n"
                f"stderr:\n{server.stderr()}"
            )
        try:
            if loads_before_serving:
                server.get("/data/runs")
                return
            last_seen = loading_progress(server, runs)
            if last_seen == "loaded":
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last_seen = f"no answer: {error}"  # not listening yet, or answering an error
        time.sleep(0.1)
    pytest.fail(
        f"tensorboard did not load the sweep in {LOAD_DEADLINE_S:.0f} s; last: {last_seen}\n"
        f"stderr:\n{server.stderr()}"
    )


def loading_progress(server: Server, expected: set[str]) -> str:
    """'loaded', or what is still missing."""
    runs = set(server.get("/data/runs"))
    if runs != expected:
        return f"runs {sorted(runs)}, expected {sorted(expected)}"
    last_steps = {
        run: points[-1]["step"] for run, points in scalar_series(server, LOSS_TAG).items()
    }
    if last_steps != dict.fromkeys(expected, STEPS):
        return f"last {LOSS_TAG} step per run: {last_steps}"
    images = server.get("/data/plugin/timeseries/tags")["images"]["tagRunSampledInfo"]
    with_prediction = set(images.get("data/prediction", {}))
    if with_prediction != expected:
        return f"runs with data/prediction: {sorted(with_prediction)}"
    return "loaded"


# ---- reading the dashboard -------------------------------------------------------------------


def scalar_series(server: Server, tag: str) -> dict[str, list[dict[str, float]]]:
    """run -> [{step, value, wallTime}] of one scalar tag, as the Time Series tab fetches it."""
    requests = json.dumps([{"plugin": "scalars", "tag": tag}])
    (response,) = server.post_form("/data/plugin/timeseries/timeSeries", requests=requests)
    assert "error" not in response, response
    return response["runToSeries"]


def hparams_experiment(server: Server) -> dict[str, Any]:
    return server.post_json(
        "/data/plugin/hparams/experiment", {"experimentName": "", "includeMetrics": True}
    )


def hparams_session_groups(server: Server) -> list[dict[str, Any]]:
    response = server.post_json(
        "/data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": ALL_STATUSES,
            "startIndex": 0,
            "sliceSize": 1000,
            "includeMetrics": True,
        },
    )
    return response.get("sessionGroups", [])


def approx(expected: float) -> Any:
    return pytest.approx(expected, rel=REL_TOL, abs=1e-7)


# ---- tests -----------------------------------------------------------------------------------


def test_every_job_is_one_run_named_by_its_dir(server: Server, sweep: Sweep) -> None:
    # Event files in the job dir itself: a timestamped sub-dir would show up as "<job>/<stamp>".
    assert sorted(server.get("/data/runs")) == sorted(sweep.jobs)


def test_loss_curve_has_every_step_and_ends_at_final_loss(server: Server, sweep: Sweep) -> None:
    series = scalar_series(server, LOSS_TAG)
    assert sorted(series) == sorted(sweep.jobs)
    for name, job in sweep.jobs.items():
        steps = [point["step"] for point in series[name]]
        assert steps == list(range(1, job.metrics["steps_completed"] + 1)), name
        assert series[name][-1]["value"] == approx(job.metrics["final_loss"]), name

        # The Scalars tab's own route ([wall_time, step, value] rows) must agree.
        rows = server.get("/data/plugin/scalars/scalars", run=name, tag=LOSS_TAG)
        assert [(step, value) for _, step, value in rows] == [
            (p["step"], p["value"]) for p in series[name]
        ], name


def test_kernel_scalars_are_listed_and_end_at_the_learned_kernel(
    server: Server, sweep: Sweep
) -> None:
    scalar_tags = server.get("/data/plugin/timeseries/tags")["scalars"]["runTagInfo"]
    legacy_tags = server.get("/data/plugin/scalars/tags")
    assert sorted(scalar_tags) == sorted(legacy_tags) == sorted(sweep.jobs)
    for name, job in sweep.jobs.items():
        expected = {**job.weight_tags, BIAS_TAG: job.metrics["bias"]}
        # Exactly the kernel's elements: a [1,3] job has w_0_2, a [1,2] job must not.
        listed_weights = {tag for tag in scalar_tags[name] if tag.startswith("kernel/w_")}
        assert listed_weights == set(job.weight_tags), name
        assert {LOSS_TAG, *expected} <= set(scalar_tags[name]), name
        assert {LOSS_TAG, *expected} <= set(legacy_tags[name]), name

    for tag in {tag for job in sweep.jobs.values() for tag in job.weight_tags} | {BIAS_TAG}:
        series = scalar_series(server, tag)
        for name, job in sweep.jobs.items():
            expected = {**job.weight_tags, BIAS_TAG: job.metrics["bias"]}
            if tag not in expected:
                assert name not in series, (tag, name)
                continue
            assert [p["step"] for p in series[name]] == list(range(1, STEPS + 1)), (tag, name)
            assert series[name][-1]["value"] == approx(expected[tag]), (tag, name)


def test_hparams_dashboard_lists_the_swept_hyperparameters_and_loss(
    server: Server, sweep: Sweep
) -> None:
    experiment = hparams_experiment(server)
    # Every job writes the same experiment summary, marking what its sweep varies: exactly the
    # swept hyperparameters (not trainer.steps, fixed on the same command line).
    infos = {info["name"]: info for info in experiment.get("hparamInfos", [])}
    differing = {name for name, info in infos.items() if info.get("differs")}
    assert differing == set(SWEPT_HPARAMS), sorted(infos)
    assert infos["model.bias"]["type"] == "DATA_TYPE_BOOL"
    metrics = [info["name"] for info in experiment.get("metricInfos", [])]
    assert metrics == [{"group": "", "tag": tag} for tag in HPARAMS_METRICS], metrics


def test_hparams_has_one_session_per_job_with_its_values_and_final_loss(
    server: Server, sweep: Sweep
) -> None:
    groups = hparams_session_groups(server)
    sessions = {
        session["name"]: (group, session) for group in groups for session in group["sessions"]
    }
    assert sorted(sessions) == sorted(sweep.jobs), f"{len(groups)} groups: {sorted(sessions)}"
    assert len(groups) == len(sweep.jobs)  # every job has its own hparams: no two grouped together

    seen = set()
    for name, job in sweep.jobs.items():
        group, session = sessions[name]
        hparams = group["hparams"]
        # Lists are logged as strings ("[1, 2]"), numbers as numbers.
        assert hparams["optim.lr"] == approx(job.lr), name
        assert json.loads(hparams["model.kernel_size"]) == job.kernel_size, name
        seen.add((hparams["optim.lr"], hparams["model.kernel_size"]))

        assert hparams["model.bias"] is True, name  # a boolean, not 1.0
        values = {m["name"]["tag"]: m["value"] for m in session["metricValues"]}
        expected = final_metrics(job.metrics)
        assert values == {tag: approx(v) for tag, v in expected.items()}, name
    assert len(seen) == len(LRS) * len(KERNEL_SIZES), seen  # the whole grid, each point once


def test_snapshots_images_and_config_are_on_the_dashboard(server: Server, sweep: Sweep) -> None:
    tags = server.get("/data/plugin/timeseries/tags")
    image_runs = tags["images"]["tagRunSampledInfo"]
    text_tags = server.get("/data/plugin/text/tags")
    assert sorted(text_tags) == sorted(sweep.jobs)
    for name in sweep.jobs:
        assert tags["histograms"]["runTagInfo"][name] == [HISTOGRAM_TAG], name
        for tag in IMAGE_TAGS:
            assert name in image_runs.get(tag, {}), (tag, name)
        # torch's add_text("config") is shown as "config/text_summary".
        assert any(tag.split("/")[0] == "config" for tag in text_tags[name]), text_tags[name]


def test_custom_scalars_merge_every_jobs_layout(server: Server, sweep: Sweep) -> None:
    # Each job writes its own layout; TensorBoard merges them: one `w[0,2]` chart from the [1,3]
    # jobs, no chart twice.
    layout = server.get("/data/plugin/custom_scalars/layout")
    charts = {
        category["title"]: [chart["title"] for chart in category["chart"]]
        for category in layout["category"]
    }
    assert charts == {
        "training": [LOSS_TAG, "kernel/error"],
        "kernel: learned vs target": ["w[0,0]", "w[0,1]", "w[0,2]"],
    }
    w02 = next(c for c in layout["category"][1]["chart"] if c["title"] == "w[0,2]")
    assert w02["multiline"]["tag"] == [r"^kernel/(w|target)_0_2$"]


def test_a_single_run_dir_shows_its_hparams_metric_values(
    run_server: Server, single_run: tuple[Path, dict[str, Any]]
) -> None:
    # TensorBoard names a run whose events are in the logdir itself "."; without kernellab's
    # experiment summary its own inference looks the metrics up in run "./." and shows none.
    _, metrics = single_run
    (group,) = hparams_session_groups(run_server)
    (session,) = group["sessions"]
    assert session["name"] == "."
    values = {m["name"]["tag"]: m["value"] for m in session["metricValues"]}
    assert values == {tag: approx(v) for tag, v in final_metrics(metrics).items()}
    assert group["hparams"]["model.kernel_size"] == "[1, 2]"  # resolved: null in the config
    assert group["hparams"]["model.bias"] is True
