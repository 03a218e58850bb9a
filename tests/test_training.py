"""train(cfg) end to end, in-process: the book's results and the files a run leaves."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (import cost outside timings)

from kernellab.checkpoint import CHECKPOINT_FILE
from kernellab.data import input_image
from kernellab.errors import ConfigError, UserError
from kernellab.ops import corr2d_reference
from kernellab.registry import NAMED_KERNELS
from kernellab.rundir import METRICS_FILE
from kernellab.tracking import read_scalars
from kernellab.training import train

ROOT = Path(__file__).resolve().parents[1]
EDGE = torch.tensor([[-1.0, 1.0]])


def notebook_run(seed: int, steps: int, lr: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """The notebook's cell 6, verbatim in substance: loop corr2d, manual `-= lr * grad`."""
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    Y = corr2d_reference(X, EDGE)
    torch.manual_seed(seed)
    weight = torch.randn(1, 2, requires_grad=True)
    bias = torch.randn(1, requires_grad=True)
    for _ in range(steps):
        loss = ((corr2d_reference(X, weight) + bias - Y) ** 2).sum()
        loss.backward()
        weight.data -= lr * weight.grad
        bias.data -= lr * bias.grad
        weight.grad.fill_(0)
        bias.grad.fill_(0)
    return weight.detach(), bias.detach()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_default_run_learns_the_edge_kernel(make_cfg, tmp_path, seed):
    result = train(make_cfg(f"seed={seed}"), tmp_path)
    assert result.status == "completed" and result.steps_completed == 20
    assert result.final_loss < 0.01 * result.initial_loss
    assert torch.allclose(torch.tensor(result.weight), EDGE, atol=0.25)
    assert abs(result.bias) < 0.25


def test_100_steps_converge_to_1e3(make_cfg, tmp_path):
    result = train(make_cfg("trainer.steps=100"), tmp_path)
    assert torch.allclose(torch.tensor(result.weight), EDGE, atol=1e-3)


@pytest.mark.parametrize("backend", ["torch", "corr2d", "loop"])
def test_matches_the_notebooks_loop(make_cfg, tmp_path, backend):
    weight, bias = notebook_run(seed=5, steps=20)
    result = train(make_cfg("seed=5", f"model.backend={backend}"), tmp_path)
    torch.testing.assert_close(torch.tensor(result.weight), weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.tensor([result.bias]), bias, rtol=1e-5, atol=1e-6)


def test_horizontal_learns_the_transposed_kernel(make_cfg, tmp_path):
    result = train(make_cfg("task.orientation=horizontal", "trainer.steps=100"), tmp_path)
    assert result.output_shape == [7, 6]
    assert torch.allclose(torch.tensor(result.weight), EDGE.t(), atol=1e-3)


def test_same_seed_same_numbers_other_seed_other_init(make_cfg, tmp_path):
    def numbers(seed, name):
        (tmp_path / name).mkdir(exist_ok=True)
        result = train(make_cfg(f"seed={seed}"), tmp_path / name)
        return result.initial_loss, result.final_loss, result.weight, result.bias

    three = numbers(3, "a")
    assert three == numbers(3, "b")
    assert three[0] != numbers(4, "c")[0]


def test_padding_stride_larger_kernel_random_image(make_cfg, tmp_path):
    cfg = make_cfg(
        "model.kernel_size=[3,3]",
        "model.padding=1",
        "model.stride=2",
        "optim.lr=0.03",
        "trainer.steps=200",
        "task.image=random",
    )
    result = train(cfg, tmp_path)
    assert result.output_shape == [3, 4]  # ⌊(6−3+2+2)/2⌋, ⌊(8−3+2+2)/2⌋
    assert result.final_loss < 0.01 * result.initial_loss
    # [[-1, 1]] embedded at the centre of a 3x3 kernel, rounding toward top-left; 200 steps
    # of plain descent on 12 equations in 10 unknowns get close but not to 1e-3.
    target = torch.tensor([[0, 0, 0], [-1, 1, 0], [0, 0, 0]], dtype=torch.float32)
    assert torch.allclose(torch.tensor(result.weight), target, atol=0.2)


