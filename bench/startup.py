"""Benchmarks 4 and 5: whole-process cold start, and what a sweep adds per job."""

from __future__ import annotations

import itertools
import pstats
import re
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench import ROOT
from bench.report import Row, Section, at_most, duration, spread
from bench.scale import Scale
from bench.timing import interleaved, process_seconds, python, run_process
from bench.workloads import TRAIN_PY, large_overrides

IMPORT_BASELINE = ("-c", "import torch, hydra")
IMPORT_LINE = re.compile(r"import time:\s*(\d+) \|\s*(\d+) \|(\s*)(\S+)")


class Dirs:
    """Fresh output dirs under one temporary dir, so no run reuses another's."""

    def __init__(self, root: str) -> None:
        self.root, self.count = Path(root), itertools.count()

    def __call__(self, kind: str) -> str:
        return f"hydra.{kind}.dir={self.root / f'{kind}{next(self.count)}'}"


def train_cmd(*args: str) -> list[str]:
    return python(TRAIN_PY, *args)


def timer(make_cmd: Callable[[], list[str]]) -> Callable[[], float]:
    return lambda: process_seconds(make_cmd(), timeout=600)


# --- 4. cold start ----------------------------------------------------------------------------


def cold_start(scale: Scale) -> Section:
    with tempfile.TemporaryDirectory(prefix="kernellab-bench-") as tmp:
        dirs = Dirs(tmp)
        samples = interleaved(
            {
                "train.py": timer(lambda: train_cmd(dirs("run"))),
                "import": timer(lambda: python(*IMPORT_BASELINE)),
                "--help": timer(lambda: train_cmd("--help")),
                "import hydra": timer(lambda: python("-c", "import hydra")),
            },
            scale.reps,
        )
        ours, base = samples["train.py"], samples["import"]
        extra_imports = extra_import_costs(train_cmd(dirs("run"))[1:], IMPORT_BASELINE)
        hot = profile_process([str(TRAIN_PY), dirs("run")], Path(tmp) / "run.prof", is_ours)
    section = Section(
        "4. Cold start",
        "Whole process: `python train.py` (the default experiment, 20 steps, `hydra.run.dir` in a "
        "temporary dir) vs `python -c 'import torch, hydra'`.",
        [
            Row(
                "process: train.py ÷ import torch, hydra",
                spread(ours),
                spread(base),
                ours.median / base.median,
                at_most(1.2),
            ),
            Row(
                "process: train.py --help ÷ import hydra (torch not imported)",
                spread(samples["--help"]),
                spread(samples["import hydra"]),
                samples["--help"].median / samples["import hydra"].median,
                at_most(3.0),
            ),
        ],
    )
    offenders = ", ".join(
        f"`{pkg}` {duration(us / 1e6)}" for pkg, us in extra_imports.most_common(10) if us > 0
    )
    section.notes += [
        f"Extra time over the baseline: {duration(ours.median - base.median)}; of it, imports the "
        f"baseline doesn't make take {duration(sum(v for v in extra_imports.values() if v > 0) / 1e6)} "
        f"(`python -X importtime`: self time of the modules only `train.py` imports, by package): {offenders}.",
        f"Where kernellab's code spends it (cProfile, cumulative, lazy imports included; cProfile "
        f"inflates Python-heavy code): {listing(hot)}.",
    ]
    return section


def import_costs(args: list[str] | tuple[str, ...]) -> dict[str, int]:
    """Microseconds of import self time per module, from `python -X importtime ARGS`."""
    stderr = run_process(python("-X", "importtime", *args), timeout=300).stderr
    return {m.group(4): int(m.group(1)) for m in IMPORT_LINE.finditer(stderr)}


def extra_import_costs(args: list[str], baseline: tuple[str, ...]) -> Counter[str]:
    """Self time of the modules `args` imports and `baseline` doesn't, per package (two levels)."""
    base = import_costs(baseline)
    costs: Counter[str] = Counter()
    for module, us in import_costs(args).items():
        if module not in base:
            costs[".".join(module.split(".")[:2])] += us
    return costs


def profile_process(
    args: list[str], out: Path, wanted: Callable[[str, str], bool], top: int = 8
) -> list[tuple[str, float]]:
    """The `wanted(file, function)` functions by cumulative time in one process under cProfile."""
    run_process(python("-m", "cProfile", "-o", out, *args), timeout=600)
    stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    found = [
        (f"{Path(file).stem}.{func}", cumulative)
        for (file, _, func), (_, _, _, cumulative, _) in stats.items()
        if func != "<module>" and wanted(file, func)
    ]
    return sorted(found, key=lambda item: -item[1])[:top]


