"""A study from Python: `kernellab.study("seed=range(100)", "optim=sgd,adam")` runs the
overrides as `python train.py -m OVERRIDES` does (the batched launcher, the same dirs and files),
in this process, and returns the study (`kernellab.report.load`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import hydra
from hydra.core.global_hydra import GlobalHydra

from hydra_plugins.kernellab_batched_launcher import batch_runner
from kernellab.batch_runner import run_batch
from kernellab.config import CONF_DIR
from kernellab.errors import EXIT_JOBS_FAILED
from kernellab.hydra_job import run
from kernellab.packing import WORKER_SHARING
from kernellab.paths import path_override
from kernellab.report import Study, load


class StudyError(RuntimeError):
    """The sweep was refused or stopped (its own message went to stderr)."""


def study(*overrides: str, sweep_dir: Path | str | None = None) -> Study:
    """Run `overrides` as a batched multirun into `sweep_dir` (default: Hydra's
    `outputs/multirun/<date>/<time>` under the current dir) and return its study. A sweep in
    which some job failed or diverged still returns; one refused or interrupted raises
    StudyError."""
    if sweep_dir is None:
        sweep_dir = Path("outputs/multirun") / time.strftime("%Y-%m-%d/%H-%M-%S")
    sweep_dir = Path(sweep_dir).resolve()
    argv = [
        "train.py",
        "-m",
        "hydra/launcher=batched",
        *overrides,
        path_override("hydra.sweep.dir", sweep_dir),
        "hydra.job.name=train",  # what the CLI's jobs are called: train.log, `python train.py`
    ]
    main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(
        batch_runner(run_batch, WORKER_SHARING)(run)
    )
    saved, sys.argv = sys.argv, argv
    try:
        main()
    except SystemExit as stop:
        if stop.code not in (None, 0, EXIT_JOBS_FAILED):
            raise StudyError(
                f"the sweep into {sweep_dir} ended with exit status {stop.code}"
            ) from None
    finally:
        sys.argv = saved
        GlobalHydra.instance().clear()
    return load(sweep_dir)
