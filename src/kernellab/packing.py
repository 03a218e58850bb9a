"""Sharing a sweep's jobs out between processes before they are checked: the batched launcher's
workers (`WORKER_SHARING`, before the jobs are even composed) and `hydra/launcher=slurm_batched`'s
array tasks.

Config only (no torch, no checks): the submitting process of a SLURM sweep plans 100,000 jobs
without importing the training stack. The cost model is a job's steps x image pixels; `pack_key`
stands in for `batching.group_key` (which needs each job checked) so that jobs likely to train as
one program land in the same task. A wrong guess costs speed, never correctness: each task groups
its own share with the real key.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

# the config keys that fix a group's program (batching.group_key), as the config gives them
PACK_KEYS = (
    "task.height",
    "task.width",
    "task.resize",
    "task.orientation",
    "task.target_kernel",
    "model.kernel_size",
    "model.padding",
    "model.stride",
    "model.bias",
    "model.backend",
    "trainer.device",
    "trainer.num_threads",
    "trainer.cuda_graph",
    "optim._target_",
)


def job_weight(cfg: Any) -> float:
    """A job's work, before it is checked: steps x image pixels (resize, else height x width;
    a picture file's own size isn't read here). 1 for a config that isn't kernellab's (another
    Hydra app's: Hydra's launcher test suites), or whose numbers Hydra would refuse anyway."""
    try:
        task, steps = cfg.task, cfg.trainer.steps
        height, width = task.resize if task.resize else (task.height, task.width)
        return float(max(1, steps) * max(1, height * width))
    except (AttributeError, KeyError, TypeError, ValueError):  # OmegaConf's errors among them
        return 1.0


def pack_key(cfg: Any) -> Hashable:
    """What `batching.group_key` will most likely say of the job, from its config alone."""
    return tuple(str(_select(cfg, key)) for key in PACK_KEYS)


def _select(cfg: Any, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        node = node.get(part) if hasattr(node, "get") else None
    return node


def pack(weights: Sequence[float], keys: Sequence[Hashable], parts: int) -> list[list[int]]:
    """Job indices in at most `parts` shares of about equal weight: the jobs ordered by key (in
    the order each key first comes), then cut where the running weight crosses each k/parts of
    the total. Jobs of one key stay together unless their weight needs more than one share (a
    too-big group is split); no share is empty; each in job order."""
    first: dict[Hashable, int] = {}
    for index, key in enumerate(keys):
        first.setdefault(key, index)
    order = sorted(range(len(weights)), key=lambda i: (first[keys[i]], i))
    total = sum(weights) or 1.0
    shares: list[list[int]] = [[] for _ in range(parts)]
    done = 0.0
    for index in order:
        middle = done + weights[index] / 2  # a job goes where the middle of its weight falls
        shares[min(parts - 1, int(middle / total * parts))].append(index)
        done += weights[index]
    return [sorted(share) for share in shares if share]


# what job_weight and pack_key read: the batched launcher applies a job's overrides of these only
# when it plans its workers' shares (a thousand seeds weigh as one config)
WEIGHT_KEYS = (*PACK_KEYS, "trainer.steps")


def plan(configs: Sequence[Any], parts: int) -> list[list[int]]:
    """`pack` of these configs (each weighed once however many jobs share it)."""
    weighed: dict[int, tuple[float, Hashable]] = {}
    for cfg in configs:
        if id(cfg) not in weighed:
            weighed[id(cfg)] = (job_weight(cfg), pack_key(cfg))
    return pack(
        [weighed[id(cfg)][0] for cfg in configs], [weighed[id(cfg)][1] for cfg in configs], parts
    )


class _WorkerSharing:
    """`hydra/launcher=batched`'s Sharing (hydra_plugins.kernellab_batched_launcher.Sharing): a
    batch given several workers is packed by steps x pixels, likely groups together, before its
    jobs are composed; each worker's share is trained by kernellab.batch_runner.run_batch."""

    keys = WEIGHT_KEYS

    @staticmethod
    def plan(configs: Sequence[Any], parts: int) -> list[list[int]]:
        # The training stack, imported here, before the workers are forked: they share it rather
        # than each importing torch (the same wall time on free cores, half the CPU, and a
        # search's later batches fork with it loaded)
        import kernellab.batch_runner  # noqa: F401

        return plan(configs, parts)

    @staticmethod
    def after(lost: Sequence[Any], sweep_dir: Path) -> None:
        from kernellab.batch_runner import after_workers  # the training stack

        after_workers(lost, sweep_dir)


WORKER_SHARING = _WorkerSharing()
