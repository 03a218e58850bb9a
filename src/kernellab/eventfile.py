"""One TensorBoard event file: Event protos in TFRecord framing, written synchronously.

Performance (bench/ `step` and `sweep` figures): TensorBoard's own writer computes each record's
CRC32C in pure Python, about 75 µs an event, more than a training step of the seed task.
google-crc32c does it in C in under a microsecond, and writing a flush's events in one go needs no
background thread.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import google_crc32c
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary


class EventFile:
    """Appends events to a new file in `run_dir`; `purge_step` starts a resumed session."""

    def __init__(self, run_dir: Path, purge_step: int | None) -> None:
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.0"
        self.path = Path(run_dir) / name
        self.file = open(self.path, "ab")  # noqa: SIM115  (closed by close())
        self.write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:  # TensorBoard drops earlier events at or after this step
            self.write(
                Event(
                    wall_time=time.time(),
                    step=purge_step,
                    session_log=SessionLog(status=SessionLog.START),
                )
            )

    def add(self, summary: Summary, step: int = 0) -> None:
        self.file.write(_framed(summary_event(time.time(), step, summary.SerializeToString())))

    def write(self, event: Event) -> None:
        self.file.write(_framed(event.SerializeToString()))

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def summary_event(wall_time: float, step: int, summary: bytes) -> bytes:
    """`Event(wall_time=..., step=..., summary=...).SerializeToString()` from a serialized
    summary: fields 1 (double), 2 (varint, left out at 0, as protobuf does) and 5 (bytes). Making
    an Event copies its summary first, a histogram's ~10 KB included."""
    head = struct.pack("<Bd", 0x09, wall_time) + (b"\x10" + varint(step) if step else b"")
    return head + b"\x2a" + varint(len(summary)) + summary


def varint(n: int) -> bytes:
    """A non-negative int in protobuf's base-128 varint encoding."""
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _masked_crc(data: bytes) -> bytes:
    """TFRecord's masked CRC32C of `data`, little-endian."""
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def remove_events(run_dir: Path) -> None:
    """Delete the run's event files: a run started over, its first attempt left no checkpoint."""
    for path in Path(run_dir).glob("events.out.tfevents.*"):
        path.unlink()


def truncate_after(run_dir: Path, step: int) -> None:
    """Drop every event after `step` from the run's event files, atomically, file by file.

    A run resumed from a checkpoint older than its last logged step (after a SIGKILL) would
    otherwise repeat steps for readers that ignore TensorBoard's purge event (tbparse, pandas
    exports); a record cut short by the kill is dropped too.
    """
    from kernellab.rundir import atomic_write

    for path in sorted(Path(run_dir).glob("events.out.tfevents.*")):
        data = path.read_bytes()
        records = list(_records(data))
        kept = [record for record, _ in records if Event.FromString(record).step <= step]
        complete = records[-1][1] if records else 0
        if complete == len(data) and len(kept) == len(records):
            continue  # nothing after `step`, nothing cut short
        atomic_write(path, b"".join(_framed(record) for record in kept))


def scalar_curve(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of `tag` in a run's event files (see scalar_curves)."""
    return scalar_curves(run_dir, (tag,))[tag]


def scalar_curves(run_dir: Path, tags: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """(step, value) of each of `tags` in a run's event files, read straight from the records:
    what a sweep report needs, at C-CRC speed (TensorBoard's loader checks CRCs in pure Python,
    ~50 ms a run). Steps a resumed session repeated (before its purge) keep their last value."""
    curves: dict[str, dict[int, float]] = {tag: {} for tag in tags}
    for path in sorted(Path(run_dir).glob("events.out.tfevents.*")):
        for record, _ in _records(path.read_bytes()):
            event = Event.FromString(record)
            for value in event.summary.value:
                curve = curves.get(value.tag)
                if curve is not None:
                    curve[event.step] = value.simple_value
    return {tag: sorted(curve.items()) for tag, curve in curves.items()}


def event_file_bytes(summaries: Sequence[tuple[int, Summary]]) -> bytes:
    """A whole event file holding `(step, summary)` events, for writing in one go."""
    now = time.time()
    head = Event(wall_time=now, file_version="brain.Event:2").SerializeToString()
    events = [summary_event(now, step, summary.SerializeToString()) for step, summary in summaries]
    return b"".join(_framed(event) for event in [head, *events])


def _records(data: bytes) -> Iterator[tuple[bytes, int]]:
    """(payload, end offset) of each complete, intact record; stops at the first that isn't."""
    offset = 0
    while offset + 12 <= len(data):
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        end = offset + 12 + length + 4
        payload = data[offset + 12 : offset + 12 + length]
        if end > len(data) or data[offset + 8 : offset + 12] != _masked_crc(header):
            return
        if data[end - 4 : end] != _masked_crc(payload):
            return
        yield payload, end
        offset = end


def _framed(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return header + _masked_crc(header) + payload + _masked_crc(payload)
