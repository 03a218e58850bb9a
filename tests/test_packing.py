"""kernellab.packing: a sweep's jobs shared out by weight, likely groups kept together."""

from __future__ import annotations

from kernellab.config import compose
from kernellab.packing import job_weight, pack, pack_key


def test_equal_jobs_are_cut_into_equal_contiguous_shares():
    assert pack([1.0] * 8, ["a"] * 8, 4) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert pack([1.0] * 7, ["a"] * 7, 3) == [[0, 1], [2, 3, 4], [5, 6]]


def test_fewer_jobs_than_tasks_leave_no_empty_share():
    assert pack([1.0, 1.0], ["a", "b"], 5) == [[0], [1]]
    assert pack([5.0], ["a"], 3) == [[0]]


def test_jobs_of_a_key_stay_together_and_a_heavy_group_is_split():
    keys = ["a", "b"] * 4  # interleaved, as a grid lists them
    assert pack([1.0] * 8, keys, 2) == [[0, 2, 4, 6], [1, 3, 5, 7]]
    # a's four jobs weigh 3/4 of the whole: split over the first three shares, b's in the last
    weights = [3.0, 1.0] * 4
    assert pack(weights, keys, 4) == [[0], [2, 4], [6], [1, 3, 5, 7]]


def test_weight_is_steps_times_pixels_and_key_follows_the_programs_shape():
    small = compose("trainer.steps=10")
    big = compose("trainer.steps=10", "task.height=12")
    assert job_weight(big) == 2 * job_weight(small) == 2 * 10 * 6 * 8
    assert job_weight(compose("task.resize=[4,4]", "trainer.steps=0")) == 16
    assert pack_key(compose("seed=3", "optim.lr=0.1")) == pack_key(compose("seed=4"))
    assert pack_key(compose("model.kernel_size=[1,3]")) != pack_key(small)
    assert pack_key(compose("optim=adam")) != pack_key(small)


def test_another_apps_config_weighs_one_and_packs():
    from omegaconf import OmegaConf

    foreign = OmegaConf.create({"db": {"driver": "mysql"}})  # Hydra's launcher test apps
    assert job_weight(foreign) == 1.0
    assert pack([job_weight(foreign)] * 3, [pack_key(foreign)] * 3, 2) == [[0], [1, 2]]
