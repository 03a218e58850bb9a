"""Every invalid value is refused with one line naming the key, the value and what is allowed."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernellab.config_help import options_help, reference_table, schema_rows
from kernellab.errors import ConfigError, show
from kernellab.resolved import config_yaml
from kernellab.validation import validate

# (override, key named in the message)
BAD_VALUES = [
    ("model.kernel_size=0", "model.kernel_size"),
    ("model.kernel_size=[0,2]", "model.kernel_size"),
    ("model.kernel_size=[1,2,3]", "model.kernel_size"),
    ("model.padding=-1", "model.padding"),
    ("model.padding=[0,-2]", "model.padding"),
    ("model.stride=0", "model.stride"),
    ("optim.lr=0", "optim.lr"),
    ("optim.lr=-0.1", "optim.lr"),
    ("optim.lr=inf", "optim.lr"),
    ("optim.lr=nan", "optim.lr"),
    ("trainer.steps=-1", "trainer.steps"),
    ("model.kernel_size=[7,8]", "model.kernel_size"),  # larger than the 6x8 input
    ("model.kernel_size=[1,1]", "model.kernel_size"),  # smaller than the target [[-1, 1]]
    ("model.backend=fast", "model.backend"),
    ("model.init=ones", "model.init"),
    ("task.target_kernel=sobel_z", "task.target_kernel"),
    ("task.target_kernel=[[1,2],[3]]", "task.target_kernel"),
    ("task.orientation=diagonal", "task.orientation"),
    ("task.image=noise", "task.image"),
    ("task.stripe=[6,2]", "task.stripe"),
    ("task.height=0", "task.height"),
    ("trainer.num_threads=0", "trainer.num_threads"),
    ("trainer.print_every=0", "trainer.print_every"),
    ("logger.log_every=0", "logger.log_every"),
    # booleans are booleans (OmegaConf's bool type would read 2, yes and '1' as true)
    ("model.bias=2", "model.bias"),
    ("model.bias=yes", "model.bias"),
    ("model.bias='true'", "model.bias"),
    ("trainer.cuda_graph=1", "trainer.cuda_graph"),
    # ints stay below 2^31: what torch's convolutions and the OS take
    ("model.stride=9223372036854775808", "model.stride"),
    ("model.padding=[0,2147483648]", "model.padding"),
    ("model.kernel_size=2147483648", "model.kernel_size"),
    ("trainer.steps=2147483648", "trainer.steps"),
    ("task.width=2147483648", "task.width"),
    ("task.resize=[2147483648,2]", "task.resize"),
    ("trainer.print_every=2147483648", "trainer.print_every"),
    ("logger.log_every=9223372036854775808", "logger.log_every"),
    ("logger.snapshot_every=2147483648", "logger.snapshot_every"),
    ("trainer.num_threads=2147483648", "trainer.num_threads"),
    ("trainer.num_threads='4'", "trainer.num_threads"),
]


@pytest.mark.parametrize(("override", "key"), BAD_VALUES)
def test_bad_value_names_key_value_and_rule(make_cfg, override, key):
    with pytest.raises(ConfigError) as error:
        validate(make_cfg(override))
    message = str(error.value)
    assert message.startswith(f"{key}="), message
    assert "\n" not in message
    assert "must" in message


def test_defaults_validate_to_the_books_geometry(make_cfg):
    geometry = validate(make_cfg())
    assert geometry.kernel_size == (1, 2)
    assert geometry.output_shape == (6, 7)
    assert validate(make_cfg("task.orientation=horizontal")).kernel_size == (2, 1)
    assert validate(make_cfg("model.kernel_size=3", "model.padding=1")).kernel_size == (3, 3)


def test_kernel_may_exactly_fill_the_padded_input(make_cfg):
    assert validate(make_cfg("model.kernel_size=[8,10]", "model.padding=1")).output_shape == (1, 1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_suggests_cpu_or_auto(make_cfg, tmp_path):
    from kernellab.training import train

    with pytest.raises(
        ConfigError, match=r"trainer.device=cuda: CUDA is not available.*cpu or auto"
    ):
        train(make_cfg("trainer.device=cuda"), tmp_path)


def test_the_configuration_reference_is_the_schema():
    page = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    assert reference_table() in page, "regenerate with: python -m kernellab.config"


def test_options_help_lists_every_key_with_its_default_and_meaning():
    text = options_help()
    flat = " ".join(text.split())  # help texts are wrapped to the terminal's width
    for key, default, meaning in schema_rows():
        assert f"  {key}={show(default)}" in text, key
        assert " ".join(meaning.split()).replace("$", "$$") in flat, key
    assert "  trainer.print_every=null  (int or null)" in text


def test_config_yaml_is_a_whole_dump_whatever_it_kept():
    import yaml

    first = {"seed": 1, "model": {"bias": True, "lr": 1.0}, "extra": [1, 2]}
    second = {"seed": 1.0, "model": {"bias": 1, "lr": 1}, "extra": [1, 2]}  # == first, not alike
    for container in (first, second, first):
        assert config_yaml(container) == yaml.safe_dump(container, sort_keys=False)


def test_the_schema_module_and_the_registries_do_not_import_torch():
    """`python train.py --help`, `--cfg`, `--info` and a refused override load the schema only."""
    modules = "kernellab.config, kernellab.registry, kernellab.backends"
    code = f"import sys, {modules}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.parametrize(
    "override", ["model.bias=2", "model.stride=9223372036854775808", "trainer.steps=2147483648"]
)
def test_train_py_refuses_a_non_bool_or_an_overflowing_int_before_writing(tmp_path, override):
    from tests.helpers import run_cli

    proc = run_cli(override, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {override}: must") and proc.stderr.count("\n") == 1
    assert not list(tmp_path.iterdir()), "nothing written"


# (overrides, key named, words of the message): the channel checks, in one line each
CHANNEL_REFUSALS = [
    (("task.channels=rgb",), "task.channels", "drawn `stripes` picture"),
    (("task.channels=cmyk",), "task.channels", "gray, rgb"),
    (("task.target_kernel=[[[[1]],[[2,3]]]]",), "task.target_kernel", "(out, in, kh, kw)"),
    (("task.target_kernel=[[[1,2]]]",), "task.target_kernel", "(out, in, kh, kw)"),
    (("model.in_channels=3",), "model.in_channels", "image's 1 channel(s)"),
    (("model.in_channels=0",), "model.in_channels", "int >= 1"),
    (
        ("task.target_kernel=[[[[1,-1]]],[[[1,-1]]]]", "model.out_channels=1"),
        "task.target_kernel",
        "its shape is [2, 1, 1, 2] and the model would be (out 1, in 1)",
    ),
]


@pytest.mark.parametrize(("overrides", "key", "says"), CHANNEL_REFUSALS)
def test_channel_refusals_are_one_line_naming_both_shapes(make_cfg, overrides, key, says):
    with pytest.raises(ConfigError) as error:
        validate(make_cfg(*overrides))
    message = str(error.value)
    assert message.startswith(f"{key}=") and "\n" not in message and "must" in message, message
    assert says in message, message


def rgb_overrides(directory) -> list[str]:
    from tests.helpers import write_rgb_picture

    return [f"task.image={write_rgb_picture(directory)}", "task.channels=rgb"]


def test_rgb_channels_follow_the_photo_and_the_targets(make_cfg, tmp_path):
    import numpy as np
    from PIL import Image

    rgb = rgb_overrides(tmp_path)
    # no target image: the target kernel's (out, in); a matrix is one channel to one
    kernel = "task.target_kernel=[[[[1]],[[2]],[[3]]],[[[4]],[[5]],[[6]]]]"
    assert validate(make_cfg(*rgb, kernel)).channels == (2, 3)
    assert validate(make_cfg(*rgb, kernel)).kernel_shape == (2, 3, 1, 1)
    with pytest.raises(ConfigError, match=r"its shape is \[1, 2\] \(a matrix: out 1, in 1\)"):
        validate(make_cfg(*rgb))
    # a target image: as stored, gray one channel, colour three
    gray, colour = tmp_path / "gray.png", tmp_path / "colour.png"
    Image.fromarray(np.zeros((12, 14), np.uint8)).save(gray)
    Image.fromarray(np.zeros((12, 14, 3), np.uint8), mode="RGB").save(colour)
    common = (*rgb, "model.kernel_size=1")
    assert validate(make_cfg(*common, f"task.target_image={gray}")).channels == (1, 3)
    assert validate(make_cfg(*common, f"task.target_image={colour}")).channels == (3, 3)
    with pytest.raises(ConfigError, match=r"^model.out_channels=2: must be the target image's 3"):
        validate(make_cfg(*common, f"task.target_image={colour}", "model.out_channels=2"))
    # gray (the default) reads both in gray, as before channels
    gray_cfg = make_cfg(
        f"task.image={colour}", f"task.target_image={colour}", "model.kernel_size=1"
    )
    assert validate(gray_cfg).channels == (1, 1)


def test_a_one_to_one_channel_kernel_is_the_books_matrix(make_cfg):
    geometry = validate(make_cfg("task.target_kernel=[[[[-1,1]]]]"))
    assert geometry.target_kernel == [[-1.0, 1.0]] and geometry.channels == (1, 1)


def test_the_fused_step_is_refused_for_channels(make_cfg, tmp_path):
    from kernellab.checks import check

    kernel = "task.target_kernel=[[[[1]],[[2]],[[3]]]]"
    cfg = make_cfg(*rgb_overrides(tmp_path), kernel, "model.backend=fused")
    with pytest.raises(ConfigError, match=r"^model.backend=fused: trains one channel only.*torch"):
        check(cfg)
    assert check(make_cfg(*rgb_overrides(tmp_path), kernel)).backend == "torch"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("task.channels=rgb", "task.channels"),
        ("task.target_kernel=[[[[1]],[[2,3]]]]", "task.target_kernel"),
        ("model.in_channels=3", "model.in_channels"),
    ],
)
def test_train_py_refuses_channels_before_writing(tmp_path, override, key):
    from tests.helpers import run_cli

    proc = run_cli(override, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {key}=") and proc.stderr.count("\n") == 1
    assert not list(tmp_path.iterdir()), "nothing written"
