"""A deterministic recorded trace for the explorer's snapshot tests and screenshots.

``write_demo_trace(path)`` writes a real trace directory (``TraceWriter``: metadata and stream
files of CTF packets, the header laid out by core/model/packet.py) whose every timestamp, value
and packet boundary is fixed, so SVG snapshots do not depend on the clock or the machine: two
channels (``main`` on CPUs 0 and 1, ``irq`` on one global buffer), the demo markers of
tracetui.widgets.fixtures, packets of 4 KiB whose time ranges overlap across streams, and
losses both ways a packet header reports them (an ``events_discarded`` rise and a
``packet_seq_num`` gap).  Tests that need traces from the real ring buffers build them with
tests/helpers/tracefiles.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tracetui.core.model.markers import Marker
from tracetui.core.model.packet import EVENT_HEADER, MAGIC, PACKET_HEADER, PACKET_HEADER_SIZE
from tracetui.core.trace.writer import TraceWriter
from tracetui.widgets.fixtures import MARKERS

__all__ = ["DEMO_UUID", "FixedCalibration", "write_demo_trace"]

DEMO_UUID = bytes(range(16))
PACKET = 4096
_COMMS = ("bash", "make", "cc1", "python3", "kworker/0:1", "sshd", "ld", "as")


@dataclass(frozen=True)
class FixedCalibration:
    """1 GHz ticks; tick 0 is 2024-01-01 00:00:00 UTC and CLOCK_MONOTONIC 1000 s."""

    freq_hz: float = 1e9
    tsc0: int = 0
    mono_ns0: int = 10**12
    real_ns0: int = 1_704_067_200 * 10**9


class _Stream:
    def __init__(self, writer: TraceWriter, channel: str, cpu: int) -> None:
        self.writer, self.channel, self.cpu = writer, channel, cpu
        self.records: list[bytes] = []
        self.size = PACKET_HEADER_SIZE
        self.begin = self.end = 0
        self.seq = 0
        self.discarded = 0

    def add(self, marker: Marker, tsc: int, *values: object) -> None:
        rec = EVENT_HEADER.pack(marker.id, tsc) + marker.format.encode(*values)
        if self.size + len(rec) > PACKET:
            self.flush(tsc)
        if not self.records:
            self.begin = tsc
        self.records.append(rec)
        self.size += len(rec)
        self.end = tsc

    def flush(self, end: int | None = None) -> None:
        if not self.records:
            return
        end = self.end if end is None else max(self.end, end - 1)
        body = b"".join(self.records)
        content = PACKET_HEADER_SIZE + len(body)
        head = PACKET_HEADER.pack(
            MAGIC, DEMO_UUID, 0, self.begin, end, content * 8, PACKET * 8, self.seq,
            self.discarded, self.cpu,
        )  # fmt: skip
        self.writer.write_packet(self.channel, self.cpu, head + body + bytes(PACKET - content))
        self.records, self.size = [], PACKET_HEADER_SIZE
        self.seq += 1


def write_demo_trace(path: str | os.PathLike[str], n: int = 6000) -> Path:
    """Write the demo trace of N events into PATH (a new directory); returns PATH."""
    out = Path(path)
    m = {mk.name: mk for mk in MARKERS}
    with TraceWriter(out, uuid=DEMO_UUID, calibration=FixedCalibration(), markers=MARKERS,
                     trace_name="demo", hostname="demo-host") as w:  # fmt: skip
        streams = {
            ("main", 0): _Stream(w, "main", 0),
            ("main", 1): _Stream(w, "main", 1),
            ("irq", 0): _Stream(w, "irq", 0),
        }
        tsc = 1_000_000
        for i in range(n):
            tsc += 9_731 + (i * 37) % 1_000
            if i % 89 == 0:
                s = streams[("irq", 0)]
                s.add(m["irq_handler"], tsc, 16 + i % 8, 0xFFFF8000_1234_0000 + i)
                continue
            s = streams[("main", (i * 7 // 5) % 2)]
            if i % 41 == 0:
                pid = 2000 + i % 300
                s.add(m["proc_exec"], tsc, pid, f"/usr/bin/{_COMMS[i % len(_COMMS)]}")
            elif i % 53 == 0:
                s.add(m["proc_fork"], tsc, 1000 + i % 300, 2000 + i % 300)
            elif i % 97 == 0:
                s.add(m["mem_counters"], tsc, 3000 + i, 1200 + i // 3, 9000 + i)
            elif i % 5 == 0:
                s.add(m["sched_wakeup"], tsc, 100 + i % 400, (i + 1) % 2)
            else:
                prev, nxt = 100 + i % 400, 100 + (i * 13) % 400
                s.add(m["sched_switch"], tsc, prev, nxt, _COMMS[prev % 8], _COMMS[nxt % 8])
            if i == n // 3:
                # The ring discarded events on CPU 1: its next packet carries the count.
                s1 = streams[("main", 1)]
                s1.flush(tsc)
                s1.discarded += 1_532
            if i == 2 * n // 3:
                # A whole packet of CPU 0 never reached the file (a sequence gap).
                s0 = streams[("main", 0)]
                s0.flush(tsc)
                s0.seq += 1
        for s in streams.values():
            s.flush()
    return out
