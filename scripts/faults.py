"""Fault injection: every bad input and fault kernellab promises to answer, tried as a user would.

    python scripts/faults.py        (make faults)

Each case runs `python train.py ...` in a fresh temporary dir and is judged by what it left:
`refused` (exit 2, one `error:` line on stderr, no traceback, nothing written), `handled` (a fault
that ended as the README's Reliability table says), or a failure: `traceback`, `hang` (no answer
within its time limit), `lost` (data that should be on disk isn't). Prints a table and exits 1
if any case failed.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(ROOT / "train.py")]
TIMEOUT = 120
LONG = ["trainer.steps=100000000", "optim.lr=0.0001", "trainer.checkpoint_every_s=0.5"]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]

BAD_INPUTS = [
    "model.kernel_size=0",
    "model.kernel_size=[1,2,3]",
    "model.padding=-1",
    "model.stride=0",
    "model.kernel_size=[7,9]",
    "model.kernel_size=[1,1]",
    "model.backend=fast",
    "model.init=ones",
    "optim.lr=0",
    "optim.lr=-1",
    "optim.lr=inf",
    "optim.lr=nan",
    "optim.lr=1e308",
    "optim._target_=os.path",
    "optim._target_=nope.Nope",
    "+optim.betas=[0.9,0.99]",
    "trainer.steps=-1",
    "trainer.num_threads=0",
    "trainer.print_every=0",
    "trainer.divergence_threshold=1",
    "trainer.checkpoint_every_s=0",
    "logger.log_every=0",
    "task.height=0",
    "task.stripe=[6,2]",
    "task.orientation=diagonal",
    "task.image=noise.png",
    "task.target_kernel=sobel_z",
    "task.target_kernel=[[1,2],[3]]",
    "task.target_kernel=[[1e39,-1]]",
    "task.resize=[0,5]",
    "seed=9223372036854775808",
    "seed=-1",
    "objective=accuracy",
    "model.padding=1000000",
    "task.height=100000 task.width=100000",
    "trainer.device=tpu",
    "trainer.resume=",
    "trainer.resume=/nonexistent/run",
    "hydra.run.dir=",
    "model.backend=loop task.height=1000 task.width=1000",
    "trainer.cuda_graph=true optim=adam",
]


def run(args: list[str], cwd: Path, timeout: float = TIMEOUT) -> tuple[int | None, str, str]:
    try:
        proc = subprocess.run(
            [*TRAIN, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None, "", ""
    return proc.returncode, proc.stdout, proc.stderr


def judge_refusal(args: list[str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        code, out, err = run(args, Path(tmp))
        written = [p for p in Path(tmp).rglob("*") if p.is_file()]
    if code is None:
        return "hang"
    if "Traceback" in out + err:
        return "traceback"
    one_line = err.strip().count("\n") == 0 and err.startswith("error: ")
    return "refused" if code == 2 and one_line and not written else f"other (exit {code})"


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*TRAIN, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(path: Path, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return path.exists()


def signal_case(sig: signal.Signals, code: int) -> Callable[[Path], str]:
    def case(tmp: Path) -> str:
        proc = start([*LONG, "hydra.run.dir=run"], tmp)
        wait_for(tmp / "run" / "checkpoint.pt")
        proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            return "hang"
        metrics = json.loads((tmp / "run" / "metrics.json").read_text())
        if "Traceback" in err:
            return "traceback"
        ok = proc.returncode == code and metrics["status"] == "interrupted"
        return "handled" if ok else "lost"

    return case


def sigkill_then_resume(tmp: Path) -> str:
    proc = start([*LONG, "hydra.run.dir=run"], tmp)
    wait_for(tmp / "run" / "checkpoint.pt")
    time.sleep(1)
    proc.kill()
    proc.wait()
    code, _, err = run([f"trainer.resume={tmp / 'run'}", "trainer.steps=1", *LONG[1:]], tmp)
    # resuming with fewer steps than done is refused; the checkpoint's step is the run's state
    if code != 2 or "must be >= the checkpoint's step" not in err:
        return "lost"
    return "handled"


def two_processes(tmp: Path) -> str:
    first = start([*LONG, "hydra.run.dir=run"], tmp)
    wait_for(tmp / "run" / "checkpoint.pt")
    code, _, err = run(["hydra.run.dir=run"], tmp)
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=TIMEOUT)
    ok = code == 2 and err.startswith("error: output dir run ")
    return "handled" if ok else ("traceback" if "Traceback" in err else "lost")


def sweep_signal_case(launcher: list[str], sig: signal.Signals, whole_group: bool):
    """A 4-job sweep signalled once a job trains (its whole session, as Ctrl-C does, or its own
    process only); then the command it prints must continue it to 4 completed jobs."""

    def case(tmp: Path) -> str:
        sweep = ["-m", *launcher, "seed=range(4)", "trainer.steps=20000", "hydra.sweep.dir=s"]
        proc = subprocess.Popen(
            [*TRAIN, *sweep],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not list((tmp / "s").rglob(".lock")) and time.monotonic() < deadline:
            time.sleep(0.05)
        (os.killpg if whole_group else os.kill)(proc.pid, sig)
        try:
            _, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return "hang"
        if "Traceback" in err:
            return "traceback"
        time.sleep(2)  # workers told to exit take a moment
        ps = subprocess.run(["ps", "-o", "stat=", "-s", str(proc.pid)], capture_output=True)
        left = [s for s in ps.stdout.decode().split() if not s.startswith("Z")]
        if proc.returncode != 128 + sig.value or left or not (tmp / "s" / "summary.md").exists():
            return f"other (exit {proc.returncode}, {len(left)} left running)"
        command = shlex.split(err.split("continue the sweep with ", 1)[1].splitlines()[0])
        code, _, err = run(command[2:], tmp)  # what follows `python train.py`
        done = [json.loads(p.read_text()) for p in (tmp / "s").glob("*/metrics.json")]
        complete = [m["steps_completed"] for m in done if m["status"] == "completed"]
        return "handled" if code == 0 and complete == [20000] * 4 else "lost"

    return case


FAULTS: dict[str, Callable[[Path], str]] = {
    "SIGINT during a run": signal_case(signal.SIGINT, 130),
    "SIGTERM during a run": signal_case(signal.SIGTERM, 143),
    "SIGKILL after a periodic checkpoint": sigkill_then_resume,
    "a second process in the same run dir": two_processes,
    "Ctrl-C during a sweep, then its continue command": sweep_signal_case(
        ["hydra/launcher=basic"], signal.SIGINT, True
    ),
    "Ctrl-C during a joblib sweep, then continue": sweep_signal_case(JOBLIB, signal.SIGINT, True),
    "SIGTERM to a joblib sweep's process, then continue": sweep_signal_case(
        JOBLIB, signal.SIGTERM, False
    ),
    "Ctrl-C during a submitit_local sweep, then continue": sweep_signal_case(
        ["hydra/launcher=submitit_local"], signal.SIGINT, True
    ),
    "Ctrl-C during a batched sweep, then continue": sweep_signal_case(
        ["hydra/launcher=batched"], signal.SIGINT, True
    ),
}


def main() -> int:
    results: list[tuple[str, str]] = []
    for args in BAD_INPUTS:
        results.append((args, judge_refusal(args.split())))
        print(f"{results[-1][1]:>10}  {args}", flush=True)
    for name, case in FAULTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            results.append((name, case(Path(tmp))))
        print(f"{results[-1][1]:>10}  {name}", flush=True)
    counts = {k: sum(v == k for _, v in results) for k in ("traceback", "hang", "lost")}
    refused = sum(v == "refused" for _, v in results)
    handled = sum(v == "handled" for _, v in results)
    other = len(results) - refused - handled - sum(counts.values())
    print(
        "\n| cases tried | one-line refusals | faults handled | tracebacks | hangs | data lost | other |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| {len(results)} | {refused} | {handled} | {counts['traceback']} | {counts['hang']} | {counts['lost']} | {other} |"
    )
    return 0 if refused + handled == len(results) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
