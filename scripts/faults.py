"""Fault injection: every bad input and fault kernellab promises to answer, tried as a user would.

    python scripts/faults.py                  (make faults)
    python scripts/faults.py --only optim     the cases whose arguments or name match a regex

Each case runs `python train.py ...` in a fresh temporary dir and is judged by what it left:
`refused` (exit 2, one `error:` line on stderr, no traceback, nothing written), `handled` (a fault
that ended as the README's Reliability table says), or a failure: `traceback`, `hang` (no answer
within its time limit), `lost` (data that should be on disk isn't). Prints a table and exits 1
if any case failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fault_catalogue import Case, cases

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
    # the optimizer, checked by building it on the run's parameter shapes and stepping it
    "optim=momentum optim.momentum=-1",
    "optim=momentum optim.momentum=abc",
    "optim=momentum optim.momentum=[0.9]",
    "optim=momentum optim.momentum=nan",
    "optim=momentum +optim.nesterov=1",
    "optim=momentum optim.momentum=0 +optim.nesterov=true",
    "optim=adam +optim.betas=[0.9]",
    "optim=adam +optim.betas=[2,3]",
    "optim=adam +optim.eps=-1",
    "optim=adam +optim.amsgrad=maybe",
    "optim=adam +optim.foreach=abc",
    "optim=adam +optim.capturable=true",
    "optim=adam +optim.differentiable=true",
    "optim=adam optim.lr=true",
    "optim=adamw optim.weight_decay=abc",
    "optim.lr=true",
    "optim._target_=..",
    "optim._target_=torch.optim.Optimizer",
    "optim._target_=torch.optim.LBFGS",
    "optim._target_=torch.optim.SparseAdam",
    "optim._target_=torch.optim.Muon",
    "optim._target_=torch.optim.RMSprop +optim.centered=yes",
    "optim._target_=torch.optim.Rprop +optim.etas=[0.5]",
    "optim._target_=torch.optim.Adagrad +optim.lr_decay=-1",
    "optim._target_=torch.optim.Adadelta +optim.rho=2",
    # ints that would overflow torch's or the OS's C types; booleans that aren't
    "model.stride=9223372036854775808",
    "model.padding=[0,2147483648]",
    "model.kernel_size=2147483648",
    "trainer.steps=9223372036854775808",
    "task.width=2147483648",
    "task.resize=[2147483648,2]",
    "trainer.print_every=2147483648",
    "logger.log_every=9223372036854775808",
    "logger.snapshot_every=2147483648",
    "trainer.num_threads=2147483648",
    "model.bias=2",
    "model.bias=yes",
    "model.bias=\"'true'\"",  # the string 'true' (shlex takes the outer quotes)
    "trainer.cuda_graph=1",
    # an Optuna search's settings, before the study starts (no database file created)
    "hparams_search=edge_optuna hydra.sweeper.direction=sideways",
    "hparams_search=edge_optuna hydra.sweeper.direction=[minimize,maximize]",
    "hparams_search=edge_optuna hydra.sweeper.max_failure_rate=2",
    "hparams_search=edge_optuna hydra.sweeper.storage=notaurl",
    "hparams_search=edge_optuna hydra.sweeper.storage=sqlite:///missing/edge.db",
    "hparams_search=edge_optuna hydra.sweeper.storage=sqlite:///.",
    "hparams_search=edge_optuna hydra.sweeper.storage=postgresql://127.0.0.1:1/x",
    "hparams_search=edge_optuna hydra.sweeper.storage=redis://127.0.0.1:1",
    # a resume trains in its run's own dir
    "trainer.resume=run hydra.run.dir=other",
]


TrainPy = Callable[[list[str], Path, float], subprocess.CompletedProcess[str]]


def python_train_py(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python train.py ARGS` in `cwd`, to its end or `timeout` (subprocess.TimeoutExpired)."""
    return subprocess.run([*TRAIN, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def run(
    args: list[str], cwd: Path, timeout: float = TIMEOUT, train_py: TrainPy = python_train_py
) -> tuple[int | None, str, str]:
    """`train.py ARGS` in `cwd` through `train_py`: (exit status, None for a hang; stdout; stderr)."""
    try:
        proc = train_py(args, cwd, timeout)
    except subprocess.TimeoutExpired:
        return None, "", ""
    return proc.returncode, proc.stdout, proc.stderr


def judge(case: Case, train_py: TrainPy = python_train_py) -> str:
    """`refused` (exit 2, one `error:` line, nothing written), `ran` (a case that may run: exit
    0, no traceback), or what went wrong: `hang`, `crash` (killed by a signal), `traceback`.
    `train_py`: how `python train.py` is run (the tests fork it: tests/helpers.run_cli)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in case.files:
            (Path(tmp) / name).write_bytes(data)
        before = {p: p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()}
        code, out, err = run(shlex.split(case.args), Path(tmp), train_py=train_py)
        after = {p: p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()}
    if code is None:
        return "hang"
    if code < 0:
        return "crash"
    if "Traceback" in out + err:
        return "traceback"
    if case.may_run and code == 0:
        return "ran"
    one_line = err.strip().count("\n") == 0 and err.startswith("error: ")
    return "refused" if code == 2 and one_line and after == before else f"other (exit {code})"


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


def auto_resume_of_a_finished_run_with_more_steps(tmp: Path) -> str:
    """`trainer.resume=auto` in a run that completed 5 steps, asked for 12: it continues."""
    first, _, _ = run(["hydra.run.dir=run", "trainer.steps=5"], tmp)
    code, _, err = run(["hydra.run.dir=run", "trainer.steps=12", "trainer.resume=auto"], tmp)
    if "Traceback" in err:
        return "traceback"
    metrics = json.loads((tmp / "run" / "metrics.json").read_text())
    ok = first == code == 0 and metrics["status"] == "completed"
    return "handled" if ok and metrics["steps_completed"] == 12 else "lost"


def more_threads_than_cores(tmp: Path) -> str:
    """`trainer.num_threads=100000`: clamped to the cores available, with one warning line."""
    code, _, err = run(["hydra.run.dir=run", "trainer.steps=2", "trainer.num_threads=100000"], tmp)
    if code is None or "Traceback" in err:
        return "hang" if code is None else "traceback"
    threads = json.loads((tmp / "run" / "metrics.json").read_text())["num_threads"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    warned = err.strip().startswith("trainer.num_threads=100000: ") and err.count("\n") == 1
    return "handled" if code == 0 and threads == cores and warned else f"other (exit {code})"


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
        # what follows `python train.py`; 4 x 20000 steps take ~100 s on 2 loaded cores
        code, _, err = run(command[2:], tmp, timeout=5 * TIMEOUT)
        if code is None:
            return "hang"
        done = [json.loads(p.read_text()) for p in (tmp / "s").glob("*/metrics.json")]
        complete = [m["steps_completed"] for m in done if m["status"] == "completed"]
        return "handled" if code == 0 and complete == [20000] * 4 else "lost"

    return case


def finished_sweep_run_again(tmp: Path) -> str:
    """The same sweep into a finished sweep's dir: refused with the continue command, nothing
    touched; a different sweep with trainer.resume=auto: refused too."""
    sweep = ["-m", "seed=0,1", "trainer.steps=3", "hydra.sweep.dir=s"]
    run(sweep, tmp)
    before = {p: p.read_bytes() for p in (tmp / "s").rglob("*") if p.is_file()}
    again, _, err = run(sweep, tmp)
    other, _, err2 = run([*sweep[:1], "seed=5,6", *sweep[2:], "trainer.resume=auto"], tmp)
    after = {p: p.read_bytes() for p in (tmp / "s").rglob("*") if p.is_file()}
    if "Traceback" in err + err2:
        return "traceback"
    ok = again == other == 2 and "trainer.resume=auto" in err and after == before
    return "handled" if ok else "lost"


def closed_stdout(tmp: Path) -> str:
    """`python train.py | head -1`: the run ends as it would have, quietly."""
    proc = start(["trainer.steps=300", "trainer.print_every=1", "hydra.run.dir=run"], tmp)
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=TIMEOUT)
    done = json.loads((tmp / "run" / "metrics.json").read_text())["status"] == "completed"
    quiet = "Traceback" not in err and "Logging error" not in err
    return "handled" if proc.returncode == 0 and quiet and done else "traceback"


def full_stdout(tmp: Path) -> str:
    """`python train.py > /dev/full`: one line saying the output was lost, exit 1."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [*TRAIN, "trainer.steps=3"],
            cwd=tmp,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT,
        )
    one_line = proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")
    return "handled" if proc.returncode == 1 and one_line else "traceback"


def deleted_cwd(tmp: Path) -> str:
    gone = tmp / "gone"
    gone.mkdir()
    script = f"import os, subprocess, sys; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); "
    script += f"sys.exit(subprocess.run({TRAIN!r}).returncode)"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT
    )
    return "handled" if proc.returncode == 2 and proc.stderr.count("\n") == 1 else "traceback"


