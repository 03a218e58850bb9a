"""The inputs `make faults` tries, by family: what a hostile new user would type or hand over.

Each family maps a case (the arguments of `python train.py`, or of `-m` for sweeps) to the files
its dir holds before it runs. Most cases are spelt out; the `values` family is generated: every
key of the schema against values of every wrong kind. A case passes when it is refused in one
line (exit 2, nothing written) or, for generated ones whose value happens to be valid, when it
runs cleanly (exit 0, no traceback).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

from kernellab.config_help import schema_rows

# the wrong kinds of value, for every key of the schema (quoted as a shell would pass them)
HOSTILE_VALUES = (
    "abc",
    "-1",
    "0",
    "1.5",
    "2147483648",
    "9223372036854775808",
    "1e400",
    "nan",
    "-inf",
    "true",
    "null",
    "[]",
    "[1,2,3]",
    "{a:1}",
    "''",
)
# keys whose generated cases would start something else than a run (a resume reads a path)
NOT_GENERATED = ("trainer.resume", "study.replicates")
FAST = "trainer.steps=2"  # a generated case that is accepted trains 2 steps, not 20


def generated_values() -> list[str]:
    cases = []
    for key, _, _ in schema_rows():
        if key in NOT_GENERATED:
            continue
        extra = "" if key == "trainer.steps" else f" {FAST}"
        cases += [f"{key}={value}{extra}" for value in HOSTILE_VALUES]
    return cases


GRAMMAR = [
    "model.kernel_size=[1,2",
    "model.kernel_size=[1,2]]",
    "seed=1,",
    "seed=",
    "=1",
    "seed==1",
    "task.image=été.png",
    "task.image=my photo.png",
    "seed=${nope}",
    "seed=${seed}",
    "trainer.steps=${seed}${",
    "trainer.resume=${oc.env:KERNELLAB_UNSET_VARIABLE}",
    "trainer.resume=${now:}",
    "trainer.resume=${nosuchresolver:1}",
    "optim=null",
    "optim=nosuch",
    "experiment=nosuch",
    "foo=1",
    "+foo=1",
    "++task.extra=1",
    "+trainer.stepz=5",
    "~seed",
    "~task",
    "~optim",
    "model.kernal_size=3",
    "hydra.run.dir=${oc.env:KERNELLAB_UNSET_VARIABLE}",
    "hydra/launcher=nosuch",
]

SWEEPS = [  # each after `-m`
    "-m seed=glob(*)",
    "-m seed=range(1,5,0)",
    "-m seed=range(5,1)",
    "-m seed=interval(0,1)",
    "-m seed=range(1000000000)",
    "-m seed=range(1000) optim.lr=range(0,1,0.0001)",
    "-m study.recovered_within=0.1,0.2",
    "-m study.replicates=[nosuchkey] seed=0,1",
    "-m study.recovered_within=-1 seed=0,1",
    "-m nosuch=1,2",
    "-m seed=1,2 hydra/launcher=joblib hydra.launcher.n_jobs=0",
    "-m seed=1,2 hydra.launcher.workers=0",
    "-m seed=1,2 hydra.launcher.workers=abc",
    "-m seed=1,2 +foo=1",
    "-m hparams_search=edge_optuna hydra.sweeper.n_trials=0",
    "-m seed=[1,2",
]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def header_only_png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def _picture(mode: str = "L", size: tuple[int, int] = (48, 32), fmt: str = "PNG") -> bytes:
    import numpy as np
    from PIL import Image

    values = np.random.default_rng(0).random((size[1], size[0]))
    if mode == "I;16":
        picture = Image.fromarray((values * 65535).astype(np.uint16))
    elif mode == "F":
        picture = Image.fromarray(values.astype(np.float32))
    else:
        picture = Image.fromarray((values * 255).astype(np.uint8)).convert(mode)
    out = io.BytesIO()
    picture.save(out, format=fmt)
    return out.getvalue()


@dataclass(frozen=True)
class Case:
    family: str
    args: str  # what follows `python train.py`
    files: tuple[tuple[str, bytes], ...] = ()  # in the case's dir before it runs
    may_run: bool = False  # a valid value is fine too: exit 0 and no traceback passes


def photo_cases() -> list[Case]:
    """Files for `task.image` (and `task.resize`), each in the case's dir as `p.<ext>`."""
    good = _picture()
    refused = [
        ("task.image=p.png", b"", "empty"),
        ("task.image=p.png", good[: len(good) // 2], "truncated"),
        ("task.image=p.png", header_only_png(32, 32), "a header and no pixels"),
        ("task.image=p.png", header_only_png(100_000, 100_000), "a bomb's header"),
        ("task.image=p.png", header_only_png(200_000_000, 1), "200000000x1"),
        ("task.image=p.png", b"GIF89a not really", "not what its header says"),
        ("task.image=p.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "a signature and zeros"),
        ("task.image=p.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 100, "a JPEG header and zeros"),
        ("task.image=p.tif", _picture("F", fmt="TIFF")[:200], "a cut float TIFF"),
        ("task.image=p.png task.resize=[0,5]", good, ""),
        ("task.image=p.png task.resize=[5]", good, ""),
        ("task.image=p.png task.resize=[2147483648,5]", good, ""),
        ("task.image=p.png task.resize=[100000,100000]", good, ""),
        ("task.image=p.png model.kernel_size=[40,40]", good, ""),
    ]
    cases = [
        Case("photos", args, (("p." + args.split("p.")[1][:3], data),)) for args, data, _ in refused
    ]
    cases += [
        Case("photos", args)
        for args in (
            "task.image=.",
            "task.image=/dev/null",
            "task.image=/dev/zero",
            "task.image=/etc/passwd",
            "task.resize=[4,4]",
        )
    ]
    # task.target_image: the same guarded loader; a good picture of the wrong size (48x32 for
    # the default 6x8 image's 6x6 output) is refused with both sizes
    target = "task.target_image=t.png model.kernel_size=3"
    cases += [
        Case("target images", target, (("t.png", data),))
        for data in (b"", good[: len(good) // 2], header_only_png(32, 32), good)
    ]
    cases += [
        Case("target images", f"task.target_image={path} model.kernel_size=3")
        for path in (".", "/dev/zero", "nosuch.png")
    ]
    cases += [
        Case("target images", "task.target_image=t.png", (("t.png", good),)),
        Case("target images", f"{target} objective=kernel_error", (("t.png", good),)),
    ]
    cases += [
        Case("photos", f"task.image=p.{ext} {FAST}", ((f"p.{ext}", _picture(mode, fmt=fmt)),), True)
        for ext, mode, fmt in (
            ("png", "I;16", "PNG"),
            ("tif", "F", "TIFF"),
            ("gif", "P", "GIF"),
            ("bmp", "RGB", "BMP"),
            ("jpg", "L", "JPEG"),
            ("webp", "RGB", "WEBP"),
        )
    ]
    return cases


def channel_cases() -> list[Case]:
    """task.channels and the model's channel counts against the pictures and kernels given."""
    rgb = (("c.png", _picture("RGB")),)
    gray = (("g.png", _picture("L")),)
    return [
        Case("channels", "task.channels=rgb"),  # the drawn stripes have one channel
        Case("channels", "task.channels=cmyk"),
        Case("channels", "task.image=c.png task.channels=rgb model.in_channels=1", rgb),
        Case("channels", "task.image=g.png model.in_channels=3", gray),
        Case("channels", "task.image=c.png task.channels=rgb model.out_channels=0", rgb),
        Case("channels", "task.image=c.png task.channels=rgb model.backend=fused", rgb),
        Case("channels", "task.target_kernel=[[[[1]],[[2]]],[[[3]]]]"),  # ragged
        Case("channels", "task.target_kernel=[[[[1,2]],[[3,4]]]]"),  # in 2, the image has 1
        Case(  # valid: a colour-to-gray kernel (the default [[-1,1]] is one channel: refused)
            "channels",
            f"task.image=c.png task.channels=rgb task.target_kernel=[[[[0.3]],[[0.6]],[[0.1]]]] {FAST}",
            rgb,
            True,
        ),
    ]


def cases(spelt_out: list[str]) -> list[Case]:
    """Every input case: `spelt_out` (faults.py's own list), then the families here."""
    not_a_database = "hparams_search=edge_optuna hydra.sweeper.storage=sqlite:///notes.db"
    return [
        *(Case("values", args) for args in spelt_out),
        Case("values", not_a_database, (("notes.db", b"not a database\n"),)),
        *(Case("grammar", args) for args in GRAMMAR),
        *(Case("sweeps", args) for args in SWEEPS),
        *photo_cases(),
        *channel_cases(),
        *(Case("generated values", args, may_run=True) for args in generated_values()),
    ]
