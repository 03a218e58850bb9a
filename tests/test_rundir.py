"""metrics.json and checkpoint.pt are never half-written; bad checkpoints and dirs are refused."""

import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from kernellab.checkpoint import CHECKPOINT_FILE
from kernellab.checkpoint import load as load_checkpoint
from kernellab.errors import ConfigError
from kernellab.rundir import read_metrics
from tests.helpers import run_cli

# Rewrites a ~8 MB checkpoint and metrics.json forever; each version is complete and self-consistent.
WRITER = """
import sys, torch
from pathlib import Path
from kernellab.rundir import atomic_write, write_metrics
run_dir = Path(sys.argv[1])
for version in range(10**9):
    payload = torch.full((2_000_000,), float(version))
    atomic_write(run_dir / "checkpoint.pt", payload.numpy().tobytes())
    write_metrics(run_dir, {"version": version, "padding": "x" * 100_000})
    print(version, flush=True)
"""


@pytest.mark.slow
def test_kill_mid_write_never_leaves_a_truncated_file(tmp_path):
    for attempt in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2 + attempt):  # let it finish a few versions, then kill it mid-stream
            proc.stdout.readline()
        time.sleep(0.013 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        payload = torch.frombuffer(
            bytearray((tmp_path / CHECKPOINT_FILE).read_bytes()), dtype=torch.float32
        )
        assert payload.numel() == 2_000_000 and torch.all(payload == payload[0])
        assert len(read_metrics(tmp_path)["padding"]) == 100_000


def test_truncated_foreign_and_missing_checkpoints_are_clear_errors(tmp_path, default_run):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((default_run / CHECKPOINT_FILE).read_bytes()[:100])
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    for path, reason in [
        (truncated, "not a readable kernellab checkpoint"),
        (foreign, "not a kernellab checkpoint"),
        (text, "not a readable kernellab checkpoint"),
        (tmp_path / "nowhere", "no checkpoint at"),
    ]:
        with pytest.raises(ConfigError, match=reason) as error:
            load_checkpoint(str(path))
        assert str(error.value).startswith(f"trainer.resume={path}:")


class Exploit:
    """Unpickling this with weights_only=False would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoints_load_with_weights_only(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"model": Exploit(str(marker))}, f)
    with pytest.raises(ConfigError):
        load_checkpoint(str(evil))
    assert not marker.exists()


@pytest.mark.slow
def test_resume_with_a_bad_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"\x80\x04garbage")
    proc = run_cli(f"trainer.resume={bad}", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: trainer.resume={bad}:")
    assert bad.read_bytes() == b"\x80\x04garbage"  # untouched


@pytest.mark.slow
@pytest.mark.parametrize("where", ["file", "under_a_file"])
def test_unusable_output_dir_fails_before_training_touching_nothing(tmp_path, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("keep me")
    run_dir = blocker if where == "file" else blocker / "run"
    proc = run_cli(f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == proc.stderr.strip().splitlines()[0]
    assert f"output dir {run_dir} cannot be created or written" in proc.stderr
    assert "step " not in proc.stdout
    assert blocker.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make an unwritable mount-free dir")
@pytest.mark.slow
def test_unwritable_dir_is_refused(tmp_path):
    proc = run_cli("hydra.run.dir=/proc/kernellab/run", cwd=tmp_path)
    assert proc.returncode == 2
    assert "output dir /proc/kernellab/run cannot be created or written" in proc.stderr


def test_a_locked_run_dir_is_refused_before_anything_is_written(make_cfg, tmp_path):
    from kernellab.errors import UserError
    from kernellab.rundir import RunLock
    from kernellab.training import train

    held = RunLock(tmp_path)  # another process training here (flock is per open file)
    try:
        with pytest.raises(UserError, match=r"is in use by another run \(pid \d+\)"):
            train(make_cfg("trainer.steps=2"), tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]
    finally:
        held.release()
    assert train(make_cfg("trainer.steps=2"), tmp_path).status == "completed"  # free again