def killed_joblib_worker(tmp: Path) -> str:
    """SIGKILL to one joblib worker: the summary of every job, one line, exit 1."""
    proc = start(["-m", *JOBLIB, "seed=range(4)", *LONG, "hydra.sweep.dir=s"], tmp)
    deadline = time.monotonic() + 60
    while not list((tmp / "s").glob("*/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.1)
    found = subprocess.run(["pgrep", "-f", "popen_loky_posix"], capture_output=True, text=True)
    ours = [int(p) for p in found.stdout.split() if os.readlink(f"/proc/{p}/cwd") == str(tmp)]
    if not ours:
        proc.kill()
        return "other (no joblib worker found)"
    os.kill(ours[0], signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        return "hang"
    if "Traceback" in err:
        return "traceback"
    rows = (
        (tmp / "s" / "summary.csv").read_text().splitlines()
        if (tmp / "s" / "summary.csv").exists()
        else []
    )
    return "handled" if proc.returncode == 1 and len(rows) == 5 else "lost"


def deleted_dir_while_training(sweep: bool) -> Callable[[Path], str]:
    """A sweep dir deleted while its first job trains (what is left is summarised, exit 1), or a
    run dir deleted before Ctrl-C (one line, exit 1)."""

    def case(tmp: Path) -> str:
        args = (
            ["-m", "hydra/launcher=basic", "seed=0,1", "hydra.sweep.dir=d"]
            if sweep
            else ["hydra.run.dir=d"]
        )
        # no periodic checkpoint: the deleted dir is first noticed when the signal saves
        proc = start([*args, *LONG[:2], "trainer.checkpoint_every_s=null"], tmp)
        deadline = time.monotonic() + 60
        while not list((tmp / "d").rglob("events.out.*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        subprocess.run(["rm", "-rf", str(tmp / "d")], check=False)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            return "hang"
        if "Traceback" in err or "warn" in err:
            return "traceback"
        return (
            "handled"
            if proc.returncode in (1, 130) and err.strip().splitlines()[-1].startswith("error: ")
            else f"other (exit {proc.returncode})"
        )

    return case


def report_on_damaged_sweep(tmp: Path) -> str:
    """kernellab.report on a sweep whose multirun.yaml is corrupt and one job's metrics.json a
    list: both reported, a warning each, exit 0."""
    run(["-m", "seed=0,1", "trainer.steps=3", "hydra.sweep.dir=s"], tmp)
    (tmp / "s" / "multirun.yaml").write_text("hydra: [[[: {\n")
    next((tmp / "s").glob("0_*/metrics.json")).write_text("[1, 2]")
    proc = subprocess.run(
        [sys.executable, "-m", "kernellab.report", "s"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if "Traceback" in proc.stderr:
        return "traceback"
    rows = (tmp / "s" / "summary.csv").read_text().splitlines()
    return (
        "handled"
        if proc.returncode == 0 and len(rows) == 3 and ",failed," in "".join(rows)
        else "lost"
    )


FAULTS: dict[str, Callable[[Path], str]] = {
    "the same sweep again into a finished sweep's dir": finished_sweep_run_again,
    "stdout closed by its reader (| head -1)": closed_stdout,
    "stdout on a full device (> /dev/full)": full_stdout,
    "the current dir deleted": deleted_cwd,
    "SIGKILL to one joblib worker": killed_joblib_worker,
    "the sweep dir deleted while a job trains": deleted_dir_while_training(sweep=True),
    "the run dir deleted, then Ctrl-C": deleted_dir_while_training(sweep=False),
    "kernellab.report on a corrupt multirun.yaml and a foreign metrics.json": report_on_damaged_sweep,
    "SIGINT during a run": signal_case(signal.SIGINT, 130),
    "SIGTERM during a run": signal_case(signal.SIGTERM, 143),
    "SIGKILL after a periodic checkpoint": sigkill_then_resume,
    "a second process in the same run dir": two_processes,
    "trainer.resume=auto on a finished run asked for more steps": (
        auto_resume_of_a_finished_run_with_more_steps
    ),
    "trainer.num_threads above the cores available": more_threads_than_cores,
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


GOOD = ("refused", "ran", "handled")
BAD = ("traceback", "hang", "crash", "lost")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", metavar="PATTERN", help="only the cases matching this regex")
    parser.add_argument(
        "--workers", type=int, default=2, help="input cases run this many at a time (default 2)"
    )
    args = parser.parse_args()
    only = re.compile(args.only or "")
    inputs = [case for case in cases(BAD_INPUTS) if only.search(case.args)]
    results: list[tuple[str, str, str]] = []  # (family, case, outcome)
    with ThreadPoolExecutor(max(1, args.workers)) as pool:
        for case, outcome in zip(inputs, pool.map(judge, inputs), strict=True):
            results.append((case.family, case.args, outcome))
            print(f"{outcome:>10}  [{case.family}] {case.args}", flush=True)
    for name, fault in FAULTS.items():
        if not only.search(name):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            results.append(("faults", name, fault(Path(tmp))))
        print(f"{results[-1][2]:>10}  [faults] {name}", flush=True)
    print(table(results))
    return 0 if all(outcome in GOOD for _, _, outcome in results) else 1


def table(results: list[tuple[str, str, str]]) -> str:
    """A row per family and their total: the outcomes counted."""
    columns = ["refused", "ran", "handled", *BAD]
    heads = ["family", "cases", "one-line refusals", "ran cleanly", "faults handled"]
    heads += ["tracebacks", "hangs", "crashes", "data lost", "other"]
    lines = ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
    families = [*dict.fromkeys(family for family, _, _ in results), "all"]
    for family in families:
        outcomes = [o for f, _, o in results if family in (f, "all")]
        counts = [sum(o == c for o in outcomes) for c in columns]
        other = len(outcomes) - sum(counts)
        cells = [f"**{family}**" if family == "all" else family, len(outcomes), *counts, other]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n" + "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
