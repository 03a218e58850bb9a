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
        self.write(Event(wall_time=time.time(), step=step, summary=summary))

    def write(self, event: Event) -> None:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self.file.write(header + _masked_crc(header) + data + _masked_crc(data))

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _masked_crc(data: bytes) -> bytes:
    """TFRecord's masked CRC32C of `data`, little-endian."""
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)
