"""Make the `blur_pair` experiment's target: the bundled photo blurred by a known 5×5 Gaussian.

    python scripts/make_blur_pair.py [PHOTO] [OUT]

writes OUT (default examples/grace_hopper_blur5.png): PHOTO (default examples/grace_hopper.jpg)
in gray levels (Pillow's `convert("L")`, / 255), cross-correlated with `GAUSSIAN_5X5` without
padding (the output is 4 pixels smaller each way, as `corr2d` makes it), saved as a 16-bit
grayscale PNG so the blurred values keep 1/65535 of precision (8 bits would round them to 1/255).
Written with numpy and Pillow only: the truth the experiment is checked against doesn't come from
kernellab.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "grace_hopper.jpg"
OUT = ROOT / "examples" / "grace_hopper_blur5.png"
SIGMA = 1.0


def gaussian_kernel(size: int = 5, sigma: float = SIGMA) -> np.ndarray:
    """exp(-(x² + y²) / 2σ²) on the size×size grid centred at 0, normalised to sum 1."""
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


GAUSSIAN_5X5 = gaussian_kernel()


def gray(path: Path) -> np.ndarray:
    """A photo in gray levels in [0, 1], float64."""
    with Image.open(path) as picture:
        return np.asarray(picture.convert("L"), dtype=np.float64) / 255


def correlate_valid(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Y[i, j] = Σ X[i + a, j + b] K[a, b]: the book's corr2d, no padding, stride 1."""
    kh, kw = K.shape
    windows = np.lib.stride_tricks.sliding_window_view(X, (kh, kw))
    return np.einsum("ijab,ab->ij", windows, K)


def save_16bit(Y: np.ndarray, path: Path) -> None:
    """[0, 1] as a 16-bit grayscale PNG (Pillow mode I;16), rounded to the nearest 1/65535."""
    levels = np.rint(np.clip(Y, 0, 1) * 65535).astype(np.uint16)
    Image.fromarray(levels).save(path)


def make_blur_pair(photo: Path = PHOTO, out: Path = OUT) -> Path:
    save_16bit(correlate_valid(gray(photo), GAUSSIAN_5X5), out)
    return out


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:3]]
    written = make_blur_pair(*args)
    print(f"wrote {written}: {PHOTO.name} blurred by a 5x5 Gaussian (sigma {SIGMA})")
    print("kernel:", np.array2string(GAUSSIAN_5X5, precision=4))
