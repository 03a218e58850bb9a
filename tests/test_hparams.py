"""kernellab.hparams: a run's HParams session and the experiment summary its sweep shares, read
back with TensorBoard's own reader or taken as the protos TensorBoard gets."""

import pytest
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from kernellab.hparams import hparam_infos, hparam_value, hparams_summaries, hyperparameters
from tests.helpers import accumulator


def test_hparams_session_and_experiment(default_run):
    plugin = accumulator(default_run).PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(plugin["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["optim.lr"].number_value == pytest.approx(0.01)
    assert hparams["task.target_kernel"].string_value == "[[-1.0, 1.0]]"
    assert hparams["optim"].string_value == "GradientDescent"
    assert hparams["model.kernel_size"].string_value == "[1, 2]"  # resolved: null in the config
    assert hparams["logger.snapshot_every"].number_value == 2  # resolved: ⌈20 / 10⌉
    assert hparams["model.bias"].WhichOneof("kind") == "bool_value"
    assert hparams["model.bias"].bool_value is True
    assert hparams["trainer.cuda_graph"].bool_value is False
    assert "trainer.resume" not in hparams  # null: left out

    data = plugin_data_pb2.HParamsPluginData.FromString(plugin["_hparams_/experiment"])
    experiment = data.experiment
    metrics = [(m.name.group, m.name.tag) for m in experiment.metric_infos]
    assert metrics == [("", "train/loss"), ("", "kernel/error"), ("", "kernel/bias")]
    infos = {info.name: info for info in experiment.hparam_infos}
    assert set(hparams) <= set(infos)
    assert infos["model.bias"].type == api_pb2.DATA_TYPE_BOOL
    assert list(infos["model.bias"].domain_discrete) == [False, True]
    assert infos["optim.lr"].type == api_pb2.DATA_TYPE_FLOAT64
    assert infos["model.kernel_size"].type == api_pb2.DATA_TYPE_STRING
    assert not [name for name, info in infos.items() if info.differs]  # train() alone: no sweep


def test_experiment_summary_is_the_same_for_every_job_of_a_sweep(make_cfg):
    """TensorBoard shows one job's summary: it must not depend on the job's values."""
    swept = ("model.kernel_size", "optim.lr", "model.padding", "trainer.num_threads")
    jobs = [
        ("optim.lr=0.001", "model.kernel_size=[1,2]", "model.padding=0", "trainer.num_threads=1"),
        (
            "optim.lr=0.1",
            "model.kernel_size=[2,3]",
            "model.padding=[1,1]",
            "trainer.num_threads=auto",
        ),
    ]
    infos = []
    for overrides in jobs:
        cfg = make_cfg(*overrides)
        hparams = hyperparameters(cfg, list(cfg.model.kernel_size))
        infos.append([info.SerializeToString() for info in hparam_infos(hparams, swept)])
    assert infos[0] == infos[1]
    differs = [info for info in hparam_infos(hparams, swept) if info.differs]
    assert sorted(info.name for info in differs) == sorted(swept)


def test_optimizer_arguments_are_listed_unless_the_optimizer_is_swept(make_cfg):
    hparams = hyperparameters(make_cfg("optim=momentum"))
    assert hparams["optim.momentum"] == pytest.approx(0.9)
    assert "optim.momentum" in {info.name for info in hparam_infos(hparams, ["optim.lr"])}
    # optim=sgd,momentum: only the momentum job has the key, so no job lists it
    assert "optim.momentum" not in {info.name for info in hparam_infos(hparams, ["optim"])}


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (True, "bool_value", True),
        (3, "number_value", 3.0),
        (0.5, "number_value", 0.5),
        ("[1, 2]", "string_value", "[1, 2]"),
    ],
)
def test_a_value_keeps_its_kind_and_a_bool_is_not_a_number(value, kind, expected):
    proto = hparam_value(value)
    assert proto.WhichOneof("kind") == kind
    assert getattr(proto, kind) == expected


def test_jobs_of_a_sweep_share_one_experiment_summary_and_each_has_its_own_session():
    swept = ["optim.lr"]
    first = hparams_summaries({"optim.lr": 0.1, "model.bias": True}, swept)
    second = hparams_summaries({"optim.lr": 0.3, "model.bias": True}, swept)
    assert first[0].SerializeToString() == second[0].SerializeToString()
    sessions = [
        plugin_data_pb2.HParamsPluginData.FromString(
            summaries[1].value[0].metadata.plugin_data.content
        )
        for summaries in (first, second)
    ]
    assert [s.session_start_info.hparams["optim.lr"].number_value for s in sessions] == [0.1, 0.3]
