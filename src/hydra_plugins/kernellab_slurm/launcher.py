"""`hydra/launcher=slurm` (conf/hydra/launcher/slurm.yaml): Hydra's submitit SLURM launcher, plus

- in a job: checkpoint-and-requeue on SLURM's time-limit signal, and a requeued job continuing
  from its own checkpoint (kernellab.slurm);
- when collecting results: a job that ended without one (scancel, a kill, out of requeues) no
  longer ends the sweep with an exception: the others finish, the summary lists it;
- when submitting: sbatch's refusal is one line with SLURM's reason, exit status 2.

Hydra imports every module under `hydra_plugins` at start-up, so this one imports only what the
launcher it extends already needs; kernellab.slurm and submitit are imported when used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

log = logging.getLogger(__name__)

T = TypeVar("T")


class KernellabSlurmLauncher(SlurmLauncher):
    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> JobReturn:
        """Runs inside the SLURM job (submitit unpickles this launcher there)."""
        from kernellab import slurm

        overrides = slurm.with_resume(sweep_overrides)  # requeued: continue in its own dir
        with slurm.requeue_after_time_limit():
            return super().__call__(overrides, job_dir_key, job_num, job_id, singleton_state)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        """Hydra's submitit launch(), with refusals and result-less jobs handled per job."""
        from kernellab import slurm, slurm_tasks

        sweep_dir = self._sweep_dir()
        self._checked(slurm.check_submission)
        job_params = [  # what __call__ gets in the job, as in Hydra's launcher
            (list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state())
            for idx, overrides in enumerate(job_overrides, start=initial_job_idx)
        ]
        arrays = list(zip(*job_params, strict=True))
        jobs = self._submit_array(lambda executor: executor.map_array(self, *arrays))
        slurm_tasks.record(
            sweep_dir, {job.job_id: [p[2]] for job, p in zip(jobs, job_params, strict=True)}
        )
        # Hydra's lines, once SLURM has taken the jobs: a refusal is the only thing printed
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        for params in job_params:
            log.info(f"\t#{params[2]} : {' '.join(filter_overrides(params[0]))}")
        watcher = slurm.job_state_watcher()
        for job in jobs:
            job.watcher = watcher
        return [
            slurm.result_or_inf(job, params[2], filter_overrides(params[0]))
            for job, params in zip(jobs, job_params, strict=True)
        ]

    def _sweep_dir(self) -> Path:
        assert self.config is not None
        return Path(str(self.config.hydra.sweep.dir))

    def _checked(self, check: Callable[[], T]) -> T:
        """`check()`'s value; a UserError it raises ends the sweep in one line (exit 2), the
        sweep dir as it was (kernellab.slurm.discard_unstarted_sweep)."""
        from kernellab import slurm
        from kernellab.errors import UserError, exit_with_error

        try:
            return check()
        except UserError as error:
            slurm.discard_unstarted_sweep(self._sweep_dir())
            exit_with_error(error)

    def _submit_array(self, submit: Callable[[Any], list[Any]]) -> list[Any]:
        """The submitit jobs of the array `submit(executor)` submits, the sweep dir made first
        (with `hydra.sweep.mode`); sbatch's refusal is one line (exit 2), the dir as it was."""
        import submitit
        from submitit.core.utils import FailedJobError

        from kernellab import slurm
        from kernellab.errors import exit_with_error

        assert self.config is not None
        executor, sweep_dir = self._executor(submitit), self._sweep_dir()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        try:
            return slurm.submit_quietly(lambda: submit(executor))
        except FailedJobError as error:  # what submitit raises when sbatch says no
            slurm.discard_unstarted_sweep(sweep_dir)
            exit_with_error(slurm.refused(error))

    def _executor(self, submitit: Any) -> Any:
        """The executor exactly as Hydra's submitit launcher builds it from the launcher config."""
        params = self.params
        init_keys = {"max_num_timeout"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=params["submitit_folder"],
            **{f"{self._EXECUTOR}_{k}": v for k, v in params.items() if k in init_keys},
        )
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                k if k in base else f"{self._EXECUTOR}_{k}": v
                for k, v in params.items()
                if k not in init_keys | {"submitit_folder"}
            }
        )
        return executor
