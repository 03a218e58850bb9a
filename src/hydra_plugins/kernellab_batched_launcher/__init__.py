"""kernellab's batched Hydra launcher: `hydra/launcher=batched` (and `hydra/sweeper=batched`).

Jobs run in this process. A launch prepares the whole batch first (`PreparedJob`: composed
config, number, output dir), then hands it to the task function's batch runner, if it has one
(`batch_runner` decorator, attribute `hydra_batch_runner`), or runs the jobs one by one with
the same per-job plumbing, which reproduces Hydra's `run_job`.
"""

from ._core import BATCH_RUNNER_ATTR, BatchRunner, LaunchStats, PreparedJob, batch_runner

__all__ = ["BATCH_RUNNER_ATTR", "BatchRunner", "LaunchStats", "PreparedJob", "batch_runner"]
