"""Benchmark 6: the same seed task in Lightning (bench/peer_lightning.py) against kernellab."""

from __future__ import annotations

import importlib.util
import json
import tempfile

from bench import BENCH_DIR
from bench.report import Row, Section, at_least, spread
from bench.scale import Scale
from bench.startup import Dirs, timer, train_cmd
from bench.timing import Sample, interleaved, python, run_process
from bench.workloads import FrameworkTimer

PEER = BENCH_DIR / "peer_lightning.py"
INSTALL = "`.venv/bin/python -m pip install -c requirements.lock -r bench/requirements.txt`"


def lightning_per_step(few: int, many: int) -> float:
    """Seconds per step of a Lightning fit, the difference of a short and a long fit (fresh process)."""
    out = run_process(python(PEER, "--per-step", few, many), timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])["per_step_s"][0]


def peer(scale: Scale) -> Section:
    section = Section(
        "6. Peer: Lightning",
        "The seed task as a LightningModule with Lightning's Trainer and TensorBoardLogger "
        "(`bench/peer_lightning.py`: `torch.optim.SGD`, logs loss, kernel elements and bias every "
        "step and a histogram and image about 10 times a run, like our default; one epoch of identical "
        "batches, "
        "no progress bar, 1 thread). Per step: the difference of a "
        f"{scale.peer_steps[1]}- and a {scale.peer_steps[0]}-step fit, each round in a fresh process; "
        f"ours: `train(cfg)` with {scale.seed_steps} steps. Cold start: whole processes, 20 steps.",
    )
    if importlib.util.find_spec("lightning") is None:
        section.skipped = (
            f"Lightning is not installed in this environment; install it with {INSTALL}."
        )
        return section
    steps = interleaved(
        {
            "lightning": lambda: lightning_per_step(*scale.peer_steps),
            "ours": FrameworkTimer(f"trainer.steps={scale.seed_steps}"),
        },
        scale.heavy_reps,
    )
    with tempfile.TemporaryDirectory(prefix="kernellab-bench-") as tmp:
        dirs = Dirs(tmp)
        cold = interleaved(
            {
                "lightning": timer(lambda: python(PEER, "--steps", 20)),
                "ours": timer(lambda: train_cmd(dirs("run"))),
            },
            scale.heavy_reps,
        )
    section.rows = [
        _faster(kind, samples) for kind, samples in (("per step", steps), ("cold start", cold))
    ]
    section.notes.append("The issue sets no number; ≥ 1× means kernellab is the faster one.")
    return section


def _faster(kind: str, samples: dict[str, Sample]) -> Row:
    ours, theirs = samples["ours"], samples["lightning"]
    return Row(
        f"{kind}: Lightning ÷ kernellab",
        spread(ours),
        spread(theirs),
        theirs.median / ours.median,
        at_least(1.0),
    )
