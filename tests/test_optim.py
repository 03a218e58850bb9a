import pytest
import torch

from kernellab import optim
from kernellab.checks import check
from kernellab.config import compose
from kernellab.errors import ConfigError
from kernellab.optim import GradientDescent
from kernellab.resolved import Resolved, resolved
from tests.helpers import run_cli


def test_step_is_the_notebooks_update_bitwise():
    torch.manual_seed(0)
    w = torch.randn(1, 2, requires_grad=True)
    expected = w.detach().clone()
    (w**3).sum().backward()
    expected -= 0.01 * w.grad
    optimizer = GradientDescent([w], lr=0.01)
    optimizer.step()
    assert torch.equal(w.detach(), expected)
    optimizer.zero_grad()
    assert w.grad is None


def test_state_round_trip():
    optimizer = GradientDescent([torch.zeros(1, requires_grad=True)], lr=0.5)
    other = GradientDescent([torch.zeros(1, requires_grad=True)], lr=0.1)
    other.load_state_dict(optimizer.state_dict())
    assert other.lr == 0.5


# ---- the configured optimizer, checked by building it (kernellab.optim, kernellab.checks) --------

# (overrides, the start of the one line refusing them)
BAD_OPTIMIZERS = [
    ("optim=momentum optim.momentum=-1", "optim._target_=torch.optim.SGD: SGD(lr=0.01, momentum=-1)"),
    ("optim=momentum optim.momentum=abc", "optim.momentum=abc: must be a finite number"),
    ("optim=momentum optim.momentum=[0.9]", "optim.momentum=[0.9]: must be a finite number"),
    ("optim=momentum optim.momentum=nan", "optim.momentum=nan: must be a finite number"),
    ("optim=momentum optim.momentum=true", "optim.momentum=true: must be a finite number"),
    ("optim=momentum +optim.nesterov=1", "optim.nesterov=1: must be true or false"),
    ("optim=momentum optim.momentum=0 +optim.nesterov=true", "optim._target_=torch.optim.SGD:"),
    ("optim=adam +optim.betas=[0.9]", "optim.betas=[0.9]: must be a list of 2 values"),
    ("optim=adam +optim.betas=[2,3]", "optim._target_=torch.optim.Adam: Adam(lr=0.01, betas=[2,3])"),
    ("optim=adam +optim.betas=0.9", "optim.betas=0.9: must be a list of 2 values"),
    ("optim=adam +optim.eps=-1", "optim._target_=torch.optim.Adam: Adam(lr=0.01, eps=-1)"),
    ("optim=adam +optim.amsgrad=maybe", "optim.amsgrad=maybe: must be true or false"),
    ("optim=adam +optim.foreach=abc", "optim.foreach=abc: must be true or false or null"),
    ("optim=adamw optim.weight_decay=abc", "optim.weight_decay=abc: must be a finite number"),
    ("optim.lr=true", "optim.lr=true: must be a finite number"),
    ("optim.lr=-1", "optim.lr=-1: must be a number > 0"),
    ("optim=adam optim.lr=true", "optim.lr=true: must be a finite number"),
    ("optim._target_=torch.optim.LBFGS", "optim._target_=torch.optim.LBFGS: LBFGS steps with a closure"),
    ("optim._target_=torch.optim.SparseAdam", "optim._target_=torch.optim.SparseAdam: SparseAdam needs sparse"),
    ("optim._target_=torch.optim.Muon", "optim._target_=torch.optim.Muon: Muon(lr=0.01) fails"),
    ("optim._target_=..", "optim._target_=..: must name an optimizer class"),
    ("optim._target_=torch.optim.RMSprop +optim.centered=yes", "optim.centered=yes: must be true or false"),
    ("optim._target_=torch.optim.Rprop +optim.etas=[0.5]", "optim.etas=[0.5]: must be a list of 2 values"),
    ("optim._target_=torch.optim.Adafactor +optim.eps=[1e-3]", "optim.eps=[0.001]: must be a list [a finite number or null, a finite number]"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "message"), BAD_OPTIMIZERS)
def test_a_bad_optimizer_is_refused_in_one_line_by_check(make_cfg, overrides, message):
    with pytest.raises(ConfigError) as error:
        check(make_cfg(*overrides.split()))
    assert str(error.value).startswith(message), str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "overrides",
    [
        "optim=adam +optim.amsgrad=true +optim.foreach=false",
        "optim=adam +optim.betas=[0.8,0.99] +optim.eps=1e-6",
        "optim=momentum +optim.nesterov=true",
        "optim._target_=torch.optim.Adafactor +optim.eps=[null,0.001]",
        "optim._target_=torch.optim.Rprop +optim.step_sizes=[1e-6,50]",
        "optim._target_=torch.optim.ASGD",
    ],
)
def test_good_optimizer_arguments_pass(make_cfg, overrides):
    check(make_cfg(*overrides.split()))


def test_the_probe_runs_once_for_a_sweep_of_seeds(monkeypatch):
    calls = []
    real = optim._probe
    monkeypatch.setattr(optim, "_PROBED", {})
    monkeypatch.setattr(optim, "_probe", lambda *a: calls.append(a) or real(*a))
    base = resolved(compose("optim=adam", "+optim.amsgrad=true")).plain
    for seed in range(50):
        check(Resolved({**base, "seed": seed}))
    assert len(calls) == 1
    check(compose("optim=adam", "+optim.amsgrad=true", "model.bias=false"))  # other shapes
    assert len(calls) == 2


def test_a_cached_refusal_is_raised_again(monkeypatch):
    monkeypatch.setattr(optim, "_PROBED", {})
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"^optim._target_=torch.optim.SGD: SGD\("):
            check(compose("optim=momentum", "optim.momentum=-1"))


def test_the_probe_does_not_draw_from_the_rng(monkeypatch):
    monkeypatch.setattr(optim, "_PROBED", {})
    torch.manual_seed(5)
    state = torch.get_rng_state()
    check(compose("optim=adam"))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        "optim=momentum optim.momentum=-1",
        "optim=adam +optim.betas=[2,3]",
        "optim.lr=true",
        "optim._target_=torch.optim.LBFGS",
    ],
)
def test_train_py_refuses_a_bad_optimizer_before_writing(tmp_path, overrides):
    proc = run_cli(*overrides.split(), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: optim.") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not list(tmp_path.iterdir()), "nothing written"
