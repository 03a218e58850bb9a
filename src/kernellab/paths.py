"""Paths as Hydra takes them: a run's dir and `.hydra/` subdir, a sweep job's dir name, and a path
quoted for an override (`trainer.resume="<dir>"`). The config's resolvers (kernellab.config) and
the commands printed to continue a sweep use these.
"""

from __future__ import annotations

import re
from pathlib import Path

AUTO_RESUME = "auto"  # trainer.resume: whatever this run's own dir holds
MULTIRUN_YAML = "multirun.yaml"  # Hydra's record of a multirun's config, in the sweep dir


def run_dir(resume: str | None, fresh: str) -> str:
    """`hydra.run.dir`: a resumed run continues in its own dir; a new one gets `fresh`."""
    if not resume or resume == AUTO_RESUME:
        return fresh
    return str(Path(resume).parent) if resume.endswith(".pt") else resume


def output_subdir(resume: str | None, stamp: str, output_dir: str) -> str:
    """`hydra.output_subdir`: a resumed run keeps its first `.hydra/` and files each resume's
    beside it (with `trainer.resume=auto`: when the dir has one)."""
    if resume == AUTO_RESUME:
        resume = resume if (Path(output_dir) / ".hydra").is_dir() else None
    return f".hydra/resume-{stamp}" if resume else ".hydra"


def path_override(key: str, path: Path | str) -> str:
    """`key=<path>`, quoted for Hydra's override parser if it needs it (a job dir's name holds
    `=`, `,` and `[`)."""
    if re.fullmatch(r"[\w./\-]+", str(path)):
        return f"{key}={path}"
    # Hydra's escapes: \" is a quote; backslashes are doubled only before a quote or at the end
    quoted = re.sub(r'(\\*)"', lambda m: 2 * m[1] + '\\"', str(path))
    quoted = re.sub(r"(\\+)$", lambda m: 2 * m[1], quoted)
    return f'{key}="{quoted}"'


MAX_DIRNAME = 200  # bytes; file systems allow 255


def job_dir(num: int, overrides: str) -> str:
    """`hydra.sweep.subdir`: `3_model.kernel_size=[1,3],optim.lr=0.001`, safe as one path part."""
    name = f"{num}_{overrides}" if overrides else str(num)
    return re.sub(r"[^\w.,=+\-\[\]]", "_", name)[:MAX_DIRNAME]


def resume_override(job_dir: Path) -> str:
    """`trainer.resume="<dir>"`, quoted for Hydra: job dir names hold `=` and `,`."""
    return path_override("trainer.resume", job_dir)
