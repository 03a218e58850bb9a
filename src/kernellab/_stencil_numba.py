"""Numba kernel behind `kernellab.stencil`: importing this module imports numba (~0.4 s).

`sse_partials` makes one pass over X and Y, or over one band of their rows (callers run bands on
threads of their own: the kernel releases the GIL). For each output row it builds the residual
row r = b + Σ_k K_k·X_shift_k − Y in float32, in column tiles of `TILE` pixels so that r and the X
rows it reads stay in the L1 cache, then reduces the tile into per-block float64 sums: Σ r², Σ r
and, per tap k, Σ r·X_shift_k. The caller adds up the blocks (and applies the factor 2).

Speed comes from three choices (on a 2-core Xeon, ~1.5 ns per pixel and thread for a 3×3 kernel):

* Taps are applied kernel row by kernel row in groups of up to three X rows that share one column
  range, so one vectorised loop does three multiply-adds (forward) or three dot products (gradient)
  per load of r. Column edges need no per-pixel test: zero padding only shrinks each tap's column
  range (`_tap_columns`), and a missing X row (top or bottom padding) is skipped.
* Inner loops index with unsigned integers and take no slices, so numba adds no negative-index
  wraparound or reference counting, and LLVM vectorises them (with a unit-stride version for
  stride 1). One compiled specialisation serves every kernel size, padding and stride.
* fastmath is limited to reassociation and contraction (FMA), which the vectorised reductions need;
  NaN and infinity still propagate.

Accuracy: each tile's sums run in float32 over at most `TILE` columns, split across the vector lanes
(8 or more), so a float32 partial sum has at most 256 terms; the tile sums accumulate in float64.

Tried and dropped: one loop for all nine taps of a 3×3 group (no faster once its edge columns are
handled apart), a zero-padded ring of X rows instead of shrinking column ranges (the copy costs
what it saves), 512-bit vectors (no faster), software touches of the next rows (no faster).
"""

from __future__ import annotations

import numba as nb
import numpy as np

FASTMATH = {"reassoc", "contract"}
TILE = 2048  # output columns per tile: r, three X rows and a Y row (40 KiB) fit a 48 KiB L1


# The helpers index with unsigned integers (`_u`): numba then emits no negative-index wraparound,
# they take no array slices (each would cost reference-count updates, ~25 ns), and LLVM vectorises
# the loops, with a unit-stride version for sw == 1. They read X[x_, q0 + j·sw] for j in [0, n)
# and update or read r[j0 + j].


@nb.njit(fastmath=FASTMATH)
def _axpy1(r, j0, X, x0, q0, sw, n, k0):
    for j in range(n):
        q = q0 + j * sw
        r[j0 + j] += k0 * X[x0, q]


@nb.njit(fastmath=FASTMATH)
def _axpy2(r, j0, X, x0, x1, q0, sw, n, k0, k1):
    for j in range(n):
        q = q0 + j * sw
        r[j0 + j] += k0 * X[x0, q] + k1 * X[x1, q]


@nb.njit(fastmath=FASTMATH)
def _axpy3(r, j0, X, x0, x1, x2, q0, sw, n, k0, k1, k2):
    for j in range(n):
        q = q0 + j * sw
        r[j0 + j] += k0 * X[x0, q] + k1 * X[x1, q] + k2 * X[x2, q]


@nb.njit(fastmath=FASTMATH)
def _dot1(r, j0, X, x0, q0, sw, n):
    s0 = np.float32(0.0)
    for j in range(n):
        s0 += r[j0 + j] * X[x0, q0 + j * sw]
    return np.float64(s0)


@nb.njit(fastmath=FASTMATH)
def _dot2(r, j0, X, x0, x1, q0, sw, n):
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    for j in range(n):
        q = q0 + j * sw
        v = r[j0 + j]
        s0 += v * X[x0, q]
        s1 += v * X[x1, q]
    return np.float64(s0), np.float64(s1)


@nb.njit(fastmath=FASTMATH)
def _dot3(r, j0, X, x0, x1, x2, q0, sw, n):
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    s2 = np.float32(0.0)
    for j in range(n):
        q = q0 + j * sw
        v = r[j0 + j]
        s0 += v * X[x0, q]
        s1 += v * X[x1, q]
        s2 += v * X[x2, q]
    return np.float64(s0), np.float64(s1), np.float64(s2)


@nb.njit(fastmath=FASTMATH)
def _init_residual(r, Y, i, j0, n, bias):
    for j in range(n):
        r[j0 + j] = bias - Y[i, j0 + j]


