"""The Conv2D layer: the book's initialisation order, and three backends that agree."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernellab.model import BACKENDS, Conv2D


def test_randn_init_is_the_notebooks():
    torch.manual_seed(7)
    weight, bias = torch.randn(1, 2), torch.randn(1)
    torch.manual_seed(7)
    model = Conv2D((1, 2))
    assert torch.equal(model.kernel.data, weight)
    assert model.weight.shape == (1, 1, 1, 2)  # PyTorch's (out, in, kh, kw) layout
    assert torch.equal(model.bias.data, bias)


def test_inits_and_no_bias():
    assert torch.count_nonzero(Conv2D(3, init="zeros").weight) == 0
    uniform = Conv2D((2, 2), init="uniform", bias=False)
    assert uniform.bias is None
    assert uniform.weight.abs().max() <= 0.5  # nn.Conv2d's bound 1/sqrt(fan_in) = 1/2


@settings(max_examples=30, deadline=None, derandomize=True)  # the same examples in every run
@given(
    size=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    seed=st.integers(0, 1000),
)
def test_backends_agree_in_values_and_gradients(size, padding, stride, seed):
    torch.manual_seed(seed)
    X = torch.randn(7, 9)
    outputs, grads = {}, {}
    for name in BACKENDS:
        torch.manual_seed(seed)
        model = Conv2D(size, padding, stride, backend=name)
        Y = model(X)
        (Y**2).sum().backward()
        outputs[name], grads[name] = Y, (model.weight.grad, model.bias.grad)
    for name in ("corr2d", "loop"):
        torch.testing.assert_close(outputs[name], outputs["torch"])
        for ours, reference in zip(grads[name], grads["torch"], strict=True):
            # a weight's gradient sums ~20 float32 products in another order: 1e-5 relative
            # (seed 30, 3x3, padding (1, 2), stride (3, 1) differed by 8.6e-6)
            torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_backends_differentiate_input_too(backend):
    X = torch.randn(5, 5, requires_grad=True)
    Conv2D(3, padding=1, backend=backend)(X).sum().backward()
    assert X.grad is not None and X.grad.shape == X.shape


@settings(max_examples=20, deadline=None, derandomize=True)  # the same examples in every run
@given(
    channels=st.tuples(st.integers(1, 3), st.integers(1, 3)).filter(lambda c: c != (1, 1)),
    size=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    seed=st.integers(0, 1000),
)
def test_backends_agree_on_channels_in_values_and_gradients(channels, size, padding, stride, seed):
    torch.manual_seed(seed)
    X = torch.randn(channels[1], 7, 9)
    outputs, grads = {}, {}
    for name in ("torch", "corr2d", "loop"):  # `fused` is refused for channels (its step)
        torch.manual_seed(seed)
        model = Conv2D(size, padding, stride, backend=name, channels=channels)
        Y = model(X)
        (Y**2).sum().backward()
        outputs[name], grads[name] = Y, (model.weight.grad, model.bias.grad)
    assert outputs["torch"].shape[0] == channels[0]
    for name in ("corr2d", "loop"):
        torch.testing.assert_close(outputs[name], outputs["torch"])
        for ours, reference in zip(grads[name], grads["torch"], strict=True):
            torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_a_layer_with_channels_draws_its_weight_then_one_bias_per_output():
    torch.manual_seed(3)
    weight, bias = torch.randn(2, 3, 1, 2), torch.randn(2)
    torch.manual_seed(3)
    model = Conv2D((1, 2), channels=(2, 3))
    assert torch.equal(model.weight.data, weight) and torch.equal(model.bias.data, bias)
    assert model.kernel.shape == (2, 3, 1, 2)  # with channels the kernel is the whole weight
    # nn.Conv2d's bound 1/sqrt(fan_in), fan_in = in * kh * kw = 6
    assert Conv2D((1, 2), init="uniform", channels=(2, 3)).weight.abs().max() <= 6**-0.5