@pytest.mark.parametrize("optim", ["sgd", "adam"])
def test_named_kernel_with_each_optimizer(make_cfg, tmp_path, optim):
    lr = {"sgd": 0.002, "adam": 0.05}[optim]
    cfg = make_cfg(
        "task.target_kernel=sobel_x",
        "task.image=random",
        "task.height=16",
        "task.width=16",
        f"optim={optim}",
        f"optim.lr={lr}",
        "trainer.steps=300",
        "model.bias=false",
    )
    result = train(cfg, tmp_path)
    assert result.bias is None
    assert result.final_loss < 0.01 * result.initial_loss


def test_run_dir_holds_metrics_and_checkpoint(make_cfg, tmp_path):
    result = train(make_cfg(), tmp_path)
    metrics = json.loads((tmp_path / METRICS_FILE).read_text())
    assert metrics["status"] == "completed"
    assert metrics["final_loss"] == result.final_loss
    assert metrics["weight"] == result.weight
    assert metrics["output_shape"] == [6, 7]
    assert metrics["device"] == "cpu"
    assert metrics["steps_per_s"] == pytest.approx(20 / metrics["wall_time_s"])
    assert metrics["versions"]["torch"] == torch.__version__
    checkpoint = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert checkpoint["step"] == 20
    assert checkpoint["model"]["weight"][0, 0].tolist() == result.weight


def test_divergence_stops_at_the_first_non_finite_step(make_cfg, tmp_path):
    cfg = make_cfg("optim.lr=10", "trainer.steps=200", "trainer.divergence_threshold=null")
    result = train(cfg, tmp_path)
    assert result.status == "diverged" and result.objective() == math.inf
    step = result.diverged_at_step
    assert 1 < step < 200 and result.steps_completed == step - 1
    metrics = json.loads((tmp_path / METRICS_FILE).read_text())  # strict JSON: no NaN/Infinity
    assert metrics["status"] == "diverged" and metrics["diverged_at_step"] == step
    assert metrics["final_loss"] is None
    losses = read_scalars(tmp_path)["train/loss"]
    assert [s for s, _ in losses] == list(range(1, step))  # everything before it stays readable
    assert all(math.isfinite(v) for _, v in losses)
    assert not (tmp_path / CHECKPOINT_FILE).exists()


def test_a_finite_blow_up_past_the_threshold_is_divergence(make_cfg, tmp_path):
    """lr 0.1 on the book's task grows the loss by orders of magnitude while it stays finite."""
    free = train(make_cfg("optim.lr=0.1", "trainer.divergence_threshold=null"), tmp_path / "a")
    assert free.diverged_at_step is None or free.diverged_at_step > 10  # finite a while: huge
    losses = [v for _, v in read_scalars(tmp_path / "a")["train/loss"]]
    expected = next(i for i, v in enumerate(losses, 1) if v > 1e6 * losses[0])
    result = train(make_cfg("optim.lr=0.1"), tmp_path / "b")
    assert result.status == "diverged" and result.diverged_at_step == expected
    assert [v for _, v in read_scalars(tmp_path / "b")["train/loss"]] == losses[: expected - 1]
    assert result.objective() == result.objective("kernel_error") == math.inf


def test_kernel_error_is_the_distance_to_the_embedded_target(make_cfg, tmp_path):
    result = train(make_cfg("model.kernel_size=[1,3]", "trainer.steps=5"), tmp_path)
    target = torch.tensor([[-1.0, 1.0, 0.0]])  # [[-1, 1]] embedded toward the top-left
    expected = torch.linalg.norm(torch.tensor(result.weight) - target).item()
    assert result.kernel_error == pytest.approx(expected, rel=1e-6)
    assert result.objective("kernel_error") == result.kernel_error
    errors = read_scalars(tmp_path)["kernel/error"]
    assert [s for s, _ in errors] == list(range(1, 6))
    assert errors[-1][1] == pytest.approx(expected, rel=1e-6)


def test_same_config_same_tensorboard_scalars(make_cfg, tmp_path):
    train(make_cfg("seed=11"), tmp_path / "a")
    train(make_cfg("seed=11"), tmp_path / "b")
    assert read_scalars(tmp_path / "a") == read_scalars(tmp_path / "b")


