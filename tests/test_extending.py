"""README "Extending": a new optimizer, experiment, named kernel or picture is one file or one entry."""

from __future__ import annotations

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from kernellab import backends, batching, data, model
from kernellab.backends import Backend
from kernellab.checks import check
from kernellab.config import CONF_DIR, Config, compose
from kernellab.errors import ConfigError
from kernellab.ops import corr2d_reference
from kernellab.training import train
from kernellab.validation import validate

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def test_composed_defaults_are_the_schemas():
    composed = OmegaConf.to_container(compose())
    assert composed == OmegaConf.to_container(OmegaConf.structured(Config))


def leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_reaches_the_composed_config(name):
    written = yaml.safe_load((CONF_DIR / "experiment" / f"{name}.yaml").read_text())
    written.pop("defaults", None)
    cfg = compose(f"experiment={name}")
    for key, value in leaves(written):
        assert OmegaConf.select(cfg, key) == value, key


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_trains(name, tmp_path):
    result = train(compose(f"experiment={name}", "trainer.steps=2"), tmp_path)
    assert result.status == "completed" and result.steps_completed == 2


def test_an_experiment_can_set_the_seed(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "seven.yaml").write_text("# @package _global_\nseed: 7\n")
    assert compose(f"hydra.searchpath=[file://{tmp_path}]", "experiment=seven").seed == 7


def test_a_new_optimizer_is_one_yaml_file(tmp_path):
    (tmp_path / "optim").mkdir()
    (tmp_path / "optim" / "rmsprop.yaml").write_text("_target_: torch.optim.RMSprop\nalpha: 0.9\n")
    cfg = compose(f"hydra.searchpath=[file://{tmp_path}]", "optim=rmsprop", "optim.alpha=0.5")
    result = train(cfg, tmp_path / "run")
    assert result.status == "completed"
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["alpha"] == 0.5


def test_optimizer_arguments_are_checked_against_the_class():
    with pytest.raises(ConfigError, match=r"^optim.betas=\[0.9,0.99\]: is not an argument of SGD"):
        validate(compose("optim=momentum", "+optim.betas=[0.9,0.99]"))
    with pytest.raises(ConfigError, match=r"^optim._target_=os.path: must name an optimizer"):
        validate(compose("optim._target_=os.path"))


def test_momentum_is_sgd_with_momentum(tmp_path):
    """The momentum preset follows v = mu v + g, w -= lr v (torch.optim.SGD's rule)."""
    lr, mu, steps = 0.01, 0.5, 20
    result = train(compose("optim=momentum", f"optim.momentum={mu}", "seed=3"), tmp_path)
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    Y = corr2d_reference(X, torch.tensor([[-1.0, 1.0]]))
    torch.manual_seed(3)
    w, b = torch.randn(1, 2, requires_grad=True), torch.randn(1, requires_grad=True)
    velocity = [torch.zeros_like(w), torch.zeros_like(b)]
    for _ in range(steps):
        loss = ((corr2d_reference(X, w) + b - Y) ** 2).sum()
        grads = torch.autograd.grad(loss, [w, b])
        with torch.no_grad():
            for p, v, g in zip([w, b], velocity, grads, strict=True):
                v.mul_(mu).add_(g)
                p -= lr * v
    torch.testing.assert_close(torch.tensor(result.weight), w.detach(), rtol=1e-5, atol=1e-6)


def test_a_new_named_kernel_is_one_entry_and_its_shape_is_its_own(monkeypatch, tmp_path):
    monkeypatch.setitem(data.NAMED_KERNELS, "prewitt_x", [[-1, 0, 1]] * 3 + [[0, 0, 0]])
    cfg = compose("task.target_kernel=prewitt_x", "optim.lr=0.001", "trainer.steps=2")
    assert validate(cfg).kernel_size == (4, 3)
    assert train(cfg, tmp_path).status == "completed"


def test_a_new_picture_is_one_entry(monkeypatch, tmp_path):
    def ramps(height, width, stripe):  # 0, .25, .5, .75, 1, 0, ... along each row
        return (torch.arange(width) % 5 / 4).expand(height, width).clone()

    monkeypatch.setitem(data.IMAGES, "ramps", ramps)
    result = train(compose("task.image=ramps", "trainer.steps=300"), tmp_path)
    assert torch.allclose(torch.tensor(result.weight), torch.tensor([[-1.0, 1.0]]), atol=1e-2)


def test_a_new_init_is_one_entry(monkeypatch, tmp_path):
    monkeypatch.setitem(model.INITS, "ones", lambda shape, bound: torch.ones(shape))
    result = train(compose("model.init=ones", "trainer.steps=0"), tmp_path)
    assert result.weight == [[1.0, 1.0]] and result.bias == 1.0


def _reference_planes():
    """The book's loop on the layer's (1, 1, h, w) tensors, plus the bias."""

    def correlate(X, weight, bias, padding, stride):
        Y = corr2d_reference(X[0, 0], weight[0, 0], padding, stride)[None, None]
        return Y if bias is None else Y + bias

    return correlate


def test_a_new_backend_is_one_entry(monkeypatch, tmp_path):
    entry = Backend(
        help="the reference loop",
        forward=_reference_planes,
        job_bytes=lambda input_hw, output_hw, kernel_hw: 7 * output_hw[0] * output_hw[1],
        max_outputs=100,
        too_big="at most {limit} outputs, not {outputs}",
    )
    monkeypatch.setitem(backends.BACKENDS, "reference", entry)
    monkeypatch.setitem(
        backends.BACKENDS,
        "elsewhere",
        Backend("", _reference_planes, entry.job_bytes, devices=("mps",)),
    )
    steps = ("optim.lr=0.01", "trainer.steps=10", "seed=4")
    result = train(compose("model.backend=reference", *steps), tmp_path / "reference")
    # the same maths as F.conv2d: the same kernel after the same steps
    expected = train(compose("model.backend=torch", *steps), tmp_path / "torch")
    torch.testing.assert_close(torch.tensor(result.weight), torch.tensor(expected.weight))
    checked = check(compose("model.backend=reference"))
    assert checked.backend == "reference"
    assert batching.job_bytes(checked.geometry, "reference") == 7 * 6 * 7  # the 6x8 task: 6x7 out
    assert batching.group_key(checked.config, checked.geometry, "reference") is None  # no batching
    with pytest.raises(
        ConfigError, match=r"^model.backend=reference: at most 100 outputs, not 1600"
    ):
        validate(compose("model.backend=reference", "task.height=40", "task.width=41"))
    with pytest.raises(ConfigError, match=r"^model.backend=elsewhere: runs on the MPS only"):
        check(compose("model.backend=elsewhere"))


def test_an_unknown_choice_fails_loudly():
    for override, key in [("model.init=ones", "model.init"), ("task.image=photo", "task.image")]:
        with pytest.raises(ConfigError, match=f"^{key}=.*must be one of"):
            validate(compose(override))


def test_readme_extending_section_shows_each_change():
    readme = (CONF_DIR.parent / "README.md").read_text()
    section = readme.split("## Extending", 1)[1].split("\n## ", 1)[0]
    for needle in ("conf/optim/", "conf/experiment/", "NAMED_KERNELS", "IMAGES", "INITS"):
        assert needle in section, needle
    assert "BACKENDS" in section
