"""kernellab.lifecycle: a job's records, objective and summary lines. (A sweep's end, which needs
real sweeps, is tested through Hydra in test_sweeps, test_interrupted_sweeps and test_slurm_helpers.)"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

from kernellab import lifecycle
from kernellab.errors import ConfigError


def test_the_objective_is_the_named_value_and_inf_when_there_is_none():
    assert lifecycle.objective({"status": "completed", "final_loss": 0.25}) == 0.25
    record = {"status": "completed", "final_loss": 0.25, "kernel_error": 0.5}
    assert lifecycle.objective(record, "kernel_error") == 0.5
    assert lifecycle.objective({"status": "interrupted", "final_loss": None}) == math.inf
    # a diverged run has no objective, whatever it recorded
    assert lifecycle.objective({"status": "diverged", "final_loss": 3.0}) == math.inf


def test_a_failure_is_recorded_with_its_reason_and_gives_inf(tmp_path):
    error = ConfigError("optim.lr", 0, "must be > 0")
    assert lifecycle.record_failure(tmp_path, error) == math.inf
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == {"status": "failed", "error": "optim.lr=0: must be > 0", "final_loss": None}
    lifecycle.record_failure(tmp_path, KeyError("x"))  # a bug: its type is named
    assert json.loads((tmp_path / "metrics.json").read_text())["error"] == "KeyError: 'x'"


def test_a_job_the_stop_came_before_is_recorded_as_not_started(tmp_path):
    lifecycle.record_not_started(tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == {"status": "not started", "final_loss": None}


def test_summary_lines_show_the_kernel_bias_and_error():
    result = SimpleNamespace(weight=[[-1.0, 1.0]], bias=None, kernel_error=0.0)
    lines = lifecycle.summary_lines(result)
    assert len(lines) == 2 and lines[0].startswith("weight: ") and "-1" in lines[0]
    assert lines[1].startswith("kernel_error: ")
    assert len(lifecycle.summary_lines(SimpleNamespace(**{**vars(result), "bias": 0.5}))) == 3