def test_resume_extends_a_finished_run(make_cfg, tmp_path):
    train(make_cfg("trainer.steps=30"), tmp_path / "straight")
    train(make_cfg("trainer.steps=10"), tmp_path / "run")
    result = train(
        make_cfg("trainer.steps=30", f"trainer.resume={tmp_path / 'run'}"), tmp_path / "run"
    )
    straight = json.loads((tmp_path / "straight" / METRICS_FILE).read_text())
    assert result.steps_completed == 30
    assert result.weight == straight["weight"] and result.final_loss == straight["final_loss"]
    assert result.initial_loss == straight["initial_loss"]
    assert [s for s, _ in read_scalars(tmp_path / "run")["train/loss"]] == list(range(1, 31))


def test_resume_refuses_another_model_shape_or_fewer_steps(make_cfg, tmp_path):
    train(make_cfg("trainer.steps=10"), tmp_path)
    with pytest.raises(ConfigError, match=r"trainer.resume=.*its model has kernel \[1, 2\]"):
        train(make_cfg("model.kernel_size=[1,3]", f"trainer.resume={tmp_path}"), tmp_path)
    with pytest.raises(ConfigError, match=r"trainer.resume=.*bias"):
        train(make_cfg("model.bias=false", f"trainer.resume={tmp_path}"), tmp_path)
    with pytest.raises(ConfigError, match=r"trainer.steps=5: must be >= the checkpoint's step 10"):
        train(make_cfg("trainer.steps=5", f"trainer.resume={tmp_path}"), tmp_path)


