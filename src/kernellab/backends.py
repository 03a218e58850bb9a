"""How the layer cross-correlates (`model.backend`): one entry per backend, all it takes.

An entry holds everything the rest of the code asks of a backend: the layer's forward, the loss
of a single job's step (when it is not the forward's), the devices it runs on, whether its jobs
train batched, its memory estimate and its size limit. Adding a backend is one entry in
`BACKENDS` (README "Extending"); no other module names a backend.

Light on purpose (the config schema lists the names without importing torch): the functions an
entry loads import torch when they are called, once per run, never per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Pair = tuple[int, int]
# (X (1, in, h, w), weight (out, in, kh, kw), bias or None, padding, stride) -> Y (1, out, oh, ow)
Correlate = Callable[[Any, Any, Any, Pair, Pair], Any]
# (model, X, Y) -> a function computing the step's loss (the sum of squared errors), once built
LossBuilder = Callable[[Any, Any, Any], Callable[[], Any]]
# (input (h, w), output (oh, ow), kernel (kh, kw)) -> bytes one job needs
MemoryEstimate = Callable[[Pair, Pair, Pair], int]

BYTES = 4  # float32


@dataclass(frozen=True)
class Backend:
    help: str  # what it is, for `model.backend`'s help text
    forward: Callable[[], Correlate]  # loads the layer's cross-correlation
    job_bytes: MemoryEstimate
    loss: LossBuilder | None = None  # None: F.mse_loss(model(X), Y, reduction="sum")
    devices: tuple[str, ...] | None = None  # the torch device types it runs on; None: any
    batches: bool = False  # jobs can train as one grouped F.conv2d (kernellab.batching)
    max_outputs: int | None = None  # the most output pixels it takes
    too_big: str = ""  # the refusal's reason, with {limit} and {outputs}
    auto: Callable[[str, int], bool] | None = None  # (device type, output pixels): `auto` picks it
    channels: bool = True  # trains layers with channels other than (1, 1)


def _conv2d() -> Correlate:
    import torch.nn.functional as F

    def conv2d(X: Any, weight: Any, bias: Any, padding: Pair, stride: Pair) -> Any:
        return F.conv2d(X, weight, bias, stride, padding)

    return conv2d


def _on_planes(correlate: Callable[..., Any]) -> Correlate:
    """Run a 2-D (h, w) cross-correlation on the layer's (1, 1, h, w) tensors, then add the bias;
    with channels, the book's `corr2d_multi_in_out` over it."""
    from kernellab.ops import corr2d_multi_in_out

    def correlate_planes(X: Any, weight: Any, bias: Any, padding: Pair, stride: Pair) -> Any:
        if weight.shape[:2] != (1, 1):
            Y = corr2d_multi_in_out(X[0], weight, padding, stride, correlate)[None]
            return Y if bias is None else Y + bias.view(1, -1, 1, 1)
        Y = correlate(X[0, 0], weight[0, 0], padding, stride)[None, None]
        return Y if bias is None else Y + bias

    return correlate_planes


def _corr2d() -> Correlate:
    from kernellab.ops import corr2d

    return _on_planes(corr2d)


def _loop() -> Correlate:
    from kernellab.ops import corr2d_reference

    return _on_planes(corr2d_reference)


def _fused_loss(model: Any, X: Any, Y: Any) -> Callable[[], Any]:
    """Forward, loss and gradients in one pass over the image (kernellab.stencil, numba)."""
    from kernellab.stencil import fused_sse

    def loss_of() -> Any:
        return fused_sse(
            X, Y, model.weight, model.bias, model.padding, model.stride, backend="numba"
        )

    return loss_of


def _fused_preferred(device_type: str, output_pixels: int) -> bool:
    """On the CPU from MIN_FUSED_PIXELS output pixels on (50x faster than F.conv2d at 512², and
    no image-sized temporaries), where numba is installed."""
    from kernellab.stencil import MIN_FUSED_PIXELS, numba_installed

    return device_type == "cpu" and output_pixels >= MIN_FUSED_PIXELS and numba_installed()


