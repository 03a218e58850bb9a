"""Training a group of jobs as one program gives each job what a single run gives it."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from kernellab.batching import group_jobs, group_key, max_group_size, split
from kernellab.checkpoint import CHECKPOINT_FILE, load
from kernellab.checks import backend_of
from kernellab.config import compose
from kernellab.tracking import read_scalars
from kernellab.training import Job, train, train_group
from kernellab.validation import validate
from tests.helpers import TRUTH_3X3, write_target_pair


def assert_same_run(batched, single, batched_dir, single_dir):
    """1e-6 for weights and bias (relative for a blown-up kernel's last finite values: float32
    holds ~7 digits), 1e-5 relative for the loss."""
    assert (batched.status, batched.steps_completed, batched.diverged_at_step) == (
        single.status,
        single.steps_completed,
        single.diverged_at_step,
    )
    torch.testing.assert_close(
        torch.tensor(batched.weight), torch.tensor(single.weight), rtol=1e-6, atol=1e-6
    )
    if single.bias is not None:
        assert batched.bias == pytest.approx(single.bias, rel=1e-6, abs=1e-6)
    if single.final_loss is not None:
        assert batched.final_loss == pytest.approx(single.final_loss, rel=1e-5)
    ours, theirs = read_scalars(batched_dir), read_scalars(single_dir)
    assert ours.keys() == theirs.keys()
    for tag in theirs:
        assert [s for s, _ in ours[tag]] == [s for s, _ in theirs[tag]], tag


def train_both(tmp_path, overrides_per_job):
    cfgs = [compose(*overrides) for overrides in overrides_per_job]
    jobs = [Job(cfg, tmp_path / f"batched{i}") for i, cfg in enumerate(cfgs)]
    batched = train_group(jobs)
    for i, (cfg, result) in enumerate(zip(cfgs, batched, strict=True)):
        single = train(cfg, tmp_path / f"single{i}")
        assert_same_run(result, single, tmp_path / f"batched{i}", tmp_path / f"single{i}")
    return batched


def test_a_grid_of_seeds_and_learning_rates_matches_single_runs(tmp_path):
    grid = itertools.product([0, 1, 2], ["0.001", "0.01", "0.1"])
    results = train_both(tmp_path, [(f"seed={s}", f"optim.lr={lr}") for s, lr in grid])
    assert {r.status for r in results} == {"completed", "diverged"}  # lr 0.1 blows up


def test_a_jobs_checkpoint_holds_its_own_parameters_only(tmp_path):
    # a group's parameters live in one storage: a job's checkpoint must not carry the others'
    train_both(tmp_path, [(f"seed={s}",) for s in range(8)])
    state = load(tmp_path / "batched3")
    for name, tensor in state.model.items():
        assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size(), name
    size = (tmp_path / "batched3" / CHECKPOINT_FILE).stat().st_size
    assert size == (tmp_path / "single3" / CHECKPOINT_FILE).stat().st_size


def test_different_pictures_steps_and_targets_in_one_group(tmp_path):
    jobs = [
        ("task.image=random", "seed=1", "trainer.steps=5"),
        ("task.image=random", "seed=2", "trainer.steps=30", "optim.lr=0.005"),
        ("task.image=stripes", "seed=3", "trainer.steps=12", "task.target_kernel=[[1,-1]]"),
    ]
    results = train_both(tmp_path, jobs)
    assert [r.steps_completed for r in results] == [5, 30, 12]


def test_torch_optimizers_keep_their_own_state_per_job(tmp_path):
    jobs = [("optim=adam", f"optim.lr={lr}", "trainer.steps=15") for lr in (0.01, 0.1)]
    jobs.append(("optim=adam", "optim.lr=0.05", "+optim.betas=[0.8,0.9]", "trainer.steps=15"))
    train_both(tmp_path, jobs)


def test_padding_stride_and_no_bias(tmp_path):
    common = ("model.kernel_size=[3,3]", "model.padding=1", "model.stride=2", "model.bias=false")
    jobs = [(*common, "task.image=random", f"seed={s}", "optim.lr=0.03") for s in range(3)]
    train_both(tmp_path, jobs)


def test_a_resumed_job_and_a_fresh_one_train_together(tmp_path):
    train(compose("trainer.steps=5"), tmp_path / "earlier")
    resumed = compose("trainer.steps=10", f"trainer.resume={tmp_path / 'earlier'}")
    fresh = compose("trainer.steps=10", "seed=4")
    results = train_group([Job(resumed, tmp_path / "earlier"), Job(fresh, tmp_path / "fresh")])
    whole = train(compose("trainer.steps=10"), tmp_path / "whole")
    torch.testing.assert_close(
        torch.tensor(results[0].weight), torch.tensor(whole.weight), rtol=0, atol=1e-6
    )
    assert [s for s, _ in read_scalars(tmp_path / "earlier")["train/loss"]] == list(range(1, 11))


def test_group_keys_separate_what_changes_the_program():
    def key(*overrides):
        cfg = compose(*overrides)
        geometry = validate(cfg)
        return group_key(cfg, geometry, backend_of(cfg, geometry, torch.device("cpu")))

    assert key("seed=1", "optim.lr=0.1", "task.image=random", "trainer.steps=3") == key()
    assert key("model.kernel_size=[1,3]") != key()
    assert key("optim=adam") != key()
    assert key("model.backend=loop") is None and key("model.backend=corr2d") is None
    assert key("model.backend=fused") is None
    assert key("task.height=512", "task.width=512") is None  # auto: fused, for one big image
    keys = [key(), key("model.kernel_size=[1,3]"), key("seed=2"), key("model.backend=loop")]
    assert group_jobs(keys) == [[0, 2], [1], [3]]


def test_groups_are_split_to_fit_memory():
    cfg = compose("task.height=4096", "task.width=4096", "model.kernel_size=3")
    size = max_group_size(validate(cfg), torch.device("cpu"))
    assert 1 <= size < 4096  # a 4096² job takes ~400 MB: thousands would not fit
    assert split(list(range(5)), 2) == [[0, 1], [2, 3], [4]]


def test_jobs_with_a_target_image_match_single_runs_and_group_by_its_file(tmp_path):
    image, target = write_target_pair(tmp_path)
    other = tmp_path / "other.png"
    other.write_bytes(target.read_bytes())
    common = (f"task.image={image}", "model.kernel_size=3", "optim=adam", "trainer.steps=10")
    jobs = [(*common, f"task.target_image={target}", f"seed={s}") for s in range(3)]
    jobs.append((*jobs[0], "task.target_kernel=" + json.dumps(TRUTH_3X3).replace(" ", "")))
    results = train_both(tmp_path, jobs)  # one with a ground truth among three without
    assert [r.kernel_error is None for r in results] == [True, True, True, False]

    def key(path):
        cfg = compose(*common, f"task.target_image={path}")
        return group_key(cfg, validate(cfg), "torch")

    assert key(target) == key(target) and key(target) != key(other)  # another file: apart


def test_a_grid_of_multi_channel_seeds_matches_single_runs_and_groups_by_channels(tmp_path):
    from tests.helpers import TRUTH_2X3, kernel_override, write_rgb_picture

    photos = [write_rgb_picture(tmp_path, seed=s) for s in (0, 1)]
    common = ("task.channels=rgb", kernel_override(TRUTH_2X3), "optim.lr=0.0005", "trainer.steps=8")
    # seeds on one photo, and a second photo: the group's images then differ (grouped F.conv2d)
    jobs = [(*common, f"task.image={photos[0]}", f"seed={s}") for s in range(3)]
    jobs.append((*common, f"task.image={photos[1]}", "seed=3"))
    results = train_both(tmp_path, jobs)
    assert all(np.shape(r.weight) == (2, 3, 2, 2) and len(r.bias) == 2 for r in results)
    adam = [(*common, f"task.image={photos[s]}", f"seed={s}", "optim=adam") for s in (0, 1)]
    train_both(tmp_path / "adam", adam)

    def key(*overrides):
        cfg = compose(f"task.image={photos[0]}", *overrides)
        geometry = validate(cfg)
        return group_key(cfg, geometry, backend_of(cfg, geometry, torch.device("cpu")))

    two = key(*common)
    one = key("task.channels=rgb", "task.target_kernel=[[[[1,1]],[[1,1]],[[1,1]]]]")
    assert two is not None and two[-1] == (2, 3) and one[-1] == (1, 3)
    assert group_jobs([two, one, two]) == [[0, 2], [1]]
