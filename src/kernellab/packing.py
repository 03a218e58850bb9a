"""Sharing a sweep's jobs out between processes before they are checked: the batched launcher's
workers and `hydra/launcher=slurm_batched`'s array tasks.

Config only (no torch, no checks): the submitting process of a SLURM sweep plans 100,000 jobs
without importing the training stack. The cost model is a job's steps x image pixels; `pack_key`
stands in for `batching.group_key` (which needs each job checked) so that jobs likely to train as
one program land in the same task. A wrong guess costs speed, never correctness: each task groups
its own share with the real key.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
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