def _conv2d_bytes(input_hw: Pair, output_hw: Pair, kernel_hw: Pair) -> int:
    """Its image and target, and F.conv2d's working memory: prediction, gradients and unfolded
    windows (~16x the output for a 1x2 kernel, measured on a 30000² image); generous."""
    (h, w), (oh, ow), (kh, kw) = input_hw, output_hw, kernel_hw
    return BYTES * (2 * h * w + oh * ow * (6 + 8 * kh * kw))


def _fused_bytes(input_hw: Pair, output_hw: Pair, kernel_hw: Pair) -> int:
    """X, its padded copy for the target, Y and the prediction picture: nothing image-sized else."""
    (h, w), (oh, ow) = input_hw, output_hw
    return BYTES * 2 * (h * w + oh * ow)


# The `loop` backend's step takes ~50 µs an output: bounded, so a signal is honoured within seconds
MAX_LOOP_OUTPUTS = 128 * 128

BACKENDS: dict[str, Backend] = {
    "torch": Backend(  # the fastest for small images, and on a GPU
        help="F.conv2d", forward=_conv2d, job_bytes=_conv2d_bytes, batches=True
    ),
    "fused": Backend(  # the layer's own forward (the prediction picture) is F.conv2d's
        help="one fused pass for the step (CPU)",
        forward=_conv2d,
        job_bytes=_fused_bytes,
        loss=_fused_loss,
        devices=("cpu",),
        auto=_fused_preferred,
        channels=False,
    ),
    "corr2d": Backend(help="our vectorised op", forward=_corr2d, job_bytes=_conv2d_bytes),
    "loop": Backend(
        help="the book's loop",
        forward=_loop,
        job_bytes=_conv2d_bytes,
        max_outputs=MAX_LOOP_OUTPUTS,
        too_big="the book's Python loop is for small problems (at most {limit} outputs, a second"
        " or so a step; this one has {outputs})",
    ),
}
AUTO = "auto"  # `model.backend`'s default: the first backend whose `auto` applies, else DEFAULT
DEFAULT = "torch"
AUTO_HELP = "`auto`: `fused` on the CPU from 256² outputs with one channel, else `torch`."


def resolve(name: str, device_type: str, output_pixels: int, channels: bool = False) -> str:
    """`model.backend` with `auto` resolved for a device type, a number of output pixels and
    whether the layer has channels (other than (1, 1))."""
    if name != AUTO:
        return name
    for candidate, backend in BACKENDS.items():
        fits = backend.channels or not channels
        if fits and backend.auto is not None and backend.auto(device_type, output_pixels):
            return candidate
    return DEFAULT


def channels_refusal(name: str, channels: Pair) -> str | None:
    """Why backend `name` can't train a layer with (out, in) `channels` (a ConfigError's
    message), or None."""
    if channels == (1, 1) or BACKENDS[name].channels:
        return None
    fit = [AUTO, *(n for n, b in BACKENDS.items() if b.channels)]
    return (
        f"trains one channel only, and this layer has (out {channels[0]}, in {channels[1]}):"
        f" use {', '.join(fit[:-1])} or {fit[-1]} ({AUTO} picks {DEFAULT})"
    )


def device_refusal(name: str, device: Any) -> str | None:
    """Why backend `name` can't run on `device` (a ConfigError's message), or None."""
    devices = BACKENDS[name].devices
    if devices is None or device.type in devices:
        return None
    where = " or ".join(d.upper() for d in devices)
    return f"runs on the {where} only; use {DEFAULT} or {AUTO} on {device}"


def size_refusal(name: str, output_pixels: int) -> str | None:
    """Why backend `name` can't take this many output pixels (a ConfigError's message), or None."""
    backend = BACKENDS.get(name)
    if backend is None or backend.max_outputs is None or output_pixels <= backend.max_outputs:
        return None
    others = [AUTO, *(n for n, b in BACKENDS.items() if b.max_outputs is None)]
    why = backend.too_big.format(limit=backend.max_outputs, outputs=output_pixels)
    return f"{why}: use {', '.join(others[:-1])} or {others[-1]}"


def help_text() -> str:
    names = ", ".join(f"`{n}`" for n in BACKENDS)
    return f"`{AUTO}`, {names}: {'; '.join(b.help for b in BACKENDS.values())}. {AUTO_HELP}"
