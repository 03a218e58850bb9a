"""Training runs: build each job's task and model from its config, fit, leave the results on disk.

`train(cfg, run_dir)` trains one run; `train_group(jobs)` trains several runs whose tensor programs
have the same shape (see batching.group_key) as one program. A single run is a group of one, so
divergence, signals, logging, checkpoints and resume have one implementation. Both are pure of
Hydra's runtime: tests and notebooks call them directly; `train.py` at the top level is the thin
Hydra entry around them.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tensorboard.compat.proto.summary_pb2 import Summary

from kernellab import batching, checkpoint, runtime
from kernellab.artifacts import (
    METRICS_FILE,
    RunLock,
    atomic_write_all,
    ensure_no_run,
    metrics_json,
    read_metrics,
)
from kernellab.backends import device_refusal, resolve
from kernellab.checkpoint import CHECKPOINT_FILE, Checkpoint
from kernellab.config import AUTO_RESUME, AnyConfig, Resolved, config_yaml, resolved
from kernellab.console import Heartbeat, number, numbers, print_interval
from kernellab.data import Task, input_image, kernel_error, make_task, target_kernel
from kernellab.errors import ConfigError
from kernellab.eventfile import remove_events, truncate_after
from kernellab.geometry import Geometry, optimizer_arguments, optimizer_class, validate
from kernellab.loop import (
    CudaGraphStep,
    JobLog,
    Outcome,
    Progress,
    Schedule,
    fit,
    make_step,
    share_storage,
)
from kernellab.model import Conv2D
from kernellab.ops import conv2d_in_bands
from kernellab.signals import StopRequest
from kernellab.tracking import (
    INPUT_TAG,
    PREDICTION_TAG,
    TARGET_KERNEL_TAG,
    TARGET_TAG,
    TensorBoardTracker,
    hyperparameters,
    log_snapshots,
    snapshot_interval,
)

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What `metrics.json` holds."""

    status: str  # completed | diverged | interrupted (the CLI adds failed)
    final_loss: float | None  # loss computed at the last completed step; None if there is none
    initial_loss: float | None
    weight: list[list[float | None]]
    bias: float | None
    steps_completed: int
    output_shape: list[int]
    device: str
    num_threads: int
    wall_time_s: float  # the training loop, logging included, summed over resumed sessions
    steps_per_s: float
    versions: dict[str, str]
    kernel_error: float | None = None  # Frobenius distance of `weight` from the target kernel
    diverged_at_step: int | None = None
    signal: str | None = None

    def objective(self, name: str = "final_loss") -> float:
        """What a sweeper minimises (`objective`: final_loss or kernel_error); inf when the run
        has none (it diverged)."""
        value = None if self.status == "diverged" else getattr(self, name)
        return math.inf if value is None else value


@dataclass
class Job:
    """One run to train: its config, its dir, and the logger its progress lines go to."""

    cfg: AnyConfig
    run_dir: Path
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("kernellab"))
    swept: tuple[str, ...] = ()  # the config keys its sweep varies (HParams marks them)
    checked: Checked | None = None  # what `check(cfg)` gave, if the caller has checked it already


@dataclass
class Member:
    """A job inside a group being trained: what was built for it."""

    job: Job
    geometry: Geometry
    task: Task
    model: Conv2D
    optimizer: object
    rng: torch.Tensor  # torch's RNG state after this job's initialisation
    resumed: Checkpoint | None


def train(cfg: DictConfig, run_dir: Path, cores: int | None = None) -> TrainResult:
    """Train one run in `run_dir`: metrics.json, checkpoint.pt and TensorBoard events there.

    `cores`: the CPU cores this run may use (`trainer.num_threads=auto`); default all it may run on.
    A user mistake raises UserError before anything is written.
    """
    return train_group([Job(cfg, Path(run_dir))], cores)[0]


