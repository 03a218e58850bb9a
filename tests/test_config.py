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
