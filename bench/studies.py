"""Benchmark 10: studies. What the group files (summary_groups.csv, the group runs, the study's
summary.png) add to a big batched seed sweep, and what TensorBoard's HParams dashboard costs over
the group runs against over every job's run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.batched import BATCHED, _timed_with_peak
from bench.report import Row, Section, at_most, duration
from bench.scale import Scale
from bench.startup import train_cmd

TENSORBOARD_DEADLINE_S = 900.0  # a server that hasn't answered by then is reported as such


def studies(scale: Scale) -> Section:
    seeds = scale.study_seeds
    command = f"python train.py -m {BATCHED} 'seed=range({seeds})' optim=sgd,adam"
    with tempfile.TemporaryDirectory(prefix="kernellab-bench-") as tmp:
        sweep = Path(tmp) / "study"
        wall, peak_mb = _timed_with_peak(
            train_cmd(
                "-m", BATCHED, f"seed=range({seeds})", "optim=sgd,adam", f"hydra.sweep.dir={sweep}"
            )
        )
        parts = _group_parts(sweep)
        extra = sum(parts.values())
        verdict = json.loads(_report_in_process(sweep, "verdict"))
        hparams = {
            "groups/": _hparams_seconds(sweep / "groups"),
            "the sweep dir": _hparams_seconds(sweep),
        }
    jobs = 2 * seeds
    rows = [
        Row(
            f"{jobs} jobs: the sweep ÷ the sweep less its group work",
            duration(wall),
            duration(wall - extra),
            wall / (wall - extra),
            at_most(1.1),
        ),
        Row(f"{jobs} jobs: the group work", duration(extra), "—"),
        Row(f"{jobs} jobs: peak RSS of the sweep", f"{peak_mb:.0f} MB"),
    ]
    groups_s, whole_s = hparams["groups/"], hparams["the sweep dir"]
    if groups_s is not None and whole_s is not None:
        rows.append(
            Row(
                "TensorBoard HParams data over groups/ ÷ over the whole sweep dir",
                duration(groups_s),
                duration(whole_s),
                groups_s / whole_s,
            )
        )
    return Section(
        "10. Studies",
        f"`{command}` once (default logging), then the group work timed in-process on its dir: "
        "grouping and statistics, reading every job's loss and error curves from its event files, "
        "writing the group runs. TensorBoard (`--load_fast=false`, loading once before serving): "
        "seconds from start to the HParams session list.",
        rows,
        [
            "Group work: " + ", ".join(f"{name} {duration(s)}" for name, s in parts.items()) + ".",
            f"HParams over {jobs} job runs: "
            + ("did not answer" if whole_s is None else duration(whole_s))
            + f" (deadline {TENSORBOARD_DEADLINE_S:.0f} s).",
            f"The verdict: {verdict}",
        ],
    )


def _group_parts(sweep: Path) -> dict[str, float]:
    """Seconds of each part of a report that only studies do, measured in a fresh process."""
    return json.loads(_report_in_process(sweep, "parts"))


_SCRIPT = """
import json, sys, time
from pathlib import Path
from kernellab import report, studies, group_runs
sweep, what = Path(sys.argv[1]), sys.argv[2]
r = report.read_report(sweep)
if what == "verdict":
    print(json.dumps(r.verdict)); sys.exit()
t = time.perf_counter()
groups = studies.group_jobs(r.rows, r.settings.replicates)
table = studies.group_table(groups, r.settings)
t1 = time.perf_counter()
curves = report.read_curves(r.rows)
t2 = time.perf_counter()
group_runs.write_group_runs(r, curves)
t3 = time.perf_counter()
print(json.dumps({"statistics": t1 - t, "curves": t2 - t1, "group runs": t3 - t2}))
"""


def _report_in_process(sweep: Path, what: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(sweep), what],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip().splitlines()[-1]


def _hparams_seconds(logdir: Path) -> float | None:
    """Seconds from starting TensorBoard on `logdir` to its HParams session list (None: no
    answer by the deadline)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
        "--port", str(port), "--load_fast=false", "--reload_interval=0", "--reload_task=blocking",
    ]  # fmt: skip
    start = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/data/plugin/hparams/session_groups",
        data=json.dumps({"startIndex": 0, "sliceSize": 100000, "allowedStatuses": []}).encode(),
        headers={"Content-Type": "application/json", "X-TensorBoard-Feature-Flags": "{}"},
    )
    try:
        while time.perf_counter() - start < TENSORBOARD_DEADLINE_S:
            try:
                with urllib.request.urlopen(request, timeout=TENSORBOARD_DEADLINE_S) as answer:
                    answer.read()
                return time.perf_counter() - start
            except OSError:  # not listening yet
                time.sleep(0.2)
        return None
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # still loading 20,000 runs: SIGTERM waits for that
            server.kill()
            server.wait()