def is_ours(file: str, func: str) -> bool:
    return "kernellab" in file and str(ROOT) in file


def listing(found: list[tuple[str, float]]) -> str:
    return ", ".join(f"`{name}` {duration(seconds)}" for name, seconds in found)


# --- 5. sweeps --------------------------------------------------------------------------------

SWEEP_STAGES = {  # Hydra's per-sweep and per-job stages, next to kernellab's own functions
    "validate_batch_is_legal",  # the basic sweeper composes every job's config up front...
    "load_sweep_config",  # ...and each job's config again when it runs
    "run_job",
    "launch",
}


def in_sweep(file: str, func: str) -> bool:
    return is_ours(file, func) or ("hydra" in file and func in SWEEP_STAGES)


def sweeps(scale: Scale) -> Section:
    seeds = "seed=" + ",".join(map(str, range(scale.sweep_jobs)))
    rates = "optim.lr=" + ",".join(f"{0.001 * (k + 1):g}" for k in range(scale.sweep_jobs))
    heavy = [
        "seed=" + ",".join(map(str, range(scale.joblib_jobs))),
        *large_overrides(scale.joblib_size, scale.joblib_steps),
    ]
    joblib = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    basic = "hydra/launcher=basic"  # the default is batched (conf/config.yaml)
    with tempfile.TemporaryDirectory(prefix="kernellab-bench-") as tmp:
        dirs = Dirs(tmp)
        light = interleaved(
            {
                "sweep": timer(lambda: train_cmd("-m", basic, seeds, dirs("sweep"))),
                "plain -m": timer(lambda: train_cmd("-m", rates, dirs("sweep"))),
                "run": timer(lambda: train_cmd(dirs("run"))),
            },
            scale.heavy_reps,
        )
        launchers = interleaved(
            {
                "basic": timer(lambda: train_cmd("-m", basic, *heavy, dirs("sweep"))),
                "joblib": timer(lambda: train_cmd("-m", *joblib, *heavy, dirs("sweep"))),
            },
            scale.joblib_reps,
        )
        profiled = "seed=" + ",".join(map(str, range(scale.profiled_jobs)))
        hot = profile_process(
            [str(TRAIN_PY), "-m", basic, profiled, dirs("sweep")],
            Path(tmp) / "sweep.prof",
            in_sweep,
        )
    sweep, plain, run = light["sweep"], light["plain -m"], light["run"]
    basic, parallel = launchers["basic"], launchers["joblib"]
    n = scale.sweep_jobs
    return Section(
        "5. Sweep overhead",
        f"Whole processes. `python train.py -m seed=0,…,{n - 1}` (basic launcher, default experiment) "
        f"vs one `python train.py`; `python train.py -m optim.lr=0.001,…,{0.001 * n:g}` ({n} "
        "values, no launcher named: the default, `batched`) vs the same run. Then a "
        f"compute-heavy sweep ({scale.joblib_jobs} jobs, "
        f"{scale.joblib_size}² random image, 3×3 kernel, {scale.joblib_steps} steps each) with "
        "`hydra/launcher=joblib hydra.launcher.n_jobs=2` vs the basic launcher.",
        [
            Row(
                f"plain `-m`, {n} values of optim.lr (default launcher: batched) ÷ one run",
                spread(plain),
                spread(run),
                plain.median / run.median,
                at_most(1.25),
            ),
            Row(
                f"{n}-job sweep, basic launcher ÷ one run",
                spread(sweep),
                spread(run),
                sweep.median / run.median,
                at_most(2.0),
            ),
            Row(
                "speed-up: basic launcher ÷ joblib (2 workers)",
                spread(parallel),
                spread(basic),
                basic.median / parallel.median,
            ),
        ],
        [
            f"Per extra job: basic launcher {duration((sweep.median - run.median) / (n - 1))}, "
            f"plain `-m` {duration((plain.median - run.median) / (n - 1))}.",
            f"Where a {scale.profiled_jobs}-job sweep spends its time (cProfile, cumulative over "
            f"its jobs; inflated by cProfile): {listing(hot)}.",
        ],
    )
