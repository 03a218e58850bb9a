"""`make faults`'s input catalogue in the slow tier: an even sample of every family (the whole
catalogue, ~560 cases, takes `make faults` about half an hour on 2 cores), judged exactly as
`scripts/faults.py` judges it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from fault_catalogue import Case, cases
from faults import BAD_INPUTS, GOOD, judge

PER_FAMILY = 3


def sample() -> list[Case]:
    """About PER_FAMILY cases of each family, spread evenly over it."""
    families: dict[str, list[Case]] = {}
    for case in cases(BAD_INPUTS):
        families.setdefault(case.family, []).append(case)
    return [
        case
        for members in families.values()
        for case in members[:: max(1, len(members) // PER_FAMILY)]
    ]


@pytest.mark.slow
@pytest.mark.parametrize("case", sample(), ids=lambda case: f"{case.family}: {case.args}")
def test_a_catalogue_case_is_answered_in_one_line_or_runs(case):
    assert judge(case, train_py=forked) in GOOD


def forked(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python train.py ARGS` forked as the other tests' runs are."""
    return run_cli(*args, cwd=cwd, timeout=timeout)