def train_group(jobs: list[Job], cores: int | None = None) -> list[TrainResult]:
    """Train jobs that share one tensor program together: one step trains them all.

    Phases: check every job and what it resumes; build each job's task and model from its own seed
    (exactly as a single run does); fit; leave each job's results in its dir.
    """
    checked = [job.checked or check(job.cfg, job.run_dir) for job in jobs]
    # from here on each job reads its config resolved to plain Python (the values check read)
    jobs = [replace(job, cfg=found.config) for job, found in zip(jobs, checked, strict=True)]
    for job, found in zip(jobs, checked, strict=True):
        if found.finished is not None:
            raise ConfigError(
                "trainer.resume",
                AUTO_RESUME,
                f"{job.run_dir} holds a finished run ({found.finished['status']}): nothing to do",
            )
    geometries = [c.geometry for c in checked]
    resumed = [c.resumed for c in checked]
    device = checked[0].device
    if jobs[0].cfg.trainer.device == "auto":
        log.info("device: %s (trainer.device=auto)", device)
    locks = []
    try:
        for job, state in zip(jobs, resumed, strict=True):
            locks.append(RunLock(job.run_dir))  # makes the dir; refuses one it can't write
            if state is not None:  # a kill after its checkpoint may have logged later steps
                truncate_after(job.run_dir, state.step)
            elif job.cfg.trainer.resume == AUTO_RESUME:  # no checkpoint: whatever it logged goes
                remove_events(job.run_dir)
            else:
                ensure_no_run(job.run_dir)
        return _train_locked(jobs, geometries, resumed, device, cores)
    finally:
        for lock in locks:
            lock.release()


def _train_locked(
    jobs: list[Job],
    geometries: list[Geometry],
    resumed: list[Checkpoint | None],
    device: torch.device,
    cores: int | None,
) -> list[TrainResult]:
    first = jobs[0].cfg
    # by one job's size: a group of tiny jobs is many tiny problems (1 thread measured 10x faster
    # than 2 for 1,000 seed-task jobs), and a big job's group is small anyway (batching.max_group_size)
    threads = runtime.choose_num_threads(
        first.trainer.num_threads, _multiply_adds(geometries[0]), cores or runtime.available_cores()
    )
    torch.set_num_threads(threads)

    members = [_member(*args, device) for args in zip(jobs, geometries, resumed, strict=True)]
    models = [m.model for m in members]
    parameters = share_storage(models)
    schedule = Schedule(
        done=[m.resumed.step if m.resumed else 0 for m in members],
        last=[m.job.cfg.trainer.steps for m in members],
    )
    active = [True] * len(members)
    step = make_step(models, [m.optimizer for m in members], *_stacked_data(members), active)
    if first.trainer.cuda_graph:
        step = _graphed(step, device)

    trackers = [_tracker(m) for m in members]
    _log_run_starts(members, trackers)
    progress = Progress(
        [_job_log(m, tracker) for m, tracker in zip(members, trackers, strict=True)],
        parameters,
        tuple(geometries[0].kernel_size),
        models[0].bias is not None,
        schedule,
        Heartbeat(min(schedule.done) + 1, max(schedule.last), logging.getLogger("kernellab")),
        log_snapshots,
    )
    start = time.perf_counter()

    def save_checkpoints() -> None:  # every trainer.checkpoint_every_s: a kill loses at most that
        wall = time.perf_counter() - start
        atomic_write_all(
            [
                (
                    m.job.run_dir / CHECKPOINT_FILE,
                    _checkpoint(m, progress.snapshot(j), wall).encode(),
                )
                for j, m in enumerate(members)
                if progress.diverged_at[j] is None
            ]
        )

    with StopRequest() as stop:
        outcomes = fit(
            step,
            active,
            schedule,
            progress,
            stop,
            first.trainer.checkpoint_every_s,
            save_checkpoints,
        )
    wall = time.perf_counter() - start
    results, files = [], []
    for member, outcome, tracker in zip(members, outcomes, trackers, strict=True):
        result, written = _finish(member, outcome, tracker, device, threads, wall)
        results.append(result)
        files += written
    atomic_write_all(files)
    return results


@dataclass(frozen=True)
class Checked:
    """What `check` established about a run's config."""

    config: Resolved  # the config checked, resolved to plain Python
    geometry: Geometry
    device: torch.device
    backend: str  # `model.backend`, `auto` resolved
    resumed: Checkpoint | None  # what `trainer.resume` names, fit for this config
    finished: dict[str, Any] | None = None  # `trainer.resume=auto` in a finished run: its metrics