def test_a_dir_holding_a_run_is_refused_unless_resumed(make_cfg, tmp_path):
    train(make_cfg("trainer.steps=3"), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(UserError, match=r"already holds a run .*trainer.resume="):
        train(make_cfg("trainer.steps=3"), tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_auto_resume_continues_what_the_dir_holds(make_cfg, tmp_path):
    """trainer.resume=auto: a new run in an empty dir; from the checkpoint of a run that didn't
    finish (killed: no metrics.json); started over where a run left no checkpoint; and a
    finished run is not trained again."""
    whole = train(make_cfg("trainer.steps=20"), tmp_path / "whole")
    auto = ("trainer.steps=20", "trainer.resume=auto")
    fresh = train(make_cfg(*auto), tmp_path / "fresh")
    assert fresh.weight == whole.weight and fresh.steps_completed == 20

    killed = tmp_path / "killed"
    train(make_cfg("trainer.steps=8"), killed)
    (killed / METRICS_FILE).unlink()  # as if killed after its checkpoint at step 8
    resumed = train(make_cfg(*auto), killed)
    assert resumed.weight == whole.weight and resumed.final_loss == whole.final_loss
    assert [s for s, _ in read_scalars(killed)["train/loss"]] == list(range(1, 21))

    early = tmp_path / "early"
    train(make_cfg("trainer.steps=8"), early)
    (early / METRICS_FILE).unlink()
    (early / CHECKPOINT_FILE).unlink()  # killed before its first checkpoint: only events left
    restarted = train(make_cfg(*auto), early)
    assert restarted.weight == whole.weight
    assert len(list(early.glob("events.out.tfevents.*"))) == 1  # the first attempt's are gone
    assert [s for s, _ in read_scalars(early)["train/loss"]] == list(range(1, 21))

    before = {p.name: p.read_bytes() for p in killed.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match=r"holds a finished run \(completed\): nothing to do"):
        train(make_cfg(*auto), killed)
    assert {p.name: p.read_bytes() for p in killed.iterdir() if p.is_file()} == before


def test_auto_resume_of_a_finished_run_asked_for_more_steps_continues_it(make_cfg, tmp_path):
    """What `trainer.resume=<its dir>` does with more steps: a finished run is extended."""
    whole = train(make_cfg("trainer.steps=12"), tmp_path / "whole")
    run = tmp_path / "run"
    train(make_cfg("trainer.steps=5"), run)
    extended = train(make_cfg("trainer.steps=12", "trainer.resume=auto"), run)
    assert extended.steps_completed == 12 and extended.weight == whole.weight
    assert [s for s, _ in read_scalars(run)["train/loss"]] == list(range(1, 13))
    with pytest.raises(ConfigError, match=r"holds a finished run \(completed\): nothing to do"):
        train(make_cfg("trainer.steps=12", "trainer.resume=auto"), run)


def test_more_threads_than_cores_are_clamped_with_a_warning(make_cfg, tmp_path, caplog):
    from kernellab.runtime import available_cores

    result = train(make_cfg("trainer.num_threads=100000", "trainer.steps=2"), tmp_path)
    assert result.num_threads == available_cores()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("trainer.num_threads=100000: more than the ")


def test_a_resume_into_another_run_dir_is_refused_naming_both(make_cfg, tmp_path):
    train(make_cfg("trainer.steps=2"), tmp_path / "run")
    for named in (tmp_path / "run", tmp_path / "run" / CHECKPOINT_FILE):
        with pytest.raises(ConfigError) as error:
            train(make_cfg("trainer.steps=4", f"trainer.resume={named}"), tmp_path / "other")
        message = str(error.value)
        assert message.startswith(
            f"trainer.resume={named}: continues the run in {tmp_path / 'run'}"
        )
        assert f"the run dir is {tmp_path / 'other'}" in message
    assert not (tmp_path / "other").exists()


def test_a_periodic_checkpoint_then_a_kill_resumes_without_repeated_steps(make_cfg, tmp_path):
    """A checkpoint taken mid-run, events logged after it, then the process dies: the resume
    drops the later events from the file itself, so every reader sees each step once."""
    cfg = make_cfg("trainer.steps=40", "trainer.checkpoint_every_s=1e-9")  # after every step
    train(cfg, tmp_path / "whole")
    run = tmp_path / "killed"
    train(make_cfg("trainer.steps=25"), run)  # as if killed after step 25 ...
    stale = torch.load(run / CHECKPOINT_FILE, weights_only=True)
    train(make_cfg("trainer.steps=25", f"trainer.resume={run}"), run)  # (lock-free re-entry)
    rewound = train(make_cfg("trainer.steps=10"), tmp_path / "rewind")  # ... with step 10's state
    torch.save(
        torch.load(tmp_path / "rewind" / CHECKPOINT_FILE, weights_only=True), run / CHECKPOINT_FILE
    )
    assert stale["step"] == 25 and rewound.steps_completed == 10
    resumed = train(make_cfg("trainer.steps=40", f"trainer.resume={run}"), run)
    whole = read_scalars(tmp_path / "whole")["train/loss"]
    steps = [s for s, _ in raw_scalar_steps(run, "train/loss")]
    assert steps == list(range(1, 41))  # read from the records themselves: no purge applied
    assert resumed.final_loss == whole[-1][1]


def raw_scalar_steps(run_dir, tag):
    """(step, value) of every `tag` event, parsed from the TFRecord framing directly."""
    import struct

    from tensorboard.compat.proto.event_pb2 import Event

    found = []
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            found += [(event.step, v.simple_value) for v in event.summary.value if v.tag == tag]
    return found


def test_cuda_graph_needs_cuda(make_cfg, tmp_path):
    with pytest.raises(
        ConfigError, match=r"trainer\.cuda_graph=true: needs a CUDA device, not cpu"
    ):
        train(make_cfg("trainer.cuda_graph=true"), tmp_path)


def test_experiment_sobel_x_learns_sobel(make_cfg, tmp_path):
    result = train(make_cfg("experiment=sobel_x"), tmp_path)
    sobel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    assert torch.allclose(torch.tensor(result.weight), sobel, atol=1e-3)


def make_blur_pair_script():
    """scripts/make_blur_pair.py as a module: the blur_pair experiment's truth is its kernel."""
    import importlib.util

    path = ROOT / "scripts" / "make_blur_pair.py"
    spec = importlib.util.spec_from_file_location("make_blur_pair", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # about 10 s: 2,000 Adam steps on the 512x600 photo
def test_experiment_blur_pair_recovers_the_scripts_gaussian(make_cfg, tmp_path):
    script = make_blur_pair_script()
    kernel = script.GAUSSIAN_5X5
    assert kernel.sum() == pytest.approx(1) and kernel[2, 2] == kernel.max()
    assert np.allclose(kernel, kernel.T) and np.allclose(kernel, kernel[::-1])
    # the bundled target is what the script makes from the bundled photo
    made = script.make_blur_pair(out=tmp_path / "blurred.png")
    bundled = ROOT / "examples" / "grace_hopper_blur5.png"
    assert np.array_equal(np.asarray(Image.open(made)), np.asarray(Image.open(bundled)))
    assert Image.open(bundled).mode == "I;16"
    result = train(make_cfg("experiment=blur_pair", f"task.target_image={made}"), tmp_path / "run")
    assert result.status == "completed"
    assert np.abs(np.asarray(result.weight) - kernel).max() < 0.01
    # its ground truth, the named gaussian_5x5, is the script's kernel
    assert np.allclose(NAMED_KERNELS["gaussian_5x5"], kernel, atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("kernel", "edge"),
    [("[[-1,1]]", -torch.eye(8, 7)), ("[[-1],[1]]", torch.diag(torch.ones(7), 1)[:7])],
    ids=["edge", "transposed"],
)
def test_experiment_diagonal_edge_finds_the_edge_with_both_detectors(
    make_cfg, tmp_path, kernel, edge
):
    # the book's exercise: [[-1, 1]] marks the diagonal with -1, its transpose just above with +1
    X = input_image(8, 8, [2, 6], "diagonal", "vertical")
    assert torch.equal(X, torch.ones(8, 8).tril())
    K = torch.tensor(json.loads(kernel), dtype=torch.float32)
    assert torch.equal(corr2d_reference(X, K), edge)
    result = train(make_cfg("experiment=diagonal_edge", f"task.target_kernel={kernel}"), tmp_path)
    assert result.kernel_error < 0.01 and abs(result.bias) < 0.01


def test_second_derivative_kernels_differentiate_twice(make_cfg, tmp_path):
    # d²/dx² x² = 2 and the Laplacian of x² + y² is 4, exactly on a grid
    i, j = torch.meshgrid(torch.arange(6.0), torch.arange(7.0), indexing="ij")
    second = torch.tensor(NAMED_KERNELS["second_derivative_x"])
    assert torch.equal(corr2d_reference(j**2, second), torch.full((6, 5), 2.0))
    assert torch.equal(corr2d_reference(i**2, second.t()), torch.full((4, 7), 2.0))
    laplacian = torch.tensor(NAMED_KERNELS["laplacian"])
    assert torch.equal(corr2d_reference(i**2 + j**2, laplacian), torch.full((4, 5), 4.0))
    result = train(make_cfg("experiment=laplacian"), tmp_path)
    assert result.kernel_error < 0.01


@pytest.mark.cuda
def test_cuda_matches_cpu(make_cfg, tmp_path):
    cpu = train(make_cfg("trainer.steps=100"), tmp_path / "cpu")
    gpu = train(make_cfg("trainer.steps=100", "trainer.device=cuda"), tmp_path / "gpu")
    assert gpu.device.startswith("cuda")
    torch.testing.assert_close(
        torch.tensor(gpu.weight), torch.tensor(cpu.weight), rtol=1e-4, atol=1e-5
    )
    assert gpu.final_loss == pytest.approx(cpu.final_loss, rel=1e-3, abs=1e-7)


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["torch", "corr2d"])
def test_cuda_graph_matches_eager(make_cfg, tmp_path, backend):
    args = ("trainer.steps=300", "trainer.device=cuda", f"model.backend={backend}")
    eager = train(make_cfg(*args), tmp_path / "eager")
    graphed = train(make_cfg(*args, "trainer.cuda_graph=true"), tmp_path / "graph")
    assert graphed.steps_completed == 300
    torch.testing.assert_close(
        torch.tensor(graphed.weight), torch.tensor(eager.weight), rtol=1e-5, atol=1e-6
    )
    assert [s for s, _ in read_scalars(tmp_path / "graph")["train/loss"]] == list(range(1, 301))


@pytest.mark.cuda
@pytest.mark.parametrize("graph", ["false", "true"])
def test_cuda_loop_does_not_sync_every_step(make_cfg, tmp_path, graph):
    """Synchronising calls (.item(), .cpu(), ...) happen per flush, not per step."""
    import warnings

    steps = 3000
    cfg = make_cfg(f"trainer.steps={steps}", "trainer.device=cuda", f"trainer.cuda_graph={graph}")
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(cfg, tmp_path)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) < steps / 20, len(syncs)


def test_cuda_graph_refuses_torch_optim(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="optim=sgd only"):
        train(make_cfg("trainer.device=cuda", "trainer.cuda_graph=true", "optim=adam"), tmp_path)


def test_resuming_a_finished_run_changes_nothing(make_cfg, tmp_path):
    first = train(make_cfg("trainer.steps=10"), tmp_path)
    again = train(make_cfg("trainer.steps=10", f"trainer.resume={tmp_path}"), tmp_path)
    assert (again.steps_completed, again.final_loss, again.weight) == (
        first.steps_completed,
        first.final_loss,
        first.weight,
    )


def test_divergence_at_the_first_resumed_step_still_writes_strict_json(make_cfg, tmp_path):
    # a kernel near float32's max makes the first loss and the update overflow: no finite row
    train(make_cfg("trainer.steps=1"), tmp_path)
    checkpoint = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    checkpoint["model"]["weight"].fill_(3e38)
    torch.save(checkpoint, tmp_path / CHECKPOINT_FILE)
    result = train(make_cfg("trainer.steps=3", f"trainer.resume={tmp_path}"), tmp_path)
    assert result.status == "diverged" and result.diverged_at_step == 2
    metrics = json.loads((tmp_path / METRICS_FILE).read_text())
    assert metrics["status"] == "diverged" and metrics["final_loss"] is None


def channel_overrides(directory: Path, *more: str) -> list[str]:
    """An RGB noise photo and TRUTH_2X3: a layer of (out 2, in 3), its target made from it."""
    from tests.helpers import TRUTH_2X3, kernel_override, write_rgb_picture

    photo = write_rgb_picture(directory)
    return [f"task.image={photo}", "task.channels=rgb", kernel_override(TRUTH_2X3), *more]


def test_a_run_with_channels_learns_its_kernel(make_cfg, tmp_path):
    from tests.helpers import TRUTH_2X3

    learn = ("model.bias=false", "model.init=zeros", "optim=adam", "optim.lr=0.05")
    result = train(make_cfg(*channel_overrides(tmp_path, *learn, "trainer.steps=400")), tmp_path)
    assert result.status == "completed"
    weight = np.asarray(result.weight)
    assert weight.shape == (2, 3, 2, 2)  # (out, in, kh, kw)
    assert np.abs(weight - np.asarray(TRUTH_2X3)).max() < 0.01


def test_a_run_with_channels_leaves_its_kernel_everywhere_and_resumes(make_cfg, tmp_path):
    from tests.helpers import TRUTH_2X3

    overrides = channel_overrides(tmp_path, "optim=adam", "optim.lr=0.05", "trainer.steps=6")
    result = train(make_cfg(*overrides), tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / METRICS_FILE).read_text())
    assert metrics["weight"] == result.weight and np.shape(result.weight) == (2, 3, 2, 2)
    assert metrics["bias"] == result.bias and len(result.bias) == 2  # one per output channel
    # kernel_error: the Frobenius distance over the whole tensor
    distance = np.linalg.norm(np.asarray(result.weight) - TRUTH_2X3)
    assert result.kernel_error == pytest.approx(distance, rel=1e-5)
    checkpoint = torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)
    assert checkpoint["model"]["weight"].tolist() == result.weight
    assert checkpoint["model"]["bias"].tolist() == result.bias
    scalars = read_scalars(tmp_path / "run")
    assert scalars["kernel/w_1_2_0_1"][-1][1] == pytest.approx(result.weight[1][2][0][1])
    assert scalars["kernel/target_1_2_0_1"][0][1] == pytest.approx(TRUTH_2X3[1][2][0][1])
    assert scalars["kernel/bias_1"][-1][1] == pytest.approx(result.bias[1])
    # fewer steps, then resumed to the same number: the same numbers as straight through
    train(make_cfg(*overrides[:-1], "trainer.steps=3"), tmp_path / "half")
    resumed = train(make_cfg(*overrides, f"trainer.resume={tmp_path / 'half'}"), tmp_path / "half")
    assert resumed.weight == result.weight and resumed.final_loss == result.final_loss


