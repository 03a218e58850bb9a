import pytest
import torch

from kernellab.errors import ConfigError
from kernellab.runtime import (
    SMALL_PROBLEM_MACS,
    available_cores,
    choose_num_threads,
    joblib_workers,
    jobs_run_in_this_process,
    resolve_device,
)


def test_auto_prefers_cuda_then_mps_then_cpu():
    expected = "cuda" if torch.cuda.is_available() else None
    if expected is None:
        mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
        expected = "mps" if mps else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu"])
def test_unknown_device_names_are_refused(name):
    with pytest.raises(ConfigError, match=f"trainer.device={name}: must be cpu, cuda, cuda:N"):
        resolve_device(name)


@pytest.mark.cuda
def test_cuda_index_out_of_range():
    with pytest.raises(ConfigError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_threads_small_problems_one_big_ones_their_share():
    assert choose_num_threads("auto", SMALL_PROBLEM_MACS - 1, cores=8) == 1
    assert choose_num_threads("auto", SMALL_PROBLEM_MACS, cores=8) == 8
    assert choose_num_threads(3, 10, cores=8, machine_cores=8) == 3  # an int is forced
    assert choose_num_threads(3, 10, cores=1, machine_cores=4) == 3  # beyond the job's share


def test_more_threads_than_the_machine_has_are_clamped_to_its_cores():
    assert choose_num_threads(100000, 10, cores=8, machine_cores=8) == 8
    assert choose_num_threads(10**9, 10, cores=1) == available_cores()


def test_joblib_n_jobs_convention():
    assert joblib_workers(2) == 2
    assert joblib_workers(-1) == available_cores()
    assert joblib_workers(0) == 0


def test_which_launchers_run_jobs_in_the_sweeps_own_process():
    here = "hydra_plugins.kernellab_batched_launcher.batched_launcher.BatchedLauncher"
    basic = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    slurm_batched = "hydra_plugins.kernellab_slurm.batched.KernellabSlurmBatchLauncher"
    assert jobs_run_in_this_process({"_target_": here})
    assert jobs_run_in_this_process({"_target_": basic})
    assert not jobs_run_in_this_process({"_target_": slurm_batched})
    assert not jobs_run_in_this_process({"_target_": "x.MySlurmBatchedLauncher"})  # names whole
