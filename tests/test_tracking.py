"""What a run writes to TensorBoard, read back with TensorBoard's own EventAccumulator."""

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from kernellab.artifacts import read_metrics
from kernellab.tracking import heatmap, read_scalars
from kernellab.train import train


def accumulator(run_dir) -> EventAccumulator:
    events = EventAccumulator(
        str(run_dir),
        size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0},
    )
    events.Reload()
    return events


def test_event_files_are_directly_in_the_run_dir(default_run):
    assert list(default_run.glob("events.out.tfevents.*"))
    assert not [p for p in default_run.iterdir() if p.is_dir() and p.name != ".hydra"]


def test_loss_and_kernel_curves_match_metrics(default_run):
    scalars = read_scalars(default_run)
    metrics = read_metrics(default_run)
    assert [step for step, _ in scalars["train/loss"]] == list(range(1, 21))
    assert scalars["train/loss"][-1][1] == pytest.approx(metrics["final_loss"], rel=1e-6)
    assert scalars["train/loss"][0][1] == pytest.approx(metrics["initial_loss"], rel=1e-6)
    assert scalars["kernel/w_0_0"][-1][1] == pytest.approx(metrics["weight"][0][0], rel=1e-6)
    assert scalars["kernel/w_0_1"][-1][1] == pytest.approx(metrics["weight"][0][1], rel=1e-6)
    assert scalars["kernel/bias"][-1][1] == pytest.approx(metrics["bias"], rel=1e-6, abs=1e-7)
    assert len(scalars["kernel/bias"]) == 20


def test_snapshots_images_config_and_hparams(default_run):
    events = accumulator(default_run)
    tags = events.Tags()
    assert [e.step for e in events.Histograms("kernel/weights")] == list(range(2, 21, 2))
    assert [e.step for e in events.Images("kernel/image")] == list(range(2, 21, 2))
    for tag in ("data/input", "data/target", "data/prediction"):
        assert tag in tags["images"]
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "lr: 0.01" in config_text and "kernel_size" in config_text
    plugin = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(plugin["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["optim.lr"].number_value == pytest.approx(0.01)
    assert hparams["task.target_kernel"].string_value == "[[-1.0, 1.0]]"
    assert hparams["optim"].string_value == "GradientDescent"
    assert "_hparams_/experiment" not in plugin  # TensorBoard infers it across runs


def test_log_every_and_big_kernels(make_cfg, tmp_path):
    cfg = make_cfg(
        "logger.log_every=5",
        "logger.snapshot_every=4",
        "model.kernel_size=[6,6]",
        "trainer.steps=12",
    )
    train(cfg, tmp_path)
    scalars = read_scalars(tmp_path)
    assert [step for step, _ in scalars["train/loss"]] == [5, 10, 12]  # and always the last
    assert not [tag for tag in scalars if tag.startswith("kernel/w_")]  # 36 > 25 elements
    histograms = accumulator(tmp_path).Histograms("kernel/weights")
    assert [h.step for h in histograms] == [4, 8, 12]
    assert histograms[-1].histogram_value.num == 36


def test_heatmap_colours():
    rgb = heatmap(torch.tensor([[-2.0, 0.0, 2.0]]))
    left, middle, right = (rgb[:, 0, 32 * i].tolist() for i in range(3))
    assert left == [0, 0, 1]  # most negative: blue
    assert middle == [1, 1, 1]  # zero: white
    assert right == [1, 0, 0]  # most positive: red
    assert rgb.shape == (3, 32, 96)


def test_big_images_are_averaged_down_before_colouring():
    values = torch.zeros(2048, 1024)
    values[:, :512] = -1.0  # left half blue, right half white
    rgb = heatmap(values)
    assert rgb.shape == (3, 512, 256)
    assert rgb[:, 0, 0].tolist() == [0, 0, 1] and rgb[:, 0, -1].tolist() == [1, 1, 1]


def test_snapshots_survive_huge_finite_kernels(make_cfg, tmp_path):
    # lr=0.1 with a [1,3] kernel grows the kernel to ~1e17 without ever becoming inf
    result = train(
        make_cfg(
            "optim.lr=0.1",
            "model.kernel_size=[1,3]",
            "trainer.steps=20",
            "trainer.divergence_threshold=null",
        ),
        tmp_path,
    )
    assert result.status == "completed" and max(abs(w) for w in result.weight[0]) > 1e6
    histograms = accumulator(tmp_path).Histograms("kernel/weights")
    assert histograms[-1].step == 20 and histograms[-1].histogram_value.num == 3
