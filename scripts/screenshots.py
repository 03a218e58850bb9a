"""Screenshots of TensorBoard's dashboards over the README's example runs, for docs/img/.

    python scripts/screenshots.py                   # docs/img/<dashboard>.png, see DASHBOARDS
    python scripts/screenshots.py --logdir outputs  # TensorBoard on every command's runs
    python scripts/screenshots.py --only timeseries # the page TensorBoard opens on
    python scripts/screenshots.py --keep            # keep the runs and logs (the path is printed)

What it does, in a fresh temporary dir (so the checkout's own outputs/ is never touched):

1. runs the README's commands there, as a user would from the repo root: `python train.py` and
   the first sweep, `python train.py -m optim.lr=0.001,0.01,0.1 model.kernel_size=[1,2],[1,3]`;
2. starts a real `tensorboard --logdir <the sweep dir>` (or outputs/, or the single run dir) on a
   free port of 127.0.0.1, loading the logdir completely before it answers;
3. opens each dashboard in headless Chromium (`--screenshot`, `--virtual-time-budget`: the page
   gets that much virtual time to render, and virtual time stands still while requests are
   pending) and saves one PNG per dashboard;
4. stops TensorBoard and removes the temporary dir, also on errors, Ctrl-C and SIGTERM.

It screenshots whatever the dashboards show; it checks nothing about kernellab's tags. A
screenshot whose content area is nearly one colour is reported as looking empty. Needs Chromium
(`apt-get install chromium`); runs as root too (`--no-sandbox`; it only loads 127.0.0.1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent

# The README's example commands (arguments to `python train.py`), in the order it gives them.
SINGLE_RUN: tuple[str, ...] = ()
FIRST_SWEEP = ("-m", "optim.lr=0.001,0.01,0.1", "model.kernel_size=[1,2],[1,3]")
STUDY = ("-m", "seed=range(100)", "optim=sgd,adam")  # README "Studies"; served: its groups/


@dataclass(frozen=True)
class Dashboard:
    name: str  # the PNG's name
    fragment: str  # TensorBoard's URL fragment for the dashboard
    width: int = 1600
    height: int = 1100


DASHBOARDS = (
    Dashboard("timeseries", "timeseries"),  # the page TensorBoard opens on (not in the README)
    # The legacy dashboards keep their settings in the URL fragment: no smoothing (the raw curves),
    # and a tag filter (a regex) that picks what the README talks about.
    Dashboard(
        "scalars",
        "scalars&_smoothingWeight=0&tagFilter=" + quote(r"loss|error|w_0_[01]"),
        height=760,
    ),
    Dashboard("images", "images&tagFilter=" + quote("kernel/compare"), height=600),
    Dashboard("custom_scalars", "custom_scalars&_smoothingWeight=0", height=900),
    Dashboard("hparams", "hparams", width=1920, height=700),  # wide: metric columns come last
)
# Over the study's group runs (`tensorboard --logdir <sweep>/groups`)
STUDY_DASHBOARDS = (
    Dashboard("study_margins", "custom_scalars&_smoothingWeight=0", height=560),
    Dashboard("study_hparams", "hparams", width=1400, height=420),
)

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # needed as root; the page is our own server on 127.0.0.1
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--hide-scrollbars",
    "--mute-audio",
    "--force-device-scale-factor=1",
)

TRAIN_TIMEOUT_S = 600
SERVER_DEADLINE_S = 120
SCREENSHOT_TIMEOUT_S = 120
HTTP_TIMEOUT_S = 5


class ScreenshotError(RuntimeError):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    chromium = find_chromium(args.chromium)
    with terminate_on_sigterm(), workdir(args.keep) as work:
        started = time.monotonic()
        runs = run_readme_commands(work)
        logdir = {"outputs": work / "outputs", "sweep": runs["sweep"], "run": runs["run"]}[
            args.logdir
        ]
        args.out.mkdir(parents=True, exist_ok=True)
        for served, dashboards in ((logdir, DASHBOARDS), (runs["groups"], STUDY_DASHBOARDS)):
            wanted = [d for d in dashboards if d.name in args.only]
            if not wanted:
                continue
            print(f"[{elapsed(started)}] tensorboard --logdir {served}")
            with tensorboard(served, work) as base_url:
                print(f"[{elapsed(started)}] tensorboard answers at {base_url}")
                for dashboard in wanted:
                    png = args.out / f"{dashboard.name}.png"
                    url = f"{base_url}/#{dashboard.fragment}"
                    screenshot(chromium, url, png, dashboard, args, work)
                    note = "  (looks empty)" if looks_empty(png) else ""
                    print(f"[{elapsed(started)}] {png}{note}")
        print(f"[{elapsed(started)}] done")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img", help="PNG dir")
    parser.add_argument(
        "--logdir",
        choices=("outputs", "sweep", "run"),
        default="sweep",
        # the sweep, as the README advises for comparing jobs: with outputs/ TensorBoard may
        # take the single run's HParams experiment summary, which marks nothing as swept
        help="what tensorboard --logdir gets: the sweep dir (default), outputs/ (both commands) "
        "or the run dir",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[d.name for d in (*DASHBOARDS, *STUDY_DASHBOARDS)],
        default=[d.name for d in (*DASHBOARDS, *STUDY_DASHBOARDS) if d.name != "timeseries"],
        help="which dashboards (default: those the README shows)",
    )
    parser.add_argument("--chromium", help="the browser binary (default: found on PATH)")
    parser.add_argument(
        "--budget-ms",
        type=int,
        default=20_000,
        help="virtual time each page gets to load and render (default 20000)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary dir")
    return parser.parse_args(argv)


def find_chromium(given: str | None) -> str:
    """Before anything runs: a missing browser should not cost a training run first."""
    for name in [given] if given else CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    if given:
        raise ScreenshotError(f"--chromium {given}: not an executable")
    raise ScreenshotError(
        "no Chromium found (tried " + ", ".join(CHROMIUM_NAMES) + "); "
        "install it (apt-get install chromium) or pass --chromium"
    )


def elapsed(started: float) -> str:
    return f"{time.monotonic() - started:5.1f} s"


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """SIGTERM becomes SystemExit, so every `finally` (stopping the server) still runs."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="kernellab-screenshots-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


