import torch

from kernellab.optim import GradientDescent


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
