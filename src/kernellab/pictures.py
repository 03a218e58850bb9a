"""Pictures of 2-D tensors for TensorBoard: signed heat maps, blown up or averaged down to be seen."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IMAGE_CELL_PX = 32  # a kernel element drawn as a 32x32 block so a 1x2 kernel is visible
MAX_IMAGE_PX = 512


def heatmap(values: torch.Tensor) -> torch.Tensor:
    """A diverging blue-white-red picture (3, H, W) of a 2-D tensor, white at 0, scaled by max |v|."""
    values = _fit_for_display(values.detach().float()).cpu()
    scale = values.abs().max().clamp_min(1e-12)
    v = (values / scale).clamp(-1, 1)
    positive, negative = v.clamp_min(0), (-v).clamp_min(0)
    rgb = torch.stack([1 - negative, 1 - positive - negative, 1 - positive])  # red > 0, blue < 0
    return _resize(rgb)


def _fit_for_display(values: torch.Tensor) -> torch.Tensor:
    """Average big images down to at most MAX_IMAGE_PX (on their device, before colouring)."""
    h, w = values.shape
    if max(h, w) <= MAX_IMAGE_PX:
        return values
    size = (max(1, h * MAX_IMAGE_PX // max(h, w)), max(1, w * MAX_IMAGE_PX // max(h, w)))
    return F.interpolate(values[None, None], size=size, mode="area")[0, 0]


def _resize(rgb: torch.Tensor) -> torch.Tensor:
    """Blow small grids up into visible blocks (up to MAX_IMAGE_PX on the longer side)."""
    h, w = rgb.shape[1:]
    cell = max(1, min(IMAGE_CELL_PX, MAX_IMAGE_PX // max(h, w)))
    return rgb.repeat_interleave(cell, 1).repeat_interleave(cell, 2)
