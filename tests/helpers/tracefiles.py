"""Test-side recording without a daemon: real channels, a TraceWriter, the consumer loop.

Shared by the CTF and reader tests, which need traces whose every packet comes from the real
ring buffers but want to control exactly which buffer each event goes to.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from tracetui.core import ring
from tracetui.core.model.markers import Marker
from tracetui.core.trace.writer import TraceWriter


class TraceBuilder:
    """Real channels, a TraceWriter, and the consumer loop of the daemon."""

    def __init__(self, path: Path, markers: list[Marker]) -> None:
        self.path = path
        self.uuid = uuid.uuid4().bytes
        self.cal = ring.calibrate(0.005)
        self.writer = TraceWriter(path, uuid=self.uuid, calibration=self.cal, markers=markers)
        self.markers = {m.id: m for m in markers}
        self.channels: dict[str, ring.Channel] = {}

    def channel(
        self, name: str, *, nbuf: int = 2, is_global: bool = False, flight: bool = False,
        subbuf: int = 4096, n_subbuf: int = 4,
    ) -> ring.Channel:  # fmt: skip
        shm = f"/tt-test-trace-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        ch = ring.Channel.create(
            shm, subbuf, n_subbuf, nbuf=nbuf, is_global=is_global, flight=flight, uuid=self.uuid
        )
        ch.unlink()  # the mapping lives on; nothing is left in /dev/shm
        self.channels[name] = ch
        return ch

    def emit(self, channel: str, marker: Marker, *args: Any, buffer: int | None = None) -> bool:
        if marker.id not in self.markers:
            self.writer.add_marker(marker)  # registered later, as the daemon does
            self.markers[marker.id] = marker
        return self.channels[channel].write(marker.id, marker.format.encode(*args), buffer)

    def drain(self, *, flush: bool = False) -> None:
        """Write every complete packet; with FLUSH, close the partial ones first."""
        for name, ch in self.channels.items():
            if flush:
                ch.flush()
            for b in range(ch.nbuf):
                while (p := ch.get_packet(b)) is not None:
                    self.writer.write_packet(name, b, p)
                    ch.put_packet(b)

    def finish(self) -> None:
        self.drain(flush=True)
        self.close()

    def close(self) -> None:
        for ch in self.channels.values():
            ch.close()
        self.channels.clear()
        self.writer.close()
