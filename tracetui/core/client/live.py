"""Live views: subscribe to a channel and receive its records as they are committed.

``LiveWatch(path)`` opens its own netlink socket (live data never shares a socket with control
replies), subscribes to ``trace/channel`` and runs one reader thread that ``recv_into``s a
reusable buffer, joins the parts of each packet, reads it with the packet reader of trace files
and the marker table (``read markers`` at subscription, then the definitions the daemon pushes
on this socket), and hands one ``LiveBatch`` per packet to a callback.  ``watch(path)`` is
the asyncio face for the console: an async iterator of batches bridged from the thread, one
loop wake-up per packet, never one per record.

Losses are visible, never hidden: ``LiveBatch.dropped_batches`` counts packets this view did
not get, whether the daemon could not send them (this socket was full: the daemon never waits
for a slow subscriber), a part went missing, or the consumer of ``watch`` fell behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Protocol

from tracetui.core.client.connection import _ANC_SIZE, Client
from tracetui.core.errors import TraceError
from tracetui.core.model.clock import ClockCalibration, TraceClock
from tracetui.core.model.markers import Marker, marker_table
from tracetui.core.model.packet import PACKET_HEADER, PACKET_HEADER_SIZE
from tracetui.core.trace.packets import (
    CorruptRecord,
    Event,
    EventDecoder,
    Item,
    PacketReader,
    Stream,
)
from tracetui.core.wire import protocol as P
from tracetui.core.wire import recording as R

_TSC = attrgetter("tsc")
RCVBUF = 8 << 20  # the bounded queue the daemon fills for this subscriber
QUEUE_BATCHES = 1024  # batches waiting for an async consumer before they count as dropped


@dataclass
class LiveBatch:
    """One packet of one buffer, read: its losses and events in order, and dropped batches.

    ``items`` are what the packet reader made of the packet (``Loss`` rows for records the ring
    discarded or could not take, and for packets that never reached this view, then the
    events); ``events`` are only the events.  ``dropped_batches`` counts, since the
    subscription began, the packets this view did not get.
    """

    path: str
    cpu: int
    events: list[Event]
    dropped_batches: int = 0
    errors: list[str] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)


class LiveWatch(Client):
    """One live subscription, read by a background thread."""

    def __init__(
        self,
        path: str,
        on_batch: Callable[[LiveBatch], None],
        runtime_dir: str | os.PathLike[str] | None = None,
        timeout: float = 2.0,
        rcvbuf: int = RCVBUF,
    ) -> None:
        super().__init__(runtime_dir, timeout, name="live")
        self.path = path.strip("/")
        self._on_batch = on_batch
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < rcvbuf:
            with contextlib.suppress(OSError):  # past rmem_max: root may force it
                self.sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE
        seq = self.next_seq()
        try:
            attrs = self._request(R.encode_live_subscribe(seq, self.path), seq)[0]
            cal = ClockCalibration(**json.loads(attrs.str(R.TT_A_CLOCK)))
            self.markers = marker_table(self.read("markers"))
        except BaseException:
            self.sock.close()
            raise
        self.clock = TraceClock.from_calibration(cal)
        channel = self.path.split("/")[-1]
        self._decoders: dict[int, EventDecoder] = {}
        self._readers: dict[int, PacketReader] = {}
        self._marker_errors: list[str] = []
        self._stream = lambda cpu: Stream(channel, cpu, "", self.clock)
        self._parts: dict[int, tuple[int, list[bytes]]] = {}  # cpu -> (seq, parts so far)
        self.daemon_dropped = 0
        self.local_dropped = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"live-{self.path}", daemon=True)

    def start(self) -> LiveWatch:
        self.sock.settimeout(0.2)
        self._thread.start()
        return self

    @property
    def dropped(self) -> int:
        return self.daemon_dropped + self.local_dropped

    def close(self) -> None:
        self._stop = True
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(2)
        with contextlib.suppress(OSError):
            self.sock.send(R.encode_live_subscribe(self.next_seq(), self.path, subscribe=False))
        super().close()

    # -- the reader thread --------------------------------------------------------------------

    def _run(self) -> None:
        view = memoryview(self._buf)
        while not self._stop:
            try:
                n, anc, _flags, _addr = self.sock.recvmsg_into([self._buf], _ANC_SIZE)
            except TimeoutError:
                continue
            except OSError:
                return  # socket closed or the daemon is gone
            try:
                self.check_sender(anc)
            except TraceError:
                continue
            for header, payload in P.iter_messages(view[:n]):
                if header.type == R.TT_LIVE_BATCH:
                    self._part(R.decode_live_part(P.Attrs.parse(payload)))
                elif header.type == R.TT_LIVE_MARKER:
                    self._marker(*R.decode_live_marker(P.Attrs.parse(payload)))

    def _marker(self, mid: int, name: str, fmt: str) -> None:
        """A marker the daemon registered since we subscribed (pushed on this socket)."""
        try:
            self.markers[mid] = Marker.make(mid, name, fmt)
        except ValueError as e:
            self._marker_errors.append(f"marker {mid} {name}: {e}")
            return
        for d in self._decoders.values():
            d.update(self.markers)

    def _part(self, part: R.LivePart) -> None:
        self.daemon_dropped = part.dropped
        if part.parts == 0:  # a drop notice: packets lost and no packet after them (yet)
            self._on_batch(LiveBatch(self.path, part.cpu, [], self.dropped, [], []))
            return
        have = self._parts.get(part.cpu)
        if part.part == 0:
            if have is not None:
                self.local_dropped += 1  # the previous packet never completed
            have = (part.seq, [])
        elif have is None or have[0] != part.seq or len(have[1]) != part.part:
            if have is not None:
                self.local_dropped += 1
            self._parts.pop(part.cpu, None)
            return
        have[1].append(part.data)
        if len(have[1]) < part.parts:
            self._parts[part.cpu] = have
            return
        self._parts.pop(part.cpu, None)
        packet = b"".join(have[1])
        self._on_batch(self._decode(part.cpu, packet))

    def _decode(self, cpu: int, packet: bytes) -> LiveBatch:
        """Read one whole packet with the packet reader that reads trace files."""
        reader = self._readers.get(cpu)
        if reader is None:
            dec = self._decoders[cpu] = EventDecoder(self.markers, self._stream(cpu))
            # Events and losses in one list, in packet order; the first packet's discard
            # count is what happened before this view subscribed.
            reader = self._readers[cpu] = PacketReader(dec, _TSC, 1 << 30, None, False)
        errors: list[str] = []
        items: list[Item] = []
        if len(packet) < PACKET_HEADER_SIZE:
            errors.append(f"a live packet of {len(packet)} bytes has no header")
        else:
            h = PACKET_HEADER.unpack_from(packet)
            # Markers registered later arrive on this socket before their events (_marker).
            try:
                items = reader.items(h, packet)
            except CorruptRecord as e:
                errors.append(f"live packet of {self.path} cpu {cpu}: {e}")
        errors += self._marker_errors
        self._marker_errors.clear()
        events = [i for i in items if isinstance(i, Event)]
        return LiveBatch(self.path, cpu, events, self.dropped, errors, items)


class _Watch(Protocol):
    """What ``bridge`` needs of a watcher thread (LiveWatch, RemoteWatch)."""

    local_dropped: int

    @property
    def dropped(self) -> int: ...

    def start(self) -> object: ...

    def close(self) -> None: ...


async def bridge(
    open_watch: Callable[[Callable[[LiveBatch], None], Callable[..., None]], _Watch],
    queue: int = QUEUE_BATCHES,
) -> AsyncIterator[LiveBatch]:
    """The asyncio face of a watcher thread: one loop wake-up per batch, at most QUEUE batches
    waiting (more are counted in ``dropped_batches``, never waited for); ends when the watcher
    calls its end callback, raising the watcher's ``failure`` if it has one."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[LiveBatch | None] = asyncio.Queue()  # bounded by put(); the end always fits
    w: _Watch | None = None

    def put(batch: LiveBatch) -> None:
        if q.qsize() >= queue:
            assert w is not None
            w.local_dropped += 1  # the consumer fell behind: counted, not waited for
            return
        batch.dropped_batches = w.dropped if w is not None else 0
        q.put_nowait(batch)

    def on_batch(batch: LiveBatch) -> None:
        loop.call_soon_threadsafe(put, batch)

    def on_end(*_: object) -> None:
        loop.call_soon_threadsafe(q.put_nowait, None)

    w = watcher = await asyncio.to_thread(open_watch, on_batch, on_end)
    watcher.start()
    try:
        while (batch := await q.get()) is not None:
            yield batch
        failure = getattr(watcher, "failure", None)
        if failure is not None:
            raise failure
    finally:
        await asyncio.to_thread(watcher.close)


async def watch(
    path: str, runtime_dir: str | os.PathLike[str] | None = None, queue: int = QUEUE_BATCHES
) -> AsyncIterator[LiveBatch]:
    """Async iterator of live batches of ``trace/channel`` (for the console)."""
    async for batch in bridge(lambda on_batch, _end: LiveWatch(path, on_batch, runtime_dir), queue):
        yield batch
