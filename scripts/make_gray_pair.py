"""Make the `rgb_to_gray` experiment's target: the bundled photo turned gray by Pillow.

    python scripts/make_gray_pair.py [PHOTO] [OUT]

writes OUT (default examples/grace_hopper_gray.png): PHOTO (default examples/grace_hopper.jpg)
through Pillow's `convert("L")`, which its documentation gives as ITU-R 601-2 luma,
L = R * 299/1000 + G * 587/1000 + B * 114/1000, rounded to 8 bits. Saved as a 16-bit grayscale
PNG with each level L stored as L * 257, so it reads back as L * 257 / 65535 = L / 255 exactly:
the 8-bit rounding (at most 1/510 a pixel) is the only difference from the formula, and it is
Pillow's own. Written with numpy and Pillow only: the truth the experiment is checked against
is Pillow's documented weights, not kernellab.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "grace_hopper.jpg"
OUT = ROOT / "examples" / "grace_hopper_gray.png"
# Pillow's documented convert("L") weights (Image.convert: ITU-R 601-2 luma transform)
ITU_R_601_2 = (0.299, 0.587, 0.114)


def make_gray_pair(photo: Path = PHOTO, out: Path = OUT) -> Path:
    with Image.open(photo) as picture:
        gray = np.asarray(picture.convert("L"), dtype=np.uint16)
    Image.fromarray(gray * 257).save(out)  # 255 -> 65535: the same value in [0, 1]
    return out


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:3]]
    written = make_gray_pair(*args)
    print(f"wrote {written}: {PHOTO.name} through Pillow's convert('L') (ITU-R 601-2)")
