"""fused_sse against F.conv2d + mse_loss(reduction="sum"): loss, weight gradient, bias gradient.

The first fused call compiles the Numba kernel (seconds) unless numba's cache in
src/kernellab/__pycache__ already holds it; every test after that reuses it.
"""

import os
import re
import subprocess
import sys

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kernellab import stencil
from kernellab.shapes import output_shape
from kernellab.stencil import fused_applies, fused_preferred, fused_sse, fused_unsupported

needs_numba = pytest.mark.skipif(not stencil.numba_installed(), reason="numba is not installed")


def problem(h, w, kh, kw, padding, stride, bias=True, seed=0):
    """Random float32 X, Y, weight (1, 1, kh, kw) and bias (1,) or None, for an (h, w) image."""
    gen = torch.Generator().manual_seed(seed)
    oh, ow = output_shape((h, w), (kh, kw), padding, stride)
    X = torch.randn(h, w, generator=gen)
    Y = torch.randn(oh, ow, generator=gen)
    weight = torch.randn(1, 1, kh, kw, generator=gen)
    b = torch.randn(1, generator=gen) if bias else None
    return X, Y, weight, b


def grads(backend, X, Y, weight, bias, padding, stride, dtype=torch.float32):
    """(loss, weight.grad, bias.grad or None) of one step with fresh leaf copies in `dtype`."""
    w = weight.detach().to(dtype).requires_grad_()
    b = None if bias is None else bias.detach().to(dtype).requires_grad_()
    loss = fused_sse(X.to(dtype), Y.to(dtype), w, b, padding, stride, backend=backend)
    loss.backward()
    return loss.detach(), w.grad, None if b is None else b.grad


def assert_matches_reference(X, Y, weight, bias, padding, stride, rtol=2e-5):
    """Fused float32 vs the float64 F.conv2d step, errors relative to each quantity's scale."""
    fused = grads("numba", X, Y, weight, bias, padding, stride)
    exact = grads("torch", X, Y, weight, bias, padding, stride, dtype=torch.float64)
    # Scale: Σ|r|² for the loss; Σ|r|·|x| per tap bounds what rounding can reach in a gradient.
    scale = exact[0].abs().item() + 1.0
    for name, got, want in zip(("loss", "weight grad", "bias grad"), fused, exact, strict=True):
        if want is None:
            assert got is None, name
            continue
        assert got.dtype == torch.float32, name
        assert got.shape == want.shape, name
        err = (got.double() - want).abs().max().item()
        assert err <= rtol * scale, f"{name}: error {err:.3g} > {rtol:g} × {scale:.3g}"


