"""corr2d and output_shape against the book's examples and against F.conv2d."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kernellab.ops import (
    corr2d,
    corr2d_multi_in,
    corr2d_multi_in_out,
    corr2d_reference,
)
from kernellab.shapes import output_shape

BOOK_X = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
BOOK_K = torch.tensor([[0, 1], [2, 3]])
EDGE_K = torch.tensor([[-1.0, 1.0]])


def stripes() -> torch.Tensor:
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    return X


def test_book_example_both_implementations():
    expected = torch.tensor([[19, 25], [37, 43]])
    assert torch.equal(corr2d(BOOK_X, BOOK_K), expected)
    assert torch.equal(corr2d_reference(BOOK_X, BOOK_K), expected)


def test_edge_map_marks_both_stripe_edges():
    Y = corr2d(stripes(), EDGE_K)
    assert Y.shape == (6, 7)
    assert all(row == [0, -1, 0, 0, 0, 1, 0] for row in Y.tolist())


def test_transposed_image_has_no_vertical_edges():
    assert torch.count_nonzero(corr2d(stripes().t(), EDGE_K)) == 0


def test_output_shape_book_examples():
    # d2l 6.3: padding keeps 8x8; stride 2 halves it; the "complicated" example gives 2x2.
    assert output_shape((8, 8), 3, padding=1) == (8, 8)
    assert output_shape((8, 8), (5, 3), padding=(2, 1)) == (8, 8)
    assert output_shape((8, 8), 3, padding=1, stride=2) == (4, 4)
    assert output_shape((8, 8), (3, 5), padding=(0, 1), stride=(3, 4)) == (2, 2)


geometry = st.fixed_dictionaries(
    {
        "h": st.integers(1, 9),
        "w": st.integers(1, 9),
        "kh": st.integers(1, 4),
        "kw": st.integers(1, 4),
        "ph": st.integers(0, 2),
        "pw": st.integers(0, 2),
        "sh": st.integers(1, 3),
        "sw": st.integers(1, 3),
    }
).filter(lambda g: g["kh"] <= g["h"] + 2 * g["ph"] and g["kw"] <= g["w"] + 2 * g["pw"])


@settings(max_examples=60, deadline=None)
@given(g=geometry, seed=st.integers(0, 2**16))
def test_matches_conv2d_shape_and_values(g, seed):
    torch.manual_seed(seed)
    X, K = torch.randn(g["h"], g["w"]), torch.randn(g["kh"], g["kw"])
    padding, stride = (g["ph"], g["pw"]), (g["sh"], g["sw"])
    expected = F.conv2d(X[None, None], K[None, None], padding=padding, stride=stride)[0, 0]
    assert output_shape(X.shape, K.shape, padding, stride) == tuple(expected.shape)
    torch.testing.assert_close(corr2d(X, K, padding, stride), expected)
    torch.testing.assert_close(corr2d_reference(X, K, padding, stride), expected)


@pytest.mark.parametrize(("padding", "stride"), [(0, 1), (1, 1), (2, 3), ((1, 0), (2, 1))])
def test_banded_conv2d_equals_one_call(monkeypatch, padding, stride):
    import kernellab.ops as ops

    monkeypatch.setattr(ops, "BAND_BYTES", 1)  # a band of one output row at a time
    X, K, b = torch.rand(23, 19), torch.randn(3, 2), torch.randn(1)
    expected = F.conv2d(X[None, None], K[None, None], b, stride, padding)[0, 0]
    torch.testing.assert_close(ops.conv2d_in_bands(X, K, b, padding, stride), expected)


@pytest.mark.parametrize(("padding", "stride"), [(0, 1), (1, 1), (2, 3)])
def test_banded_conv2d_with_channels_is_the_books_multi_in_out(monkeypatch, padding, stride):
    import kernellab.ops as ops

    monkeypatch.setattr(ops, "BAND_BYTES", 1)  # a band of one output row at a time
    X, K = torch.rand(3, 23, 19), torch.randn(2, 3, 3, 2)
    expected = ops.corr2d_multi_in_out(X, K, padding, stride)
    torch.testing.assert_close(ops.conv2d_in_bands(X, K, None, padding, stride), expected)
    looped = ops.corr2d_multi_in_out(X, K, padding, stride, correlate=ops.corr2d_reference)
    torch.testing.assert_close(looped, expected)


# d2l "Multiple Input and Multiple Output Channels": its X, K and printed results
BOOK_X2 = torch.tensor([[[0.0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1.0, 2, 3], [4, 5, 6], [7, 8, 9]]])
BOOK_K2 = torch.tensor([[[0.0, 1], [2, 3]], [[1.0, 2], [3, 4]]])


def test_multi_in_book_example():
    assert corr2d_multi_in(BOOK_X2, BOOK_K2).tolist() == [[56, 72], [104, 120]]


def test_multi_in_out_book_example():
    K = torch.stack((BOOK_K2, BOOK_K2 + 1, BOOK_K2 + 2))
    assert K.shape == (3, 2, 2, 2)
    Y = corr2d_multi_in_out(BOOK_X2, K)
    assert Y.shape == (3, 2, 2)
    # the book prints these three maps
    assert Y.tolist() == [
        [[56, 72], [104, 120]],
        [[76, 100], [148, 172]],
        [[96, 128], [192, 224]],
    ]


def test_one_by_one_convolution_is_a_matrix_product():
    # the book's corr2d_multi_in_out_1x1: a (c_o, c_i) matrix times each pixel's channel vector
    generator = torch.Generator().manual_seed(0)
    X = torch.normal(0, 1, (3, 3, 3), generator=generator, dtype=torch.float64)
    K = torch.normal(0, 1, (2, 3, 1, 1), generator=generator, dtype=torch.float64)
    product = (K.view(2, 3) @ X.view(3, 9)).view(2, 3, 3)
    assert torch.allclose(corr2d_multi_in_out(X, K), product, atol=1e-12)
