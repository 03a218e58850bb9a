"""One-pass training step for a single-channel kernel: loss and its gradients, fused.

The project's loss is `F.mse_loss(F.conv2d(X, W, b, stride, padding), Y, reduction="sum")`. With one
input and one output channel the convolution is a stencil, so a single pass over X and Y gives,
per output pixel, r = b + Σ_k W_k·X_shift_k − Y, and sums loss = Σ r², dW_k = 2 Σ r·X_shift_k and
db = 2 Σ r. `fused_sse` does that pass in a Numba kernel (`kernellab._stencil_numba`) and hands
autograd the saved gradients, so

    loss = fused_sse(X, Y, weight, bias, padding, stride)
    loss.backward()

fills `weight.grad` and `bias.grad` as the F.conv2d + mse_loss step does, in about 2–3× the time
of one `torch.add(X, Y, out=Z)` over the image, where the F.conv2d step takes 50–100× as long
(3×3 kernel, 1024²–8192², 1–2 threads: `python -m bench.stencil`), and with no image-sized
temporaries (the F.conv2d step allocates ~8× the bytes of X and Y).

Large images run in bands of rows on `torch.get_num_threads()` Python threads (the kernel releases
the GIL); the bands depend on the image's shape only, so results are bit-for-bit the same at any
thread count. Sums run in float64 across tiles of at most 2048 float32 columns, so the gradients
are closer to the exact ones than F.conv2d's own float32 ones (~1e-8 relative vs ~5e-4 at 4096²).

Numba is imported only when the fused kernel first runs: importing this module, or calling it with
`backend="torch"` or on a problem below `MIN_FUSED_PIXELS` output pixels, costs nothing extra. The
first fused call in a process pays ~0.4 s to import numba plus ~0.1 s to load the compiled kernel
from numba's cache (`__pycache__` beside `_stencil_numba.py`; NUMBA_CACHE_DIR, if set, instead), or
several seconds to compile it when there is no cache yet. `make setup` compiles it into that cache
(`python -m kernellab.stencil`), so a fresh clone's first large run loads it; a process that has to
compile it anyway (another CPU, an install it can't write to) logs once that it does, and how long
it took.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from kernellab.shapes import IntOrPair, Pair, output_shape, pair

log = logging.getLogger(__name__)

Backend = Literal["auto", "numba", "torch"]
BACKENDS: tuple[str, ...] = ("auto", "numba", "torch")

# Below this many output pixels `backend="auto"` keeps F.conv2d. Up to 128² both steps cost
# 0.1–0.3 ms, mostly per-call overhead, the fused one a little more; from 256² the fused step is
# ~8× faster, 50× at 512² (bench/stencil.py's crossover table). Its first call in a process also
# costs 0.5–1.5 s (importing numba), which the book's 6×8 task would never earn back.
MIN_FUSED_PIXELS = 256 * 256

# Rows per parallel work item: the split depends on the shape only, never on the thread count, so
# results are bit-for-bit the same with any number of threads.
_PIXELS_PER_BLOCK = 1 << 16
_MIN_BLOCKS = 64
_PARALLEL_MIN_PIXELS = 1 << 18  # smaller outputs (below 512²) run on the calling thread alone
_BANDS_PER_THREAD = 4

_executor: tuple[ThreadPoolExecutor, int] | None = None  # (pool, its number of workers)


def _pool(threads: int) -> ThreadPoolExecutor:
    """A pool of at least `threads` workers, kept for later calls (the kernel releases the GIL)."""
    global _executor
    if _executor is None or _executor[1] < threads:
        if _executor is not None:
            _executor[0].shutdown(wait=False)
        pool = ThreadPoolExecutor(threads, thread_name_prefix="kernellab-stencil")
        _executor = (pool, threads)
    return _executor[0]


def _forget_pool() -> None:
    global _executor
    _executor = None  # a forked child has none of its parent's threads


os.register_at_fork(after_in_child=_forget_pool)


@cache
def numba_installed() -> bool:
    """Whether numba can be imported (checked without importing it)."""
    return importlib.util.find_spec("numba") is not None


def fused_unsupported(
    X: torch.Tensor, Y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> str | None:
    """Why the fused kernel cannot run this step, or None when it can.

    It needs float32 CPU tensors, one input and one output channel (X and Y (h, w) or (1, 1, h, w),
    weight (kh, kw) or (1, 1, kh, kw), bias of one element or None), no gradient wanted for X or Y,
    and numba installed.
    """
    tensors = [("X", X), ("Y", Y), ("weight", weight)] + (
        [("bias", bias)] if bias is not None else []
    )
    for name, t in tensors:
        if t.device.type != "cpu":
            return f"{name} is on {t.device}, the fused kernel runs on the CPU"
        if t.dtype != torch.float32:
            return f"{name} is {t.dtype}, the fused kernel takes float32"
    for name, t in (("X", X), ("Y", Y), ("weight", weight)):
        if not _single_channel(t):
            return f"{name} has shape {tuple(t.shape)}: one channel, (h, w) or (1, 1, h, w), needed"
    if bias is not None and bias.numel() != 1:
        return f"bias has {bias.numel()} elements, one output channel needs 1"
    if X.requires_grad or Y.requires_grad:
        return (
            "a gradient for X or Y is wanted; the fused kernel gives the weight's and bias's only"
        )
    if not numba_installed():
        return "numba is not installed"
    return None


def fused_applies(
    X: torch.Tensor, Y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> bool:
    """Whether `fused_sse(..., backend="numba")` can compute this step (see `fused_unsupported`)."""
    return fused_unsupported(X, Y, weight, bias) is None


def fused_preferred(
    X: torch.Tensor,
    Y: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    min_pixels: int = MIN_FUSED_PIXELS,
) -> bool:
    """Whether `backend="auto"` picks the fused kernel: it applies and Y has ≥ min_pixels pixels."""
    return Y.numel() >= min_pixels and fused_applies(X, Y, weight, bias)


def fused_sse(
    X: torch.Tensor,
    Y: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: IntOrPair = 0,
    stride: IntOrPair = 1,
    *,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Σ (conv2d(X, weight, bias, stride, padding) − Y)², a 0-dim tensor that backpropagates.

    Same value and gradients as `F.mse_loss(F.conv2d(X, weight, bias, stride, padding), Y,
    reduction="sum")` (float32 rounding aside). X (h, w) or (1, 1, h, w); Y the output's shape,
    (oh, ow) or (1, 1, oh, ow); weight (kh, kw) or (1, 1, kh, kw); bias (1,) or None; padding
    zeros on each side; padding and stride ints or (height, width) pairs.

    backend: "numba" runs the fused kernel (ValueError where `fused_unsupported` says it cannot):
    the forward pass computes the loss and the weight and bias gradients together and `backward`
    scales the saved gradients, so it gives no gradient for X or Y and cannot be differentiated
    twice; where no gradient is wanted (grad mode off, or neither weight nor bias requires one) it
    computes the loss alone, a little faster. "torch" is the F.conv2d step, on any device and
    dtype. "auto" (default) is "numba" where `fused_preferred` says so, else "torch".
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    padding, stride = pair(padding), pair(stride)
    if backend == "auto":
        backend = "numba" if fused_preferred(X, Y, weight, bias) else "torch"
    if backend == "torch":
        return reference_sse(X, Y, weight, bias, padding, stride)
    reason = fused_unsupported(X, Y, weight, bias)
    if reason is not None:
        raise ValueError(f"fused_sse(backend='numba') cannot run: {reason}")
    wanted = [t for t in (weight, bias) if t is not None and t.requires_grad]
    if not (wanted and torch.is_grad_enabled()):  # evaluation: the loss alone is cheaper
        return sse_and_grads(X, Y, weight, bias, padding, stride, grads=False)[0]
    return FusedSSE.apply(X, Y, weight, bias, padding, stride)


def reference_sse(
    X: torch.Tensor,
    Y: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: IntOrPair = 0,
    stride: IntOrPair = 1,
) -> torch.Tensor:
    """The unfused step: F.mse_loss(F.conv2d(...), Y, reduction="sum"), shapes as in `fused_sse`."""
    X4, Y4 = _planes(X), _planes(Y)
    W4 = weight if weight.dim() == 4 else weight.reshape(1, 1, *weight.shape[-2:])
    b = None if bias is None else bias.reshape(1)
    pred = F.conv2d(X4, W4, b, pair(stride), pair(padding))
    _check_target(pred.shape[-2:], Y4.shape[-2:])
    return F.mse_loss(pred, Y4, reduction="sum")


class FusedSSE(torch.autograd.Function):
    """The fused step as an autograd node: forward computes and saves the gradients too."""

    @staticmethod
    def forward(ctx, X, Y, weight, bias, padding: Pair, stride: Pair):
        want_grad = ctx.needs_input_grad[2] or ctx.needs_input_grad[3]
        loss, grad_w, grad_b = sse_and_grads(X, Y, weight, bias, padding, stride, want_grad)
        ctx.save_for_backward(grad_w, grad_b)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss):
        grad_w, grad_b = ctx.saved_tensors
        dw = grad_loss * grad_w if ctx.needs_input_grad[2] else None
        db = grad_loss * grad_b if ctx.needs_input_grad[3] else None
        return None, None, dw, db, None, None


def sse_and_grads(
    X: torch.Tensor,
    Y: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: IntOrPair = 0,
    stride: IntOrPair = 1,
    grads: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The fused kernel without autograd: (loss, d loss/d weight, d loss/d bias).

    Float32 CPU tensors, shapes as in `fused_sse`. The gradients have weight's and bias's shapes;
    d/d bias is None without a bias, and both are None when `grads` is False (loss only, faster).
    Sums are taken in float64 per block of rows, then rounded to float32.
    """
    import numpy as np

    from kernellab import _stencil_numba  # imports numba: here, on first use only

    (ph, pw), (sh, sw) = pair(padding), pair(stride)
    if min(ph, pw) < 0 or min(sh, sw) < 1:
        raise ValueError(f"padding must be ≥ 0 and stride ≥ 1, not {(ph, pw)} and {(sh, sw)}")
    x = _plane(X).contiguous().numpy()
    y = _plane(Y).contiguous().numpy()
    k = weight.detach().reshape(weight.shape[-2:]).contiguous().numpy()
    _check_target(output_shape(x.shape, k.shape, (ph, pw), (sh, sw)), y.shape)
    oh, ow = y.shape
    b = 0.0 if bias is None else float(bias.detach().reshape(()))
    rows = max(1, min(math.ceil(_PIXELS_PER_BLOCK / ow), math.ceil(oh / _MIN_BLOCKS)))
    out = np.empty((math.ceil(oh / rows), k.size + 2))  # per block: tap sums, Σ r², Σ r

    nblocks = out.shape[0]
    args = (x, y, k, np.float32(b), ph, pw, sh, sw, rows, grads, out)
    if not _stencil_numba.sse_partials.signatures:  # this process's first call
        _load_or_compile(_stencil_numba.sse_partials, args)
    threads = min(torch.get_num_threads(), nblocks) if oh * ow >= _PARALLEL_MIN_PIXELS else 1
    if threads <= 1:
        _stencil_numba.sse_partials(*args, 0, nblocks)
    else:  # bands of blocks on a thread pool, several per thread so a busy core holds up less
        bands = min(nblocks, threads * _BANDS_PER_THREAD)
        edges = [nblocks * n // bands for n in range(bands + 1)]
        run = _stencil_numba.sse_partials
        list(_pool(threads).map(lambda n: run(*args, edges[n], edges[n + 1]), range(bands)))

    total = out.sum(axis=0)  # in block order: the same result with any number of threads
    loss = torch.tensor(total[-2], dtype=torch.float32)
    if not grads:
        return loss, None, None
    grad_w = torch.from_numpy((2 * total[:-2]).astype(np.float32)).reshape(weight.shape)
    grad_b = None if bias is None else torch.tensor(2 * total[-1], dtype=torch.float32)
    return loss, grad_w, None if grad_b is None else grad_b.reshape(bias.shape)


def _load_or_compile(kernel, args: tuple) -> float:
    """Make `kernel` ready for `args`' types without running it (no blocks): numba loads it from
    its cache, or compiles it (seconds), which is logged before and after. Returns the seconds."""
    cache_file = getattr(getattr(kernel, "_cache", None), "_cache_file", None)
    index = Path(getattr(cache_file, "_index_path", ""))
    if not index.is_file():
        log.info("compiling the fused numba kernel (no cache at %s yet) ...", index.parent)
    start = time.perf_counter()
    kernel(*args, 0, 0)
    seconds = time.perf_counter() - start
    if kernel.stats.cache_misses:
        log.info(
            "compiled the fused numba kernel in %.1f s (%s)",
            seconds,
            f"cached in {index.parent}" if index.is_file() else "numba could not cache it",
        )
    return seconds


def warm_up() -> str:
    """Compile the fused kernel into numba's cache unless it is there already (`make setup` runs
    this: `python -m kernellab.stencil`); one line saying which, and where."""
    from kernellab import _stencil_numba

    kernel = _stencil_numba.sse_partials
    X, w = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 3, 3)
    sse_and_grads(X, torch.zeros(1, 1, 8, 8), w, torch.zeros(1), padding=1)  # training's types
    where = kernel.stats.cache_path
    if kernel.stats.cache_misses:
        return f"numba: compiled the fused kernel into {where}"
    return f"numba: the fused kernel is cached in {where} already"


def _single_channel(t: torch.Tensor) -> bool:
    return t.dim() == 2 or (t.dim() == 4 and t.shape[0] == 1 and t.shape[1] == 1)


def _plane(t: torch.Tensor) -> torch.Tensor:
    """(h, w) view of an (h, w) or (1, 1, h, w) tensor, detached."""
    if not _single_channel(t):
        raise ValueError(f"expected (h, w) or (1, 1, h, w), got {tuple(t.shape)}")
    return t.detach().reshape(t.shape[-2:])


def _planes(t: torch.Tensor) -> torch.Tensor:
    return t if t.dim() == 4 else t.reshape(1, 1, *t.shape[-2:])


def _check_target(out_hw, target_hw) -> None:
    out_hw, target_hw = tuple(out_hw), tuple(target_hw)
    if min(out_hw) < 1:
        raise ValueError(f"the kernel, padding and stride give an empty output {out_hw}")
    if out_hw != target_hw:
        raise ValueError(f"Y is {target_hw} but the convolution's output is {out_hw}")


if __name__ == "__main__":
    print(warm_up())
