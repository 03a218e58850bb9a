"""Photos as the input image, and the fused one-pass step that makes big ones fast."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from kernellab.checks import check
from kernellab.config import compose
from kernellab.data import photo, target_image
from kernellab.errors import ConfigError
from kernellab.training import train
from kernellab.validation import validate
from tests.helpers import TRUTH_3X3, run_cli, write_target_pair


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


# --- targets from files: task.target_image ---


def target_args(image, target, *more):
    return (f"task.image={image}", f"task.target_image={target}", "model.kernel_size=3", *more)


LEARN = ("model.bias=false", "model.init=zeros", "optim=adam", "optim.lr=0.03", "trainer.steps=400")


def test_the_kernel_between_two_pictures_is_learned(tmp_path):
    image, target = write_target_pair(tmp_path)
    result = train(compose(*target_args(image, target, *LEARN)), tmp_path / "run")
    assert result.status == "completed"
    # the truth is the kernel the target was made with (numpy), to 16-bit rounding and training
    np.testing.assert_allclose(result.weight, TRUTH_3X3, atol=2e-3)
    assert result.kernel_error is None  # no ground truth given
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["kernel_error"] is None


def test_a_ground_truth_beside_a_target_image_gives_the_kernel_error(tmp_path):
    image, target = write_target_pair(tmp_path)
    truth = "task.target_kernel=" + json.dumps(TRUTH_3X3).replace(" ", "")
    result = train(compose(*target_args(image, target, *LEARN, truth)), tmp_path / "run")
    flat = np.asarray(result.weight) - np.asarray(TRUTH_3X3)
    assert result.kernel_error == pytest.approx(float(np.sqrt((flat**2).sum())), abs=1e-6)
    assert result.kernel_error < 3e-3


def test_targets_are_scaled_by_their_bit_depth(tmp_path):
    levels = np.array([[0, 1, 32768, 65535]])
    Image.fromarray(levels.astype(np.uint16)).save(tmp_path / "16.png")
    Image.fromarray(np.array([[0, 1, 128, 255]], dtype=np.uint8)).save(tmp_path / "8.png")
    sixteen = target_image(str(tmp_path / "16.png"), "vertical")
    eight = target_image(str(tmp_path / "8.png"), "vertical")
    np.testing.assert_allclose(sixteen.numpy(), levels / 65535, rtol=1e-6)
    np.testing.assert_allclose(eight.numpy(), [[0, 1 / 255, 128 / 255, 1]], rtol=1e-6)
    assert target_image(str(tmp_path / "8.png"), "horizontal").shape == (4, 1)


def test_a_target_of_the_wrong_size_names_the_file_and_both_sizes(tmp_path):
    image, target = write_target_pair(tmp_path)  # 24x28 image, 22x26 target
    expected = (
        rf"^task.target_image={target}: is 22x26, but image {image} is 24x28 and a 5x5 kernel"
        r" with padding \[0, 0\], stride \[1, 1\] makes 20x24: the target must be 20x24$"
    )
    with pytest.raises(ConfigError, match=expected):
        validate(compose(*target_args(image, target), "model.kernel_size=5"))
    # padding 1 keeps 24x28: the image itself is no target for a 3x3 kernel without it
    assert validate(compose(*target_args(image, image, "model.padding=1"))).output_shape == (24, 28)
    # the image resized, the target not: the output of the resized image is what must fit
    resized = target_args(image, target, "task.resize=[12,30]")
    with pytest.raises(ConfigError, match=r"is 22x26, but image .* is 12x30 .* must be 10x28$"):
        validate(compose(*resized))


def test_horizontal_transposes_the_target_image_with_the_image(tmp_path):
    image, target = write_target_pair(tmp_path)
    sideways = ("task.orientation=horizontal",)
    result = train(compose(*target_args(image, target, *LEARN, *sideways)), tmp_path / "run")
    np.testing.assert_allclose(result.weight, np.transpose(TRUTH_3X3), atol=2e-3)
    transposed = tmp_path / "transposed.png"
    Image.open(target).transpose(Image.Transpose.TRANSPOSE).save(transposed)
    with pytest.raises(ConfigError, match=r"is 22x26, .* must be 26x22 \(sizes after horizontal"):
        validate(compose(*target_args(image, transposed, *sideways)))


def truncated_png(directory):
    _, target = write_target_pair(directory)
    data = target.read_bytes()
    return file_with(directory, "cut.png", data[: len(data) // 2])


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "missing.png", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: file_with(d, "empty.png", b""), "not a picture"),
        (truncated_png, "can't be decoded"),
    ],
    ids=["missing", "directory", "empty", "truncated"],
)
def test_a_bad_target_image_is_one_line_naming_the_file(tmp_path, make, reason):
    image, _ = write_target_pair(tmp_path)
    path = make(tmp_path)
    with pytest.raises(ConfigError, match=f"^task.target_image={path}: {reason}") as error:
        check(compose(*target_args(image, path)))
    assert "\n" not in str(error.value)


def test_without_a_ground_truth_the_kernel_size_is_needed_and_kernel_error_refused(tmp_path):
    image, target = write_target_pair(tmp_path)
    bare = (f"task.image={image}", f"task.target_image={target}")
    with pytest.raises(ConfigError, match=r"^model.kernel_size=null: must be given with task"):
        validate(compose(*bare))
    with pytest.raises(
        ConfigError, match=r"^objective=kernel_error: needs a ground truth"
    ) as error:
        validate(compose(*target_args(image, target), "objective=kernel_error"))
    assert "\n" not in str(error.value)
    assert validate(compose(*bare, "task.target_kernel=sobel_x", "objective=kernel_error"))


@pytest.mark.parametrize("backend", ["fused", "loop", "corr2d"])
def test_every_backend_learns_from_a_target_image_as_the_torch_step(tmp_path, backend):
    image, target = write_target_pair(tmp_path, (14, 15))
    args = target_args(image, target, "optim.lr=0.002", "trainer.steps=15")
    other = train(compose(*args, f"model.backend={backend}"), tmp_path / backend)
    plain = train(compose(*args, "model.backend=torch"), tmp_path / "torch")
    torch.testing.assert_close(
        torch.tensor(other.weight), torch.tensor(plain.weight), rtol=1e-4, atol=1e-5
    )
    assert other.final_loss == pytest.approx(plain.final_loss, rel=1e-3)


@pytest.mark.slow
def test_a_refused_target_leaves_no_run_dir_and_a_batched_sweep_trains(tmp_path):
    image, target = write_target_pair(tmp_path)
    run_dir = tmp_path / "run"
    refused = run_cli(
        *target_args(image, target, "model.kernel_size=4"), f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert refused.returncode == 2 and not run_dir.exists()
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: task.target_image={target}: is 22x26") and "21x25" in line
    sweep = tmp_path / "sweep"
    done = run_cli(
        "-m",
        *target_args(image, target, *LEARN[:-1], "trainer.steps=50"),
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        check=True,
    )
    for job in sorted(p for p in sweep.iterdir() if p.name[0].isdigit()):
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["kernel_error"] is None, done.stdout