def test_resume_refuses_other_channels(make_cfg, tmp_path):
    overrides = channel_overrides(tmp_path, "trainer.steps=2")
    train(make_cfg(*overrides), tmp_path / "run")
    one = ("task.target_kernel=[[[[1,1]],[[1,1]],[[1,1]]]]",)
    with pytest.raises(
        ConfigError, match=r"channels \[2, 3\]; this config has .*channels \[1, 3\]"
    ):
        train(
            make_cfg(*overrides[:2], *one, f"trainer.resume={tmp_path / 'run'}"), tmp_path / "run"
        )


@pytest.mark.parametrize("backend", ["corr2d", "loop"])
def test_the_reference_backends_train_channels_as_torch_does(make_cfg, tmp_path, backend):
    overrides = channel_overrides(tmp_path, "optim=adam", "optim.lr=0.05", "trainer.steps=5")
    ours = train(make_cfg(*overrides, f"model.backend={backend}"), tmp_path / backend)
    reference = train(make_cfg(*overrides, "model.backend=torch"), tmp_path / "torch")
    torch.testing.assert_close(torch.tensor(ours.weight), torch.tensor(reference.weight))
    assert ours.final_loss == pytest.approx(reference.final_loss, rel=1e-5)


def make_gray_pair_script():
    """scripts/make_gray_pair.py as a module."""
    import importlib.util

    path = ROOT / "scripts" / "make_gray_pair.py"
    spec = importlib.util.spec_from_file_location("make_gray_pair", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # about 10 s: 500 Adam steps on the 512x600 photo's three channels
def test_experiment_rgb_to_gray_recovers_pillows_itu_r_601_weights(make_cfg, tmp_path):
    made = make_gray_pair_script().make_gray_pair(out=tmp_path / "gray.png")
    bundled = ROOT / "examples" / "grace_hopper_gray.png"
    assert np.array_equal(np.asarray(Image.open(made)), np.asarray(Image.open(bundled)))
    # the target is Pillow's convert("L") exactly: L stored as L * 257 reads back as L / 255
    with Image.open(ROOT / "examples" / "grace_hopper.jpg") as photo:
        luma = np.asarray(photo.convert("L"), dtype=np.uint16)
    assert np.array_equal(np.asarray(Image.open(bundled)), luma * 257)
    # one thread: a 1x1 F.conv2d on two threads of a busy machine ran 50x slower
    cfg = make_cfg("experiment=rgb_to_gray", f"task.target_image={made}", "trainer.num_threads=1")
    result = train(cfg, tmp_path / "run")
    # Pillow's documentation: L = R * 299/1000 + G * 587/1000 + B * 114/1000
    pillow = np.array([0.299, 0.587, 0.114])
    learned = np.asarray(result.weight)
    assert learned.shape == (1, 3, 1, 1) and result.bias is None
    assert np.abs(learned.flatten() - pillow).max() < 0.01


def test_a_gray_picture_to_two_output_channels_and_horizontal_transposes_each_map(
    make_cfg, tmp_path
):
    kernels = "task.target_kernel=[[[[-1,1]]],[[[1,-1]]]]"  # (2, 1, 1, 2): an edge each way
    learn = ("task.image=random", "model.bias=false", "optim=adam", "optim.lr=0.1")
    result = train(make_cfg(kernels, *learn, "trainer.steps=300"), tmp_path / "v")
    assert np.shape(result.weight) == (2, 1, 1, 2)
    assert np.allclose(result.weight, [[[[-1, 1]]], [[[1, -1]]]], atol=0.01)
    flipped = make_cfg(kernels, *learn, "task.orientation=horizontal", "trainer.steps=300")
    result = train(flipped, tmp_path / "h")
    assert np.allclose(result.weight, [[[[-1], [1]]], [[[1], [-1]]]], atol=0.01)
