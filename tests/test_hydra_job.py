"""`python train.py` as a user runs it, through Hydra's task function (kernellab.hydra_job) end to
end: console, output dir, exit codes, error lines."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from kernellab.config_help import schema_rows
from kernellab.errors import show
from kernellab.rundir import read_metrics
from kernellab.tracking import read_scalars
from tests.helpers import TRAIN_PY, run_cli


def run_dirs(root):
    return sorted(p.parent for p in root.glob("outputs/*/*/.hydra"))


@pytest.mark.slow
def test_default_run_prints_progress_and_leaves_a_complete_run_dir(tmp_path):
    proc = run_cli(cwd=tmp_path, check=True)
    lines = proc.stdout.splitlines()
    assert [line.split(",")[0] for line in lines if line.startswith("step ")] == [
        "step 5",
        "step 10",
        "step 15",
        "step 20",
    ]
    assert lines[-3].startswith("weight: [[") and lines[-2].startswith("bias: ")
    assert lines[-1].startswith("kernel_error: ")
    (run_dir,) = run_dirs(tmp_path)
    for name in ("metrics.json", "checkpoint.pt", "train.log", ".hydra/config.yaml"):
        assert (run_dir / name).exists(), name
    metrics = read_metrics(run_dir)
    scalars = read_scalars(run_dir)
    assert metrics["status"] == "completed"
    assert len(scalars["train/loss"]) == 20
    assert scalars["train/loss"][-1][1] == pytest.approx(metrics["final_loss"], rel=1e-6)
    assert f"loss {metrics['final_loss']:.4g}" in lines[-4]


@pytest.mark.slow
def test_readme_override_example_just_works(tmp_path):
    args = "model.kernel_size=[3,3] model.padding=1 model.stride=2 optim.lr=0.03 trainer.steps=200 task.image=random"
    run_cli(*args.split(), "hydra.run.dir=run", cwd=tmp_path, check=True)
    metrics = read_metrics(tmp_path / "run")
    assert metrics["output_shape"] == [3, 4]
    assert len(read_scalars(tmp_path / "run")["kernel/w_2_2"]) == 200


@pytest.mark.slow
def test_runs_started_together_get_their_own_dirs(tmp_path):
    with ThreadPoolExecutor(2) as pool:
        for proc in pool.map(lambda _: run_cli("trainer.steps=2", cwd=tmp_path), range(2)):
            assert proc.returncode == 0, proc.stderr
    assert len(run_dirs(tmp_path)) == 2


@pytest.mark.slow
def test_help_lists_every_option_from_the_schema_without_loading_the_training_stack(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(TRAIN_PY), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    flat = " ".join(proc.stdout.split())
    for key, default, meaning in schema_rows():
        assert f"{key}={show(default)}" in flat, key
        assert " ".join(meaning.split()) in flat, key
    assert "optim: adam, adamw, momentum, sgd" in proc.stdout  # the config groups
    assert "--hydra-help" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "kernellab.config" in imported  # -X importtime did list the imports
    assert not {"kernellab.hydra_job", "kernellab.training", "tensorboard"} & imported
    assert not list(tmp_path.iterdir()), "--help writes nothing"


# one of each kind (our check, Hydra's missing group, a typo in struct mode): the fast tier's
REPRESENTATIVE = [
    ("optim.lr=0", "optim.lr=0: must be"),
    ("optim=rmsprop", "Could not find 'optim/rmsprop'"),  # Hydra's own message
    ("model.kernal_size=3", "Could not override 'model.kernal_size'"),
]
BAD_INPUTS = [
    *REPRESENTATIVE,
    ("model.kernel_size=0", "model.kernel_size=0: must be"),
    ("model.padding=-1", "model.padding=-1: must be"),
    ("model.stride=0", "model.stride=0: must be"),
    ("optim.lr=inf", "optim.lr=inf: must be"),
    ("trainer.steps=-1", "trainer.steps=-1: must be"),
    ("model.kernel_size=[7,9]", "model.kernel_size=[7,9]: must fit the padded input"),
    ("model.kernel_size=[1,1]", "model.kernel_size=[1,1]: must be at least the target"),
    ("model.backend=fast", "model.backend=fast: must be one of auto, torch, fused, corr2d, loop"),
    ("task.target_kernel=sobel_z", "task.target_kernel=sobel_z: must be one of"),
]
if not torch.cuda.is_available():
    BAD_INPUTS.append(
        ("trainer.device=cuda", "CUDA is not available on this machine; use cpu or auto")
    )


@pytest.mark.parametrize(
    "cases",
    [
        pytest.param(REPRESENTATIVE, id="representative"),
        pytest.param(BAD_INPUTS, id="all", marks=pytest.mark.slow),
    ],
)
def test_bad_inputs_exit_nonzero_with_one_clear_line(tmp_path, cases):
    def attempt(case):
        return case, run_cli(case[0], cwd=tmp_path)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(attempt, cases))
    for (override, expected), proc in results:
        assert proc.returncode != 0, override
        assert expected in proc.stderr, (override, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout, override
        ours = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        if ours:
            assert proc.returncode == 2 and proc.stderr.strip() == ours[0], override
    assert run_dirs(tmp_path) == [], "a refused run leaves no output dir behind"


@pytest.mark.slow
def test_divergence_warns_once_and_exits_zero(tmp_path):
    proc = run_cli("optim.lr=10", "trainer.steps=200", "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = read_metrics(tmp_path / "run")
    assert "diverged" not in proc.stdout  # a warning: stderr only
    assert proc.stderr.splitlines() == [
        f"diverged: the loss at step {metrics['diverged_at_step']} exceeds 1e+06 × the first "
        f"step's loss ({metrics['initial_loss']:.4g}); training stopped; try a smaller optim.lr "
        "(now 10)"
    ]


@pytest.mark.slow
def test_refused_resume_keeps_the_run_as_it_was(tmp_path):
    run_cli("trainer.steps=5", "hydra.run.dir=run", cwd=tmp_path, check=True)
    run_dir = tmp_path / "run"
    before = {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    proc = run_cli(f"trainer.resume={run_dir}", "model.kernel_size=[1,3]", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: trainer.resume={run_dir}: its model has kernel [1, 2]")
    after = {
        p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file() and p.suffix != ".log"
    }
    assert after == {p: b for p, b in before.items() if p.suffix != ".log"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--cfg", "job"],
        ["--info"],
        ["trainer.nokey=1"],
        ["trainer.steps=many"],
        # refused values: whether the device exists, the optimizer, the resume need torch; these don't
        ["trainer.steps=-1"],
        ["model.kernel_size=99"],
        ["trainer.device=tpu"],
        ["task.image=no_such.png"],
        ["study.recovered_within=-1"],
        ["-m", "seed=0,1", "study.replicates=[nosuchkey]"],
    ],
)
def test_what_needs_no_training_never_imports_torch(tmp_path, args):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(TRAIN_PY), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "kernellab.config" in imported  # -X importtime did list the imports
    assert "torch" not in imported, proc.stderr[-2000:]
    if "=" in args[-1]:  # a refusal: exit 2, one line naming the key
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert len(errors) == 1 and args[-1].split("=")[0] in errors[0]