def check(cfg: AnyConfig, run_dir: Path | None = None) -> Checked:
    """Everything `train` would refuse before writing anything: values, device, memory, the
    resume. (A group's memory is sized by batching.max_group_size; this checks one job's.)
    `run_dir`: where the run will train, for `trainer.resume=auto`."""
    cfg = resolved(cfg)
    geometry = validate(cfg)
    device = runtime.resolve_device(cfg.trainer.device)
    if cfg.trainer.cuda_graph:
        _graphed(None, device)
    backend = backend_of(cfg, geometry, device)
    refusal = device_refusal(backend, device)
    if refusal is not None:
        raise ConfigError("model.backend", backend, refusal)
    _check_memory(geometry, backend, device)
    if cfg.trainer.resume == AUTO_RESUME:
        finished = _finished_run(run_dir) if run_dir else None
        if finished is not None:
            return Checked(cfg, geometry, device, backend, None, finished)
        if not (run_dir and (run_dir / CHECKPOINT_FILE).is_file()):
            return Checked(cfg, geometry, device, backend, None)  # nothing to continue: a new run
    return Checked(cfg, geometry, device, backend, _resume_point(cfg, geometry, run_dir))


def _check_memory(geometry: Geometry, backend: str, device: torch.device) -> None:
    """Refuse a run whose tensors can't fit, before allocating any (a 30000² image needs 18 GB)."""
    needed = batching.job_bytes(geometry, backend)
    available = batching.available_memory(device)
    if needed <= available:
        return
    (h, w), (oh, ow) = geometry.input_shape, geometry.output_shape
    key, value = "model.padding", geometry.padding[0]
    if oh * ow <= 4 * h * w:  # the image itself, not the padding, is what is too big
        key, value = "task.height", h
    raise ConfigError(
        key,
        value,
        f"a {h}x{w} image with a {oh}x{ow} output needs about {needed / 1e9:.3g} GB on {device},"
        f" and {available / 1e9:.3g} GB is available: use a smaller image or padding",
    )


def _finished_run(run_dir: Path) -> dict[str, Any] | None:
    """The metrics of the run in `run_dir` if it has nothing left to do (completed or diverged)."""
    try:
        metrics = read_metrics(run_dir)
    except (OSError, ValueError):
        return None
    return metrics if metrics.get("status") in ("completed", "diverged") else None


def recorded_objective(metrics: dict[str, Any], name: str) -> float:
    """A finished run's objective, from its metrics.json, as `TrainResult.objective` gives it."""
    value = None if metrics["status"] == "diverged" else metrics.get(name)
    return math.inf if value is None else value


def _resume_point(cfg: AnyConfig, geometry: Geometry, run_dir: Path | None) -> Checkpoint | None:
    """The checkpoint `trainer.resume` names, checked against this config; None for a new run."""
    if not cfg.trainer.resume:
        return None
    state = checkpoint.load(run_dir if cfg.trainer.resume == AUTO_RESUME else cfg.trainer.resume)
    if state.kernel_shape != list(geometry.kernel_size) or state.has_bias != cfg.model.bias:
        raise ConfigError(
            "trainer.resume",
            cfg.trainer.resume,
            f"its model has kernel {state.kernel_shape}, bias {state.has_bias}; this config has "
            f"{list(geometry.kernel_size)}, bias {cfg.model.bias}: resume with the run's own "
            "model settings",
        )
    if state.step > cfg.trainer.steps:
        raise ConfigError(
            "trainer.steps",
            cfg.trainer.steps,
            f"must be >= the checkpoint's step {state.step} to resume",
        )
    return state


def _member(
    job: Job,
    geometry: Geometry,
    resumed: Checkpoint | None,
    device: torch.device,
) -> Member:
    cfg = job.cfg
    # Everything a run draws is drawn on the CPU. torch.manual_seed would also queue a seeding of
    # every CUDA device, capturing a stack trace each time until CUDA starts: ~1 ms a job.
    torch.default_generator.manual_seed(cfg.seed)
    task = _build_task(cfg, geometry, device)
    model = _build_model(cfg, geometry, device).to(device)
    optimizer = optimizer_class(cfg.optim)(model.parameters(), **optimizer_arguments(cfg.optim))
    if resumed is not None:
        try:
            model.load_state_dict(resumed.model)
            optimizer.load_state_dict(resumed.optimizer)
        except (RuntimeError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                "trainer.resume",
                cfg.trainer.resume,
                f"its optimizer or model state does not fit this config ({error}); resume with "
                "the run's own optim and model settings",
            ) from None
        torch.set_rng_state(resumed.rng)
        job.log.info(
            "resuming %s at step %d",
            job.run_dir if cfg.trainer.resume == AUTO_RESUME else cfg.trainer.resume,
            resumed.step + 1,
        )
    return Member(job, geometry, task, model, optimizer, torch.get_rng_state(), resumed)