@needs_numba
@pytest.mark.parametrize(
    ("h", "w", "kh", "kw", "padding", "stride"),
    [
        (6, 8, 1, 2, 0, 1),  # the book's edge task
        (32, 32, 3, 3, 1, 1),  # sobel, "same" padding
        (17, 23, 5, 3, (2, 1), 1),
        (40, 37, 3, 3, 1, 2),
        (29, 31, 4, 7, (3, 5), (1, 3)),
        (9, 9, 2, 2, 4, 3),  # padding wider than the kernel: some outputs read only zeros
        (1, 1, 1, 1, 0, 1),
        (5, 300, 3, 3, 1, 1),
        (3, 2500, 2, 3, 1, (1, 2)),  # wider than a column tile (2048)
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_matches_conv2d(h, w, kh, kw, padding, stride, bias):
    assert_matches_reference(*problem(h, w, kh, kw, padding, stride, bias), padding, stride)


@needs_numba
@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    kh=st.integers(1, 6),
    kw=st.integers(1, 6),
    padding=st.tuples(st.integers(0, 4), st.integers(0, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_matches_conv2d_random(h, w, kh, kw, padding, stride, bias, seed):
    assume(min(output_shape((h, w), (kh, kw), padding, stride)) >= 1)
    X, Y, weight, b = problem(h, w, kh, kw, padding, stride, bias, seed)
    assert_matches_reference(X, Y, weight, b, padding, stride)


@needs_numba
def test_large_image_multithreaded_and_deterministic():
    """600×700 > 512² pixels: bands of rows on a thread pool; any thread count, same bits."""
    X, Y, weight, b = problem(600, 700, 3, 3, 1, 1)
    assert_matches_reference(X, Y, weight, b, 1, 1, rtol=1e-5)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 3):
            torch.set_num_threads(n)
            results.append(stencil.sse_and_grads(X, Y, weight, b, 1, 1))
    finally:
        torch.set_num_threads(threads)
    for one, three in zip(*results, strict=True):
        assert torch.equal(one, three)


@needs_numba
def test_agrees_with_float32_conv2d_step():
    """The step the project trains with, all float32, in (1, 1, h, w) layout, via backend="auto"."""
    X, Y, weight, b = problem(300, 260, 3, 3, 1, 1)
    assert fused_preferred(X, Y, weight, b)
    X4, Y4 = X[None, None], Y[None, None]
    fused = grads("auto", X4, Y4, weight, b, 1, 1)
    plain = grads("torch", X4, Y4, weight, b, 1, 1)
    for got, want in zip(fused, plain, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)


@needs_numba
def test_backward_scales_saved_gradients_and_accumulates():
    X, Y, weight, b = problem(20, 20, 3, 3, 1, 1)
    w = weight.clone().requires_grad_()
    bb = b.clone().requires_grad_()
    loss = fused_sse(X, Y, w, bb, 1, 1, backend="numba")
    (3 * loss).backward()
    once_w, once_b = w.grad.clone(), bb.grad.clone()
    fused_sse(X, Y, w, bb, 1, 1, backend="numba").backward()  # accumulates into .grad
    torch.testing.assert_close(w.grad, once_w * 4 / 3)
    torch.testing.assert_close(bb.grad, once_b * 4 / 3)


@needs_numba
def test_shapes_accepted_and_plain_kernel_gets_its_own_shape():
    X, Y, weight, b = problem(12, 10, 2, 3, 0, 1)
    k = weight[0, 0].clone().requires_grad_()
    fused_sse(X[None, None], Y, k, b.clone(), backend="numba").backward()
    assert k.grad.shape == (2, 3)
    expected = grads("torch", X, Y, weight, b, 0, 1)[1]
    torch.testing.assert_close(k.grad, expected[0, 0], rtol=1e-4, atol=1e-4)


@needs_numba
def test_non_contiguous_image():
    X, Y, weight, b = problem(30, 20, 3, 3, 1, 1)
    Xt, Yt = X.t().contiguous().t(), Y.t().contiguous().t()  # same values, column-major
    assert not Xt.is_contiguous()
    assert_matches_reference(Xt, Yt, weight, b, 1, 1)


@needs_numba
def test_loss_only_without_grad():
    X, Y, weight, b = problem(25, 25, 3, 3, 1, 1)
    with torch.no_grad():
        loss = fused_sse(X, Y, weight, b, 1, 1, backend="numba")
    loss_only, gw, gb = stencil.sse_and_grads(X, Y, weight, b, 1, 1, grads=False)
    assert gw is None and gb is None
    want = grads("torch", X, Y, weight, b, 1, 1, dtype=torch.float64)[0]
    torch.testing.assert_close(loss.double(), want, rtol=1e-5, atol=0)
    assert torch.equal(loss, loss_only)


@needs_numba
def test_nan_propagates():
    X, Y, weight, b = problem(8, 8, 3, 3, 1, 1)
    X[4, 4] = float("nan")
    loss, gw, gb = stencil.sse_and_grads(X, Y, weight, b, 1, 1)
    assert loss.isnan() and gw.isnan().any() and gb.isnan()


def test_unsupported_cases_fall_back_to_torch():
    X, Y, weight, b = problem(300, 300, 3, 3, 1, 1)
    assert fused_unsupported(X.double(), Y, weight, b) is not None
    assert fused_unsupported(X, Y, weight.expand(2, 1, 3, 3), b) is not None
    assert fused_unsupported(X.requires_grad_(), Y, weight, b) is not None
    assert fused_unsupported(X.to("meta"), Y, weight, b) is not None  # not on the CPU
    assert not fused_applies(X, Y, weight, torch.zeros(2))
    # auto keeps the F.conv2d graph there: a gradient for X too.
    fused_sse(X, Y, weight, b, 1, 1).backward()
    assert X.grad is not None
    # float64 runs the torch step and still matches it.
    x = X.detach().double()
    got = grads("auto", x, Y.double(), weight, b, 1, 1, dtype=torch.float64)
    want = grads("torch", x, Y.double(), weight, b, 1, 1, dtype=torch.float64)
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)


@needs_numba
def test_numba_backend_refuses_what_it_cannot_do():
    X, Y, weight, b = problem(10, 10, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="float32"):
        fused_sse(X.double(), Y.double(), weight.double(), None, 1, 1, backend="numba")
    with pytest.raises(ValueError, match="gradient for X"):
        fused_sse(X.requires_grad_(), Y, weight, b, 1, 1, backend="numba")


def test_bad_arguments():
    X, Y, weight, b = problem(10, 10, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="backend"):
        fused_sse(X, Y, weight, b, 1, 1, backend="cuda")
    with pytest.raises(ValueError, match="output"):
        fused_sse(X, Y[:-1], weight, b, 1, 1, backend="torch")
    if stencil.numba_installed():
        with pytest.raises(ValueError, match="output"):
            fused_sse(X, Y[:-1], weight, b, 1, 1, backend="numba")
        with pytest.raises(ValueError, match="padding"):
            stencil.sse_and_grads(X, Y, weight, b, -1, 1)


def test_small_problems_never_import_numba():
    """The seed task (6×8, backend="auto") and a plain import leave numba unloaded."""
    code = (
        "import sys, torch\n"
        "from kernellab.stencil import fused_sse\n"
        "X = torch.ones(6, 8); X[:, 2:6] = 0\n"
        "Y = torch.zeros(6, 7); Y[:, 1] = 1; Y[:, 5] = -1\n"
        "w = torch.randn(1, 1, 1, 2, requires_grad=True)\n"
        "b = torch.zeros(1, requires_grad=True)\n"
        "fused_sse(X, Y, w, b).backward()\n"
        "assert w.grad is not None and b.grad is not None\n"
        "assert 'numba' not in sys.modules, 'numba was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.slow
def test_the_kernel_compiles_once_into_numbas_cache_and_says_so(tmp_path):
    """What `make setup` runs (`python -m kernellab.stencil`) fills numba's cache; a process that
    finds no cache logs that it compiles, and how long it took; one that finds it says nothing."""
    code = (
        "import logging; logging.basicConfig(level=logging.INFO, format='%(message)s'); "
        "from kernellab.stencil import warm_up; print(warm_up())"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}  # empty: as a fresh clone

    def warm() -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    first, second = warm(), warm()
    assert "compiling the fused numba kernel (no cache at " in first.stderr
    assert re.search(r"compiled the fused numba kernel in \d+\.\d s \(cached in ", first.stderr)
    assert first.stdout.startswith(f"numba: compiled the fused kernel into {tmp_path / 'cache'}")
    assert "compil" not in second.stderr, second.stderr  # loaded from the cache
    assert "is cached in" in second.stdout
