"""Photos as the input image, and the fused one-pass step that makes big ones fast."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from kernellab.config import compose
from kernellab.data import photo
from kernellab.errors import ConfigError
from kernellab.training import train
from kernellab.validation import validate


def write_png(path, pixels):
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def gradient_png(tmp_path):
    """A 40x50 RGB picture whose gray level is known: (R, G, B) = (v, v, v)."""
    v = (np.arange(40)[:, None] * 3 + np.arange(50)[None, :] * 2) % 256
    return write_png(tmp_path / "gradient.png", np.stack([v, v, v], axis=-1)), v


def test_a_photo_is_grayscale_in_0_1_at_its_own_size(gradient_png):
    path, v = gradient_png
    X = photo(str(path))
    assert X.shape == (40, 50) and X.dtype == torch.float32
    torch.testing.assert_close(X, torch.tensor(v / 255, dtype=torch.float32))
    assert photo(str(path), (20, 25)).shape == (20, 25)


def test_the_geometry_comes_from_the_file(gradient_png):
    path, _ = gradient_png
    geometry = validate(compose(f"task.image={path}", "task.target_kernel=sobel_x"))
    assert geometry.input_shape == (40, 50) and geometry.output_shape == (38, 48)
    resized = validate(compose(f"task.image={path}", "task.resize=[30,20]"))
    assert resized.input_shape == (30, 20)
    sideways = validate(compose(f"task.image={path}", "task.orientation=horizontal"))
    assert sideways.input_shape == (50, 40)


def test_a_photo_run_learns_the_target(tmp_path):
    rng = np.random.default_rng(0)
    path = write_png(tmp_path / "noise.png", rng.integers(0, 256, (32, 32)))
    cfg = compose(
        f"task.image={path}",
        "task.target_kernel=sobel_x",
        "model.bias=false",
        "optim=adam",
        "optim.lr=0.1",
        "trainer.steps=300",
    )
    result = train(cfg, tmp_path / "run")
    assert result.status == "completed" and result.kernel_error < 1e-2


def file_with(directory, name, content):
    (directory / name).write_bytes(content)
    return directory / name


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "missing.png", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: file_with(d, "empty.png", b""), "not a picture"),
        (lambda d: file_with(d, "notes.png", b"hello"), "not a picture"),
    ],
    ids=["missing", "directory", "empty", "not-a-picture"],
)
def test_a_bad_photo_is_one_line_naming_the_file(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(ConfigError, match=f"^task.image={path}: {reason}") as error:
        validate(compose(f"task.image={path}"))
    assert "\n" not in str(error.value)


def test_a_photo_smaller_than_the_kernel_names_the_file(tmp_path):
    path = write_png(tmp_path / "tiny.png", [[0, 255]])
    with pytest.raises(ConfigError, match=rf"must fit the padded input .*image {path} \[1, 2\]"):
        validate(compose(f"task.image={path}", "model.kernel_size=3"))


@pytest.mark.parametrize("geometry", [("model.padding=1",), ("model.padding=2", "model.stride=3")])
def test_the_fused_step_trains_as_the_torch_step(tmp_path, geometry):
    common = ("task.image=random", "task.height=40", "task.width=37", "model.kernel_size=3")
    args = (*common, *geometry, "optim.lr=0.0001", "trainer.steps=30", "task.target_kernel=sobel_x")
    fused = train(compose(*args, "model.backend=fused"), tmp_path / "fused")
    plain = train(compose(*args, "model.backend=torch"), tmp_path / "torch")
    torch.testing.assert_close(
        torch.tensor(fused.weight), torch.tensor(plain.weight), rtol=1e-4, atol=1e-5
    )
    assert fused.final_loss == pytest.approx(plain.final_loss, rel=1e-3)


def test_auto_picks_the_fused_step_for_big_images_on_the_cpu(tmp_path):
    from kernellab.checks import backend_of

    def backend(*overrides):
        cfg = compose(*overrides)
        return backend_of(cfg, validate(cfg), torch.device("cpu"))

    assert backend() == "torch"  # the book's 6x8: F.conv2d, and no numba import
    assert backend("task.height=512", "task.width=512") == "fused"
    assert backend("task.height=512", "task.width=512", "model.backend=torch") == "torch"