def _stacked_data(members: list[Member]) -> tuple[torch.Tensor, torch.Tensor]:
    """X (1, 1 or N, h, w): one image when every job has the same; Y (1, N, oh, ow)."""
    images = [m.task.image for m in members]
    shared = all(image is images[0] or torch.equal(image, images[0]) for image in images)
    X = images[0][None, None] if shared else torch.stack(images)[None]
    return X, torch.stack([m.task.target for m in members])[None]


def _tracker(member: Member) -> TensorBoardTracker:
    done = member.resumed.step if member.resumed else 0
    return TensorBoardTracker(
        member.job.run_dir,
        member.task.kernel,
        purge_step=done + 1 if done else None,
        target_output=member.task.target,
    )


def _job_log(member: Member, tracker: TensorBoardTracker) -> JobLog:
    cfg, state = member.job.cfg, member.resumed
    steps = cfg.trainer.steps
    return JobLog(
        tracker=tracker,
        log=member.job.log,
        target=member.task.kernel.flatten().tolist(),
        last_step=steps,
        log_every=cfg.logger.log_every,
        snapshot_every=snapshot_interval(steps, cfg.logger.snapshot_every),
        print_every=cfg.trainer.print_every or print_interval(steps),
        divergence_threshold=cfg.trainer.divergence_threshold,
        resumed=(state.step, state.initial_loss, state.final_loss) if state else (0, None, None),
    )


def _finish(
    member: Member,
    outcome: Outcome,
    tracker: TensorBoardTracker,
    device: torch.device,
    threads: int,
    wall: float,
) -> tuple[TrainResult, list[tuple[Path, bytes]]]:
    """Close the job's event file; its result, and its checkpoint (unless it diverged) and
    metrics.json to write."""
    job, model = member.job, member.model
    if outcome.status == "diverged":
        job.log.warning(
            "diverged: the loss at step %d %s; training stopped; try a smaller optim.lr (now %g)",
            outcome.diverged_at_step,
            outcome.diverged_because,
            job.cfg.optim.lr,
        )
    else:
        with torch.no_grad():
            prediction = conv2d_in_bands(
                member.task.image, model.kernel, model.bias, model.padding, model.stride
            )
            tracker.log_image(PREDICTION_TAG, prediction, outcome.steps_completed)
    tracker.close()
    wall += _wall_before(member)
    result = _result(outcome, member, device, threads, wall)
    files = [(job.run_dir / METRICS_FILE, metrics_json(asdict(result)))]
    if outcome.status != "diverged":  # a diverged model is not worth resuming
        done = (result.steps_completed, result.initial_loss, result.final_loss)
        state = _checkpoint(member, done, wall - _wall_before(member))
        files.insert(0, (job.run_dir / CHECKPOINT_FILE, state.encode()))
    return result, files


def _checkpoint(
    member: Member, done: tuple[int, float | None, float | None], wall: float
) -> Checkpoint:
    """The member's state now: `done` is (steps completed, first loss, last loss); `wall` this
    session's training time."""
    steps, first_loss, last_loss = done
    return Checkpoint(
        # copies: a group's parameters are views of one storage, which torch.save would save whole
        model={name: value.clone() for name, value in member.model.state_dict().items()},
        optimizer=member.optimizer.state_dict(),
        step=steps,
        rng=member.rng,
        initial_loss=first_loss,
        final_loss=last_loss,
        wall_time_s=_wall_before(member) + wall,
    )


def _wall_before(member: Member) -> float:
    return member.resumed.wall_time_s if member.resumed else 0.0