# ---- the runs ---------------------------------------------------------------------------------


def run_readme_commands(work: Path) -> dict[str, Path]:
    """The commands with `work` as the current dir, so they write `work/outputs/...`."""
    run = train(work, SINGLE_RUN, "run")
    sweep = train(work, FIRST_SWEEP, "sweep")
    groups = train(work, STUDY, "study") / "groups"
    return {"run": run, "sweep": sweep, "groups": groups}


def train(work: Path, args: Sequence[str], label: str) -> Path:
    """`python train.py ARGS` in `work`; returns the dir it created under outputs/."""
    before = set(output_dirs(work))
    env = dict(os.environ)
    # This checkout's kernellab, whatever the current dir (a relative PYTHONPATH would not survive
    # the change of dir).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    log_path = work / f"{label}.log"
    command = [sys.executable, str(REPO / "train.py"), *args]
    print("$ " + " ".join(["python", "train.py", *args]))
    with log_path.open("wb") as log:
        result = subprocess.run(
            command,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=TRAIN_TIMEOUT_S,
            check=False,
        )
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise ScreenshotError(f"{' '.join(command)} exited {result.returncode}:\n{tail}")
    new = sorted(set(output_dirs(work)) - before)
    if len(new) != 1:
        raise ScreenshotError(f"expected one new dir under {work / 'outputs'}, found {new}")
    return new[0]


def output_dirs(work: Path) -> Iterator[Path]:
    """Run dirs (outputs/<date>/<time>) and sweep dirs (outputs/multirun/<date>/<time>)."""
    outputs = work / "outputs"
    yield from (p for p in outputs.glob("*/*") if p.is_dir() and p.parent.name != "multirun")
    yield from (p for p in outputs.glob("multirun/*/*") if p.is_dir())


def expected_runs(logdir: Path) -> set[str]:
    """TensorBoard's run names: every dir holding an event file, relative to the logdir."""
    return {os.path.relpath(events.parent, logdir) for events in logdir.rglob("*tfevents*")}


# ---- tensorboard ------------------------------------------------------------------------------


@contextlib.contextmanager
def tensorboard(logdir: Path, work: Path) -> Iterator[str]:
    """A real TensorBoard on a free loopback port; yields its URL once every run is loaded."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "tensorboard.main"),
        *("--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)),
        # Load the logdir once, completely, before serving: the first answer has every run.
        *("--load_fast=false", "--reload_interval=0", "--reload_task=blocking"),
    ]
    log_path = work / "tensorboard.log"
    with log_path.open("wb") as log:
        # Own process group: stopped as a whole, and a Ctrl-C in the terminal reaches us only.
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_loaded(base_url, process, expected_runs(logdir), log_path)
        yield base_url
    finally:
        stop(process)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_loaded(
    base_url: str, process: subprocess.Popen[bytes], runs: set[str], log_path: Path
) -> None:
    deadline = time.monotonic() + SERVER_DEADLINE_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise ScreenshotError(f"tensorboard exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{base_url}/data/runs", timeout=HTTP_TIMEOUT_S) as r:
                served = set(json.load(r))
            if served >= runs:
                return
            last = f"runs {sorted(served)}, expected {sorted(runs)}"
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last = f"no answer: {error}"
        time.sleep(0.2)
    raise ScreenshotError(f"tensorboard not ready after {SERVER_DEADLINE_S} s; last: {last}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group (TensorBoard and any helper it started), then SIGKILL."""
    if process.poll() is None:
        signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            signal_group(process, signal.SIGKILL)
            process.wait(timeout=10)
    signal_group(process, signal.SIGKILL)  # helpers left behind by a leader that has exited


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)  # the group's id is the leader's pid (start_new_session)


# ---- chromium ---------------------------------------------------------------------------------


def screenshot(
    chromium: str,
    url: str,
    png: Path,
    dashboard: Dashboard,
    args: argparse.Namespace,
    work: Path,
) -> None:
    """One headless Chromium per page, with its own fresh profile (no state from earlier pages)."""
    profile = Path(tempfile.mkdtemp(prefix=f"chromium-{dashboard.name}-", dir=work))
    partial = png.with_suffix(".partial.png")
    command = [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={dashboard.width},{dashboard.height}",
        f"--virtual-time-budget={args.budget_ms}",
        f"--screenshot={partial}",
        url,
    ]
    log_path = work / f"chromium-{dashboard.name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    try:
        process.wait(timeout=SCREENSHOT_TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        raise ScreenshotError(f"chromium took over {SCREENSHOT_TIMEOUT_S} s on {url}") from error
    finally:
        stop(process)
    if process.returncode != 0 or not partial.exists():
        tail = log_path.read_text(errors="replace")[-2000:]
        raise ScreenshotError(f"chromium exited {process.returncode} on {url}:\n{tail}")
    partial.replace(png)  # a rerun that fails leaves the previous PNG, never half of one


def looks_empty(png: Path) -> bool:
    """True when the area right of the sidebar and below the header is nearly one colour."""
    from PIL import Image

    with Image.open(png) as image:
        width, height = image.size
        content = image.convert("RGB").crop((width // 4, 120, width, height))
        colours = content.getcolors(maxcolors=64)
    return colours is not None and len(colours) < 8


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ScreenshotError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
