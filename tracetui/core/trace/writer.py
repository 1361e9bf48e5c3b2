"""Writing a trace directory: the metadata file, then packets appended to stream files.

A tracetui trace directory holds ``metadata`` (TSDL, :mod:`tracetui.core.trace.metadata`) and
one stream file ``<channel>_<cpu>`` per channel and buffer: the packets exactly as the ring
produced them (header and context written by the ring, padding included).  The daemon's
recorder is the only writer; tests and benchmarks build traces with it too.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Iterable

from tracetui.core.model.clock import Calibration, TraceClock
from tracetui.core.model.markers import Marker
from tracetui.core.model.packet import MAGIC, PACKET_HEADER_SIZE, PacketHeader

# PACKET_HEADER: the recorder reads it through this module (until it is split, phase B).
from tracetui.core.model.packet import PACKET_HEADER as PACKET_HEADER
from tracetui.core.trace.metadata import (
    METADATA,
    parse_metadata,
    parse_stream_file_name,
    render_event,
    render_metadata,
    stream_file_name,
)

__all__ = ["OutputError", "TraceWriter"]


class OutputError(OSError):
    """The trace output directory cannot be written; ``errno`` and one sentence."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TraceWriter:
    """Writes one trace directory: metadata, then packets into stream files.

    ``add_marker`` must be called for an id before a packet holding it is
    written (the daemon registers markers before handing out target lists),
    so the metadata on disk always covers the streams.  ``write_packet``
    skips a packet whose sequence number was already written for its
    stream, so repeated flight-recorder snapshots append only new packets.

    Opening a directory that already holds a trace with the same uuid
    resumes it (a trace stopped and started again); one with another trace
    is refused.  Writes go straight to the files (no Python buffering): a
    packet is on its way to disk when ``write_packet`` returns.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        uuid: bytes,
        calibration: Calibration,
        markers: Iterable[Marker] = (),
        trace_name: str = "",
        hostname: str | None = None,
    ) -> None:
        if len(uuid) != 16:
            raise ValueError("a trace uuid is 16 bytes")
        self.path = os.fspath(path)
        self.uuid = uuid
        self._meta_fd = -1
        self.markers: dict[int, Marker] = {}
        self.clock: TraceClock
        markers = list(markers)
        self._fds: dict[tuple[str, int], int] = {}
        self._last_seq: dict[tuple[str, int], int] = {}
        self.bytes_written = 0
        self.packets_written = 0
        meta_path = os.path.join(self.path, METADATA)
        try:
            os.makedirs(self.path, mode=0o750, exist_ok=True)
        except OSError as e:
            raise OutputError(
                e.errno or _errno.EIO,
                f"cannot create trace directory {self.path}: {e.strerror or e}",
            ) from None
        if os.path.exists(meta_path):
            self._resume(meta_path)
        else:
            if any(not n.startswith(".") for n in os.listdir(self.path)):
                raise OutputError(
                    _errno.EEXIST,
                    f"{self.path} is not empty and holds no trace: choose another output",
                )
            self.clock = TraceClock.from_calibration(calibration)
            for m in markers:
                self._check_new(m)
                self.markers[m.id] = m
            text = render_metadata(
                uuid,
                self.clock,
                self.markers.values(),
                hostname=hostname,
                trace_name=trace_name,
                freq_hz=calibration.freq_hz,
            )
            # Whole file then rename: a reader never sees half a header.
            tmp = meta_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, meta_path)
        self._meta_fd = os.open(meta_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        for m in markers:  # on resume, markers new since the last run
            self.add_marker(m)

    def _resume(self, meta_path: str) -> None:
        with open(meta_path, encoding="utf-8", errors="replace") as f:
            meta = parse_metadata(f.read(), meta_path)
        if meta.uuid != self.uuid:
            raise OutputError(
                _errno.EEXIST, f"{self.path} already holds another trace: choose another output"
            )
        self.clock = meta.clock
        self.markers = dict(meta.markers)
        for name in os.listdir(self.path):
            key = parse_stream_file_name(name)
            if key is not None:
                last = _last_seq_in(os.path.join(self.path, name))
                if last is not None:
                    self._last_seq[key] = last

    def _check_new(self, m: Marker) -> bool:
        old = self.markers.get(m.id)
        if old is None:
            return True
        if old != m:
            raise ValueError(
                f"marker id {m.id} is already {old.name!r} ({old.format.text!r}) in this trace"
            )
        return False

    def add_marker(self, marker: Marker) -> bool:
        """Declare a marker; appends its event block.  False if already declared."""
        if not self._check_new(marker):
            return False
        _write_all(self._meta_fd, render_event(marker).encode())
        self.markers[marker.id] = marker
        return True

    def write_packet(self, channel: str, cpu: int, packet: bytes | bytearray | memoryview) -> bool:
        """Append one packet to ``<channel>_<cpu>``; False if it was written already."""
        if len(packet) < PACKET_HEADER_SIZE:
            raise ValueError(f"a packet is at least {PACKET_HEADER_SIZE} bytes")
        h = PacketHeader.parse(packet)
        if h.magic != MAGIC or h.packet_size != len(packet) or h.content_size > h.packet_size:
            raise ValueError(
                f"not a packet of this backend (magic {h.magic:#x}, size {len(packet)} bytes, "
                f"packet_size {h.packet_size * 8} bits)"
            )
        if h.uuid != self.uuid:
            raise ValueError("packet belongs to another trace (uuid mismatch)")
        key = (channel, cpu)
        seq = h.packet_seq_num
        last = self._last_seq.get(key)
        if last is not None and seq <= last:
            return False
        fd = self._fds.get(key)
        if fd is None:
            name = os.path.join(self.path, stream_file_name(channel, cpu))
            fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self._fds[key] = fd
        _write_all(fd, packet)
        self._last_seq[key] = seq
        self.bytes_written += len(packet)
        self.packets_written += 1
        return True

    def sync(self) -> None:
        """fsync every file (on stop: the trace is then safe on disk)."""
        for fd in (*self._fds.values(), self._meta_fd):
            if fd >= 0:
                os.fsync(fd)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._meta_fd >= 0:
            os.close(self._meta_fd)
            self._meta_fd = -1

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _last_seq_in(path: str) -> int | None:
    """Sequence number of the last whole packet of a stream file."""
    last = None
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        off = 0
        while off + PACKET_HEADER_SIZE <= size:
            f.seek(off)
            h = PacketHeader.parse(f.read(PACKET_HEADER_SIZE))
            if h.magic != MAGIC or h.packet_size <= 0 or off + h.packet_size > size:
                break
            last = h.packet_seq_num
            off += h.packet_size
    return last