def _result(outcome: Outcome, member: Member, device, threads: int, wall: float) -> TrainResult:
    model, geometry = member.model, member.geometry
    if outcome.kernel is not None:  # the buffered values: for a diverged run, the last finite ones
        weight, bias, error = outcome.kernel.tolist(), outcome.bias, outcome.kernel_error
    else:  # nothing recorded (0 steps, or diverged at once): the model as it is
        kernel = model.kernel.detach().cpu()
        weight = kernel.tolist()
        bias = model.bias.item() if model.bias is not None else None
        error = kernel_error(kernel.flatten().tolist(), member.task.kernel.flatten().tolist())
    diverged = outcome.status == "diverged"
    return TrainResult(
        status=outcome.status,
        final_loss=None if diverged else outcome.last_loss,
        initial_loss=outcome.first_loss,
        weight=weight,
        bias=bias,
        steps_completed=outcome.steps_completed,
        output_shape=list(geometry.output_shape),
        device=str(device),
        num_threads=threads,
        wall_time_s=wall,
        steps_per_s=outcome.steps_completed / wall if wall > 0 else 0.0,
        versions=_versions(),
        kernel_error=error,
        diverged_at_step=outcome.diverged_at_step,
        signal=outcome.signal_name,
    )


def _build_task(cfg: AnyConfig, geometry: Geometry, device: torch.device) -> Task:
    t = cfg.task
    # drawn on the CPU, so a seed gives the same image on every device
    image = input_image(t.height, t.width, t.stripe, t.image, t.orientation, t.resize).to(device)
    kernel = target_kernel(geometry.target_kernel, t.orientation)
    return make_task(image, kernel, geometry.kernel_size, geometry.padding, geometry.stride)


def _build_model(cfg: AnyConfig, geometry: Geometry, device: torch.device) -> Conv2D:
    return Conv2D(
        geometry.kernel_size,
        geometry.padding,
        geometry.stride,
        bias=cfg.model.bias,
        init=cfg.model.init,
        backend=backend_of(cfg, geometry, device),
    )


def backend_of(cfg: AnyConfig, geometry: Geometry, device: torch.device) -> str:
    """`model.backend`, with `auto` resolved for this problem and device."""
    (oh, ow) = geometry.output_shape
    return resolve(cfg.model.backend, device.type, oh * ow)


def _graphed(step, device: torch.device) -> CudaGraphStep:
    if device.type != "cuda":
        raise ConfigError("trainer.cuda_graph", True, f"needs a CUDA device, not {device}")
    return CudaGraphStep(step)


def _log_run_starts(members: list[Member], trackers: list[TensorBoardTracker]) -> None:
    """Each new run's config, HParams session and task pictures. A job whose task equals the
    job's before shares its encoded pictures (the seeds of a group see one picture): the same
    scales, so the same bytes."""
    pictures: list[Summary] = []
    shown: Task | None = None
    for member, tracker in zip(members, trackers, strict=True):
        if member.resumed is not None:  # its run start is in its event files already
            continue
        cfg, task = member.job.cfg, member.task
        if shown is None or not _same_task(task, shown):
            pictures = [tracker.image(tag, values) for tag, values in _task_pictures(task)]
            shown = task
        plain = resolved(cfg).plain
        tracker.log_config(config_yaml(plain))
        tracker.log_hparams(hyperparameters(plain, tuple(task.kernel.shape)), member.job.swept)
        for picture in pictures:
            tracker.log_summary(picture)


def _task_pictures(task: Task) -> list[tuple[str, torch.Tensor]]:
    return [(INPUT_TAG, task.image), (TARGET_TAG, task.target), (TARGET_KERNEL_TAG, task.kernel)]


def _same_task(a: Task, b: Task) -> bool:
    return all(
        torch.equal(x, y)
        for x, y in ((a.image, b.image), (a.target, b.target), (a.kernel, b.kernel))
    )


def _multiply_adds(geometry: Geometry) -> int:
    (oh, ow), (kh, kw) = geometry.output_shape, geometry.kernel_size
    return oh * ow * kh * kw


def _versions() -> dict[str, str]:
    import hydra

    return {"torch": torch.__version__, "hydra": hydra.__version__}


def summary_lines(result: TrainResult) -> list[str]:
    lines = [f"weight: {numbers(result.weight)}"]
    if result.bias is not None:
        lines.append(f"bias: {number(result.bias)}")
    return [*lines, f"kernel_error: {number(result.kernel_error)}"]
