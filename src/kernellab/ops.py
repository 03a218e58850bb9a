"""2-D cross-correlation (the book's `corr2d`); its shape arithmetic is kernellab.shapes.

Padding is zeros on each side, as in `F.conv2d`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from kernellab.shapes import IntOrPair, output_shape, pair


def corr2d(
    X: torch.Tensor, K: torch.Tensor, padding: IntOrPair = 0, stride: IntOrPair = 1
) -> torch.Tensor:
    """Vectorised 2-D cross-correlation of an (h, w) image with a (kh, kw) kernel.

    `unfold` views every output position's window without copying; one contraction with K then
    gives the whole output. Differentiable in X and K, on any device.
    """
    (k_h, k_w), (s_h, s_w) = K.shape, pair(stride)
    dtype = torch.promote_types(X.dtype, K.dtype)
    windows = _pad(X.to(dtype), padding).unfold(0, k_h, s_h).unfold(1, k_w, s_w)  # (oh, ow, kh, kw)
    return torch.tensordot(windows, K.to(dtype), dims=2)


Correlate2d = Callable[[torch.Tensor, torch.Tensor, IntOrPair, IntOrPair], torch.Tensor]


def corr2d_multi_in(
    X: torch.Tensor,
    K: torch.Tensor,
    padding: IntOrPair = 0,
    stride: IntOrPair = 1,
    correlate: Correlate2d = corr2d,
) -> torch.Tensor:
    """The book's multi-input-channel correlation: X (c_in, h, w) and K (c_in, kh, kw), one
    `corr2d` per channel (or `correlate`: the `loop` backend's), summed over the channels into
    one (oh, ow) map."""
    return sum(correlate(x, k, padding, stride) for x, k in zip(X, K, strict=True))


def corr2d_multi_in_out(
    X: torch.Tensor,
    K: torch.Tensor,
    padding: IntOrPair = 0,
    stride: IntOrPair = 1,
    correlate: Correlate2d = corr2d,
) -> torch.Tensor:
    """The book's multi-output version: K (c_out, c_in, kh, kw), one `corr2d_multi_in` per
    output channel, stacked into (c_out, oh, ow)."""
    return torch.stack([corr2d_multi_in(X, k, padding, stride, correlate) for k in K])


def corr2d_reference(
    X: torch.Tensor, K: torch.Tensor, padding: IntOrPair = 0, stride: IntOrPair = 1
) -> torch.Tensor:
    """The notebook's double loop, generalised to padding and stride. Slow; kept for teaching and tests."""
    k_h, k_w = K.shape
    s_h, s_w = pair(stride)
    X = _pad(X, padding)
    out_h, out_w = output_shape(X.shape, K.shape, 0, stride)
    Y = torch.zeros(out_h, out_w, dtype=torch.promote_types(X.dtype, K.dtype), device=X.device)
    for i in range(out_h):
        for j in range(out_w):
            Y[i, j] = (X[i * s_h : i * s_h + k_h, j * s_w : j * s_w + k_w] * K).sum()
    return Y


def _pad(X: torch.Tensor, padding: IntOrPair) -> torch.Tensor:
    p_h, p_w = pair(padding)
    return F.pad(X, (p_w, p_w, p_h, p_h)) if p_h or p_w else X


BAND_BYTES = 1 << 28  # F.conv2d's working memory per band of output rows (~16x the band's bytes)


def conv2d_in_bands(
    X: torch.Tensor,
    K: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: IntOrPair = 0,
    stride: IntOrPair = 1,
) -> torch.Tensor:
    """F.conv2d of an (h, w) image with a (kh, kw) kernel, or of an (in, h, w) image with an
    (out, in, kh, kw) kernel into (out, oh, ow), a band of output rows at a time.

    Same values as one call; the working memory is bounded by BAND_BYTES instead of growing with
    the image (F.conv2d asked for 57 GB on a 30000² image with a 1×2 kernel).
    """
    channels = K.dim() == 4
    (k_h, k_w), (s_h, _) = K.shape[-2:], pair(stride)
    X = _pad(X if channels else X[None], padding)  # (in, h, w)
    out_h, out_w = output_shape(X.shape[-2:], K.shape[-2:], 0, stride)
    rows = max(1, BAND_BYTES // (16 * 4 * max(1, out_w * K[..., 0, 0].numel() * k_h * k_w)))
    weight, out = (K if channels else K[None, None]), []
    for top in range(0, out_h, rows):
        bottom = min(out_h, top + rows)
        band = X[:, top * s_h : (bottom - 1) * s_h + k_h][None]
        out.append(F.conv2d(band, weight, bias, stride)[0])
    Y = torch.cat(out, dim=1) if len(out) > 1 else out[0]
    return Y if channels else Y[0]
