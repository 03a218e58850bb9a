"""The HParams dashboard's summaries of a run: its hyperparameters, its session and the
experiment summary every job of its sweep shares.

The experiment summary must be the same in every job of a sweep (TensorBoard reads one run's,
"arbitrarily the first"), so its hyperparameters and their types come from the config schema and
the sweep's swept keys, never from this run's values, and its metrics are the fixed
`HPARAMS_METRICS`. It names the metrics with group "" (the session's own run), which also works
when TensorBoard is pointed at one run dir (a run named "."), where TensorBoard's own inference
finds no metric values. kernellab.run_log writes a run's (`hparams_summaries`) at its start;
kernellab.group_runs writes a study group's with `hparam_value` and `hparams_summary`.
"""

from __future__ import annotations

import functools
import time
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields, is_dataclass
from typing import Any, Union

from google.protobuf import struct_pb2
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

from kernellab.console import print_interval
from kernellab.tracking import BIAS_TAG, ERROR_TAG, LOSS_TAG, snapshot_interval

# The HParams metric columns, the same for every run (a per-element list would differ between a
# [1,2] and a [1,3] job, and TensorBoard shows one run's list). A run without a bias leaves the
# `kernel/bias` cell empty.
HPARAMS_METRICS = (LOSS_TAG, ERROR_TAG, BIAS_TAG)


_KIND_TYPES = {
    "bool": api_pb2.DATA_TYPE_BOOL,
    "number": api_pb2.DATA_TYPE_FLOAT64,
    "string": api_pb2.DATA_TYPE_STRING,
}


