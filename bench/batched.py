"""Benchmark 8: sweeps as one program (`hydra/launcher=batched`) against one run and the basic
launcher, and what the 1,000-seed study finds."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench import ROOT
from bench.report import Row, Section, at_most, duration, spread
from bench.scale import Scale
from bench.startup import Dirs, timer, train_cmd
from bench.timing import interleaved

BATCHED = "hydra/launcher=batched"
WORKERS = {n: f"hydra.launcher.workers={n}" for n in ("1", "2")}
BASIC = "hydra/launcher=basic"  # not the default since conf/config.yaml picks batched


def batched(scale: Scale) -> Section:
    grid = ["optim.lr=0.005,0.01", "seed=0,1,2,3", "model.kernel_size=[1,2],[1,3]"]  # 16 jobs
    many = f"seed=range({scale.batched_seeds})"
    with tempfile.TemporaryDirectory(prefix="kernellab-bench-") as tmp:
        dirs = Dirs(tmp)
        small = interleaved(
            {
                "run": timer(lambda: train_cmd(dirs("run"))),
                "batched": timer(lambda: train_cmd("-m", BATCHED, *grid, dirs("sweep"))),
                "basic": timer(lambda: train_cmd("-m", BASIC, *grid, dirs("sweep"))),
            },
            scale.heavy_reps,
        )
        workers = interleaved(  # same-run ratio: the same sweep in 1 and in 2 worker processes
            {
                n: timer(lambda n=n: train_cmd("-m", BATCHED, many, WORKERS[n], dirs("sweep")))
                for n in WORKERS
            },
            scale.heavy_reps,
        )
        big_dir = Path(tmp) / "seeds"
        big_seconds, peak_mb = _timed_with_peak(
            train_cmd("-m", BATCHED, many, f"hydra.sweep.dir={big_dir}")
        )
        finds = _recovered(big_dir, scale.batched_seeds)
    run, grid16, basic16 = small["run"], small["batched"], small["basic"]
    one, two = workers["1"], workers["2"]
    return Section(
        "8. Batched sweeps",
        "Whole processes, cold. One `python train.py` (default experiment) vs the 16-job grid "
        f"`{' '.join(grid)}` with `{BATCHED}` and with the basic launcher (`workers=auto`: one "
        f"process for 16 jobs); the {scale.batched_seeds} seeds with `workers=1` and `=2`, "
        "interleaved; then "
        f"`python train.py -m {BATCHED} '{many}'` (default logging) once.",
        [
            Row(
                "16-job grid, batched ÷ one run",
                spread(grid16),
                spread(run),
                grid16.median / run.median,
                at_most(1.25),
            ),
            Row(
                "16-job grid, basic launcher ÷ one run",
                spread(basic16),
                spread(run),
                basic16.median / run.median,
            ),
            Row(
                f"{scale.batched_seeds} seeds, batched, 2 worker processes ÷ 1",
                spread(two),
                spread(one),
                two.median / one.median,
                at_most(0.65),
            ),
            Row(
                f"{scale.batched_seeds} seeds, batched ÷ one run",
                duration(big_seconds),
                spread(run),
                big_seconds / run.median,
                at_most(5.0),
            ),
        ],
        [
            f"Per job: batched {_per_job(grid16.median, run.median, 16)} beyond the first "
            f"(16-job grid), {_per_job(big_seconds, run.median, scale.batched_seeds)} "
            f"({scale.batched_seeds} seeds); basic launcher "
            f"{_per_job(basic16.median, run.median, 16)}.",
            f"Peak memory of the {scale.batched_seeds}-seed sweep (max RSS): {peak_mb:.0f} MB.",
            f"What the {scale.batched_seeds}-seed study finds: {finds}.",
        ],
    )


def _per_job(seconds: float, one_run: float, jobs: int) -> str:
    """A sweep's time per job beyond one run's: none when the sweep took less than one run (noise
    on a shared machine, or set-up one run pays and a sweep doesn't)."""
    extra = (seconds - one_run) / (jobs - 1)
    return duration(extra) if extra > 0 else "nothing measurable (the sweep took less than one run)"


def _timed_with_peak(cmd: list[str]) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of a whole process (which must succeed).

    The peak is this process's own (os.wait4): RUSAGE_CHILDREN would give the largest of every
    child the suite has run so far.
    """
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            raise subprocess.CalledProcessError(status, cmd, stderr=stderr.read())
    return seconds, usage.ru_maxrss / 1024


def _recovered(sweep_dir: Path, jobs: int, within: float = 0.05) -> str:
    """How many jobs ended with every kernel element within `within` of [[-1, 1]]."""
    done = [json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")]
    ok = sum(
        m["status"] == "completed"
        and max(abs(m["weight"][0][0] + 1), abs(m["weight"][0][1] - 1)) <= within
        for m in done
    )
    return (
        f"{len(done)} of {jobs} job dirs complete; {ok} of them recovered [[-1, 1]] within "
        f"{within} (every element) after 20 steps at lr 0.01"
    )