@nb.njit(fastmath=FASTMATH)
def _sum_and_squares(r, j0, n):
    s1 = np.float32(0.0)
    s2 = np.float32(0.0)
    for j in range(n):
        v = r[j0 + j]
        s1 += v
        s2 += v * v
    return np.float64(s1), np.float64(s2)


@nb.njit
def _u(value):
    return np.uint64(value)


@nb.njit(fastmath=FASTMATH)
def _all_taps(X, K, r, acc, i, ph, pw, sh, sw, jlo, jhi, grad):
    """Every tap that reads inside X for output row i, over the tile's column ranges jlo..jhi.

    Kernel rows go in groups of up to three, which share column range and r: one loop does three
    multiply-adds (forward) or three dot products (gradient) per load of r.
    """
    H = X.shape[0]
    kh, kw = K.shape
    a_lo = max(0, ph - i * sh)
    a_hi = min(kh, H + ph - i * sh)
    usw = _u(sw)
    for c in range(kw):
        lo = jlo[c]
        hi = jhi[c]
        if hi <= lo:
            continue
        j0, q0, n = _u(lo), _u(lo * sw + c - pw), _u(hi - lo)
        a = a_lo
        while a < a_hi:
            na = min(3, a_hi - a)
            xr = _u(i * sh + a - ph)
            t0 = a * kw + c
            if na == 3:
                if grad:
                    g0, g1, g2 = _dot3(r, j0, X, xr, xr + _u(1), xr + _u(2), q0, usw, n)
                    acc[t0] += g0
                    acc[t0 + kw] += g1
                    acc[t0 + 2 * kw] += g2
                else:
                    k0, k1, k2 = K[a, c], K[a + 1, c], K[a + 2, c]
                    _axpy3(r, j0, X, xr, xr + _u(1), xr + _u(2), q0, usw, n, k0, k1, k2)
            elif na == 2:
                if grad:
                    g0, g1 = _dot2(r, j0, X, xr, xr + _u(1), q0, usw, n)
                    acc[t0] += g0
                    acc[t0 + kw] += g1
                else:
                    _axpy2(r, j0, X, xr, xr + _u(1), q0, usw, n, K[a, c], K[a + 1, c])
            elif grad:
                acc[t0] += _dot1(r, j0, X, xr, q0, usw, n)
            else:
                _axpy1(r, j0, X, xr, q0, usw, n, K[a, c])
            a += na


@nb.njit
def _tap_columns(W, ow, kw, pw, sw, t0, t1, jlo, jhi):
    """Per kernel column c: the output columns j in [t0, t1) whose X column j·sw + c − pw exists."""
    for c in range(kw):
        off = c - pw
        lo = 0 if off >= 0 else (-off + sw - 1) // sw
        top = W - 1 - off
        hi = min(ow, top // sw + 1) if top >= 0 else 0
        jlo[c] = min(max(t0, lo), t1)
        jhi[c] = max(jlo[c], min(t1, hi))


@nb.njit(fastmath=FASTMATH, nogil=True, cache=True)
def sse_partials(X, Y, K, bias, ph, pw, sh, sw, rows_per_block, grad, out, first, stop):
    """Fill out[block] for blocks first..stop-1: (Σ r·X_shift_k per tap k (row-major), Σ r², Σ r).

    Block b is output rows b·rows_per_block up to (b + 1)·rows_per_block. X (h, w), Y (oh, ow),
    K (kh, kw): C-contiguous float32. out: (ceil(oh / rows_per_block), kh·kw + 2) float64. With
    grad False the tap sums are left at 0 (loss only). Releases the GIL, so threads can each fill
    their own blocks at once.
    """
    W = X.shape[1]
    oh, ow = Y.shape
    kh, kw = K.shape
    nk = kh * kw
    for blk in range(first, stop):
        r = np.empty(ow, dtype=X.dtype)
        acc = np.zeros(nk + 2, np.float64)
        jlo = np.empty(kw, np.int64)
        jhi = np.empty(kw, np.int64)
        for i in range(blk * rows_per_block, min((blk + 1) * rows_per_block, oh)):
            for t0 in range(0, ow, TILE):
                t1 = min(t0 + TILE, ow)
                _tap_columns(W, ow, kw, pw, sw, t0, t1, jlo, jhi)
                _init_residual(r, Y, _u(i), _u(t0), _u(t1 - t0), bias)
                _all_taps(X, K, r, acc, i, ph, pw, sh, sw, jlo, jhi, False)
                s1, s2 = _sum_and_squares(r, _u(t0), _u(t1 - t0))
                acc[nk] += s2
                acc[nk + 1] += s1
                if grad:
                    _all_taps(X, K, r, acc, i, ph, pw, sh, sw, jlo, jhi, True)
        for t in range(nk + 2):
            out[blk, t] = acc[t]