def hyperparameters(
    cfg: Any,
    kernel_size: Sequence[int] | None = None,
    target_kernel: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The run's config as flat HParams, as the run resolved it.

    `model.kernel_size` is the size used (`kernel_size`, e.g. "[1, 2]" also when the config says
    null), a null `task.target_kernel` the kernel it stands for (`target_kernel`: the book's; none
    beside a target image), `logger.snapshot_every` and `trainer.print_every` the intervals used; other nulls
    (`trainer.resume`) are left out. The optimizer is named by its class. Each value has the
    type the schema gives its key (`hparam_kinds`): booleans stay booleans, numbers numbers, and
    anything else is a string, lists as "[1, 2]". `cfg`: the config, or the dict
    `OmegaConf.to_container(cfg, resolve=True)` made of it.
    """
    from omegaconf import OmegaConf

    flat: dict[str, Any] = {}

    def visit(node: Any, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                visit(value, f"{prefix}{key}.")
            elif key == "_target_":
                flat[prefix.rstrip(".")] = value.rsplit(".", 1)[-1]
            elif not key.startswith("_"):
                flat[prefix + key] = value

    visit(cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True), "")
    steps = flat["trainer.steps"]
    if kernel_size is not None:
        flat["model.kernel_size"] = list(kernel_size)
    if flat.get("task.target_kernel") is None and target_kernel is not None:
        flat["task.target_kernel"] = [list(row) for row in target_kernel]
    flat["logger.snapshot_every"] = snapshot_interval(steps, flat["logger.snapshot_every"])
    flat["trainer.print_every"] = flat["trainer.print_every"] or print_interval(steps)
    kinds = hparam_kinds()
    return {
        name: _as_kind(value, kinds.get(name) or _kind_of(value))
        for name, value in flat.items()
        if value is not None
    }


@functools.lru_cache(maxsize=1)
def hparam_kinds() -> dict[str, str]:
    """HParam name -> `bool`, `number` or `string`, from the config schema's field types.

    Keys typed Any in the schema (kernel size, padding, ...) are strings: `0` and `[1, 1]` must
    be one type across the jobs of a sweep.
    """
    from kernellab.config import GRADIENT_DESCENT, Config

    kinds = {"optim": "string"}
    kinds |= {f"optim.{k}": _kind_of(v) for k, v in GRADIENT_DESCENT.items() if k[0] != "_"}

    def visit(schema: type, prefix: str) -> None:
        hints = typing.get_type_hints(schema)
        for f in fields(schema):
            kind = hints[f.name]
            if is_dataclass(kind):
                visit(kind, f"{prefix}{f.name}.")
            elif f.name != "optim":
                union = isinstance(kind, types.UnionType) or typing.get_origin(kind) is Union
                args = set(typing.get_args(kind)) - {type(None)} if union else {kind}
                if args == {bool} or f.metadata.get("type") == "bool":  # shown as bool
                    kinds[prefix + f.name] = "bool"
                elif args <= {int, float}:
                    kinds[prefix + f.name] = "number"
                else:
                    kinds[prefix + f.name] = "string"

    visit(Config, "")
    return kinds


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else "string"


def _as_kind(value: Any, kind: str) -> bool | float | str:
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, list):
        return str(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def hparam_value(value: bool | float | str) -> struct_pb2.Value:
    if isinstance(value, bool):  # before int: a bool is an int (torch's hparams() gets it wrong)
        return struct_pb2.Value(bool_value=value)
    if isinstance(value, int | float):
        return struct_pb2.Value(number_value=float(value))
    return struct_pb2.Value(string_value=str(value))


def hparam_infos(hparams: Mapping[str, Any], swept: Iterable[str]) -> list[api_pb2.HParamInfo]:
    """The experiment's hyperparameters: the same list in every job of a sweep.

    Every schema key; the optimizer's own arguments when the sweep doesn't vary the optimizer
    (then every job has the same ones); and any swept key. Types from the schema, no domains
    (one job can't know the sweep's values) except false/true for booleans.
    """
    swept = set(swept)
    kinds = hparam_kinds()
    names = list(kinds)
    names += [
        n
        for n in hparams
        if n not in kinds and (n in swept or (n.startswith("optim.") and "optim" not in swept))
    ]
    infos = []
    for name in sorted(names):
        kind = kinds.get(name) or _kind_of(hparams.get(name))
        info = api_pb2.HParamInfo(name=name, type=_KIND_TYPES[kind], differs=name in swept)
        if kind == "bool":
            info.domain_discrete.extend([False, True])
        infos.append(info)
    return infos


def hparams_summaries(hparams: Mapping[str, Any], swept: Iterable[str] = ()) -> list[Summary]:
    """The experiment summary (shared by a sweep's jobs) and this run's session start.

    `swept`: the keys its sweep varies (the same in every job), marked as differing.
    """
    swept = tuple(sorted(set(swept)))
    kinds = hparam_kinds()
    # what the experiment summary depends on: the names, their kinds, the swept keys
    key = (tuple(sorted((n, kinds.get(n) or _kind_of(v)) for n, v in hparams.items())), swept)
    experiment = _EXPERIMENTS.get(key)
    if experiment is None:
        if len(_EXPERIMENTS) >= 64:  # a sweep has one or a few; don't grow without end
            _EXPERIMENTS.clear()
        experiment = _experiment_summary(hparams, swept)
        _EXPERIMENTS[key] = experiment
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in hparams.items():
        start.hparams[name].CopyFrom(hparam_value(value))
    return [
        experiment,
        hparams_summary(
            hparams_metadata.SESSION_START_INFO_TAG,
            plugin_data_pb2.HParamsPluginData(session_start_info=start),
        ),
    ]


_EXPERIMENTS: dict[tuple, Summary] = {}  # made once per sweep (~0.2 ms each)


def _experiment_summary(hparams: Mapping[str, Any], swept: Iterable[str]) -> Summary:
    experiment = api_pb2.Experiment(
        hparam_infos=hparam_infos(hparams, swept),
        metric_infos=[
            # group "": the session's own run, also when it is "." (TensorBoard on one run dir)
            api_pb2.MetricInfo(name=api_pb2.MetricName(group="", tag=tag))
            for tag in HPARAMS_METRICS
        ],
    )
    return hparams_summary(
        hparams_metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment)
    )


def hparams_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    metadata: SummaryMetadata = hparams_metadata.create_summary_metadata(data)
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata)])
