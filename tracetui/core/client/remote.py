"""Remote live views: read a session live from an lttng-relayd (tracetui as an lttng-live viewer).

``RemoteWatch("net://HOST[:PORT]/host/HOSTNAME/SESSION", on_batch)`` connects to the relayd's
live port (core/wire/lttng_live.py), attaches every relay session of that host and name (LTTng
makes one per buffer domain; tracetui daemons one per trace) and runs one reader thread that
asks each stream for its next packet and hands one ``LiveBatch`` per packet to a callback, the
same shape as local live views (core/client/live.py), so the console's LiveView and ``tracetui
watch`` take both.  ``watch_remote(url)`` is the asyncio face; ``list_sessions(url)`` lists what
a relayd serves.  Read-only: a viewer never changes a session.

Decoding reuses the trace readers, chosen by each trace's metadata: tracetui's own (``tracer_name
= "tracetui"``) with the packet reader of trace files (core/trace/packets.py: Events with their
marker format), any other CTF 1.8 producer (LTTng-UST) with core/trace/ctf.py's decoders compiled
from the TSDL (plain or packetized), applied to the packet's bytes.  Metadata is fetched before
the first packet and again whenever the relayd flags new metadata; new streams (a CPU's first
packet, a new per-pid buffer) when it flags new streams or while a session has none.

Losses are rows, never hidden: each stream keeps the packet reader's loss tracker, so a rise of
the packet context's ``events_discarded`` and a gap of ``packet_seq_num`` become ``Loss`` items
before the packet's events (from the beginning, the first packet's discard count too; attached
"from now" it is history).  ``dropped_batches`` counts batches an async consumer did not take.

The watch ends when every attached session has ended (the producer closed it: its streams
hang up once read) or on ``close()``; an error on the way is kept in ``error`` (one sentence).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from tracetui.core.client.live import QUEUE_BATCHES, LiveBatch, bridge
from tracetui.core.model.packet import PACKET_HEADER, PACKET_HEADER_SIZE
from tracetui.core.trace.ctf import CTFTrace, _Sub
from tracetui.core.trace.metadata import TraceFormatError, parse_metadata, parse_stream_file_name
from tracetui.core.trace.packets import (
    CorruptRecord,
    EventDecoder,
    Item,
    Loss,
    LossTracker,
    PacketReader,
    Stream,
)
from tracetui.core.trace.tsdl import metadata_text, parse_tsdl
from tracetui.core.wire import lttng_live as L
from tracetui.core.wire.lttng_live import LiveError, LiveUrl, SessionInfo, StreamInfo

__all__ = [
    "RemoteWatch",
    "list_sessions",
    "parse_live_url",
    "watch_remote",
]

parse_live_url = L.parse_live_url
_TSC = attrgetter("tsc")
_TRACETUI = re.compile(rb'tracer_name\s*=\s*"tracetui"\s*;')
POLL_S = 0.01  # how long the reader waits when no stream had a packet
NEW_STREAMS_S = 0.2  # how often sessions with no data stream are asked for new ones


def _url(url: str | LiveUrl) -> LiveUrl:
    return url if isinstance(url, LiveUrl) else L.parse_live_url(url)


def list_sessions(url: str | LiveUrl, timeout: float = 5.0) -> list[SessionInfo]:
    """The sessions a relayd serves live (LiveError / LiveUnreachable, one sentence)."""
    with L.LiveClient(_url(url), timeout) as c:
        c.connect()
        return c.list_sessions()


class _CTFPackets(CTFTrace):
    """core/trace/ctf.py's decoders applied to packets as they arrive (no files)."""

    def __init__(self, text: str) -> None:  # no super().__init__: there is no directory
        self.path = ""
        md = parse_tsdl(text)
        self.sub = _Sub("", md)
        self._subs = [self.sub]
        self._env = dict(md.env)
        self._stream_sub: dict[str, _Sub] = {}
        self._index: dict[str, Any] = {}
        self._data: dict[str, bytes] = {}
        self.streams: list[Stream] = []

    def decode_packet(
        self,
        key: str,
        channel: str,
        packet: bytes,
        tracker: LossTracker,
        streams: dict[str, Stream],
    ) -> tuple[int, list[Item]]:
        """(cpu, items) of one whole packet: its losses, then its events."""
        (pk,) = self._index_bytes(self.sub, packet, channel)[:1] or (None,)
        if pk is None:
            return 0, []
        stream = streams.get(key)
        if stream is None or stream.cpu != pk.cpu:
            stream = streams[key] = Stream(channel, pk.cpu, key, self.sub.clock)
        self._stream_sub[key] = self.sub
        self._data[key] = packet
        info = pk.info
        raw: list[Any] = []
        seq = info.seq if info.seq is not None else tracker.prev_seq + 1
        tracker.losses(pk.begin_tsc, seq, info.events_discarded, self, raw)  # type: ignore[arg-type]
        out: list[Any] = [Loss(t, n, stream, u) for t, n, u in raw]
        try:
            self._decode(stream, pk, out)
        finally:
            self._data.pop(key, None)
        return pk.cpu, out


@dataclass
class _Trace:
    """One CTF trace of an attached session: a metadata stream and the streams using it."""

    session: SessionInfo
    metadata_id: int | None = None
    raw: bytearray = field(default_factory=bytearray)
    markers: Any = None  # tracetui: the marker table; CTF: _CTFPackets
    clock: Any = None
    tracetui: bool | None = None
    decoders: list[EventDecoder] = field(default_factory=list)


@dataclass
class _Stream:
    info: StreamInfo
    trace: _Trace
    channel: str
    cpu: int
    reader: PacketReader | None = None
    tracker: LossTracker | None = None
    streams: dict[str, Stream] = field(default_factory=dict)
    packets: int = 0


class RemoteWatch:
    """One live view of one relay session (every relay session of its host and name)."""

    def __init__(
        self,
        url: str | LiveUrl,
        on_batch: Callable[[LiveBatch], None],
        *,
        on_end: Callable[[RemoteWatch], None] | None = None,
        from_beginning: bool = True,
        timeout: float = 5.0,
        poll_s: float = POLL_S,
    ) -> None:
        self.url = _url(url)
        if self.url.hostname is None or self.url.session is None:
            raise LiveError(
                f"live URL {str(self.url)!r} names no session (net://HOST[:PORT]/host/HOSTNAME/"
                "SESSION; without a path, `tracetui watch` lists the sessions)",
                errno.EINVAL,
            )
        self._on_batch = on_batch
        self._on_end = on_end
        self.poll_s = poll_s
        self.from_beginning = from_beginning
        self.error = ""
        self.failure: LiveError | None = None  # what ended the watch early (error's exception)
        self.ended = False
        self.local_dropped = 0
        self.packets = 0
        # The last protocol answers that changed something (streams, hang-ups): for diagnosis.
        self.trail: collections.deque[str] = collections.deque(maxlen=64)
        self.statuses: collections.Counter[int] = collections.Counter()  # next-index answers
        self._stop = False
        self._streams: dict[int, _Stream] = {}
        self._traces: dict[int, _Trace] = {}
        self._live_sessions: dict[int, SessionInfo] = {}
        self.client = L.LiveClient(self.url, timeout).connect()
        try:
            sessions = self.client.list_sessions()
            self.sessions = [
                s for s in sessions if (s.hostname, s.name) == (self.url.hostname, self.url.session)
            ]
            if not self.sessions:
                have = ", ".join(sorted(f"{s.hostname}/{s.name}" for s in sessions)) or "none"
                raise LiveError(
                    f"relayd at {self.url.address} has no live session {self.url.session!r} of "
                    f"host {self.url.hostname!r} (it has: {have})",
                    errno.ENOENT,
                )
            self.client.create_viewer_session()
            seek = L.SEEK_BEGINNING if from_beginning else L.SEEK_LAST
            for s in self.sessions:
                self._add_streams(s, self.client.attach(s, seek))
                self._live_sessions[s.id] = s
            for t in self._traces.values():
                self._fetch_metadata(t)
        except BaseException:
            self.client.close()
            raise
        self.live_timer_us = max(s.live_timer_us for s in self.sessions)
        self._thread = threading.Thread(target=self._run, name=f"remote-{self.url}", daemon=True)

    def start(self) -> RemoteWatch:
        self._thread.start()
        return self

    @property
    def dropped(self) -> int:
        return self.local_dropped

    def close(self) -> None:
        self._stop = True
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5)
        if not self._thread.is_alive():
            with contextlib.suppress(LiveError):
                for sid in list(self._live_sessions):
                    self.client.detach(sid)
            self.client.close()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # -- streams and metadata -------------------------------------------------------------------

    def _add_streams(self, session: SessionInfo, streams: list[StreamInfo]) -> None:
        if streams:
            self.trail.append(f"streams {[(s.id, s.channel) for s in streams]}")
        for s in streams:
            t = self._traces.get(s.ctf_trace_id)
            if t is None:
                t = self._traces[s.ctf_trace_id] = _Trace(session)
            if s.metadata:
                t.metadata_id = s.id
                continue
            if s.id in self._streams:
                continue
            parsed = parse_stream_file_name(s.channel)
            channel, cpu = parsed if parsed else (s.channel, 0)
            self._streams[s.id] = _Stream(s, t, channel, cpu)

    def _fetch_metadata(self, t: _Trace) -> None:
        if t.metadata_id is None:
            return
        more, _still = self.client.all_metadata(t.metadata_id)
        if not more:
            return
        t.raw += more
        if t.tracetui is None:
            t.tracetui = _TRACETUI.search(bytes(t.raw[: 1 << 16])) is not None
        where = f"the metadata of {t.session.hostname}/{t.session.name}"
        try:
            text = metadata_text(bytes(t.raw), "the live metadata")
            if t.tracetui:
                md = parse_metadata(text, where)
                t.markers, t.clock = md.markers, md.clock
                for d in t.decoders:
                    d.update(md.markers)
            else:
                t.markers = _CTFPackets(text)
        except TraceFormatError as e:
            if t.markers is None:
                raise LiveError(f"{where} cannot be read: {e}") from None
            # An append cut mid-block: the decoders keep what they had until the rest arrives.

    def _new_streams(self) -> None:
        for sid, s in list(self._live_sessions.items()):
            status, streams = self.client.new_streams(sid)
            if streams:
                self._add_streams(s, streams)
                for t in {st.ctf_trace_id for st in streams}:
                    self._fetch_metadata(self._traces[t])
            if status == L.NEW_STREAMS_HUP:
                self.trail.append(f"session {sid} hung up")
                self._live_sessions.pop(sid, None)

    # -- the reader thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            last_new = 0.0
            while not self._stop:
                progressed = False
                for sid in list(self._streams):
                    if self._stop:
                        break
                    progressed |= self._step(sid)
                now = time.monotonic()
                if not self._streams or now - last_new >= NEW_STREAMS_S:
                    last_new = now
                    self._new_streams()
                if not self._streams and not self._live_sessions:
                    self.ended = True
                    return
                if not progressed:
                    time.sleep(self.poll_s)
        except LiveError as e:
            self.failure = e
            self.error = str(e)
        except Exception as e:  # a decoder or a relayd answering nonsense: one sentence
            self.error = f"reading {self.url}: {type(e).__name__}: {e}"
            self.failure = LiveError(self.error)
        finally:
            if self._on_end is not None:
                self._on_end(self)

    def _step(self, sid: int) -> bool:
        st = self._streams[sid]
        idx = self.client.next_index(sid)
        self.statuses[idx.status] += 1
        if idx.flags & L.FLAG_NEW_STREAM:
            self._new_streams()
        if idx.flags & L.FLAG_NEW_METADATA:
            self._fetch_metadata(st.trace)
        if idx.status == L.INDEX_OK:
            data = self._packet(st, idx)
            if data is not None:
                self._deliver(st, data, idx.content_size // 8 or len(data))
            return True
        if idx.status in (L.INDEX_HUP, L.INDEX_EOF, L.INDEX_ERR):
            self.trail.append(f"stream {sid} index status {idx.status}")
        if idx.status in (L.INDEX_HUP, L.INDEX_EOF):
            del self._streams[sid]
        elif idx.status == L.INDEX_ERR:
            del self._streams[sid]
            self.error = (
                f"relayd at {self.url.address} could not read the index of stream "
                f"{st.info.path}/{st.info.channel}"
            )
        return False  # RETRY, INACTIVE (a beacon: nothing new before its timestamp)

    def _packet(self, st: _Stream, idx: L.Index) -> bytes | None:
        for _ in range(50):
            status, flags, data = self.client.get_packet(
                st.info.id, idx.offset, idx.packet_size // 8
            )
            if status == L.PACKET_OK:
                return data
            if flags & L.FLAG_NEW_METADATA:
                self._fetch_metadata(st.trace)
            if flags & L.FLAG_NEW_STREAM:
                self._new_streams()
            if status == L.PACKET_EOF:
                return None
            if status == L.PACKET_ERR and not flags:
                raise LiveError(
                    f"relayd at {self.url.address} could not read a packet of stream "
                    f"{st.info.path}/{st.info.channel}"
                )
            time.sleep(self.poll_s)
        raise LiveError(
            f"relayd at {self.url.address} kept refusing a packet of {st.info.path}/"
            f"{st.info.channel} (metadata never arrived?)"
        )

    def _deliver(self, st: _Stream, packet: bytes, content: int) -> None:
        t = st.trace
        errors: list[str] = []
        items: list[Item] = []
        cpu = st.cpu
        name = f"{st.info.path}/{st.info.channel}"
        if t.markers is None:
            self._fetch_metadata(t)
        if t.markers is None:
            errors.append(f"a packet of {name} arrived before any metadata: skipped")
        elif t.tracetui:
            if st.reader is None:
                dec = EventDecoder(t.markers, Stream(st.channel, st.cpu, "", t.clock))
                t.decoders.append(dec)
                st.reader = PacketReader(dec, _TSC, 1 << 30, None, self.from_beginning)
            if len(packet) < PACKET_HEADER_SIZE:
                errors.append(f"a packet of {name} of {len(packet)} bytes has no header")
            else:
                try:
                    body = packet[:content]  # the reader reads records up to its end
                    items = st.reader.items(PACKET_HEADER.unpack_from(body), body)
                except CorruptRecord as e:
                    errors.append(f"packet of {name}: {e}")
        else:
            if st.tracker is None:
                st.tracker = LossTracker(self.from_beginning)
            try:
                cpu, items = t.markers.decode_packet(
                    name, st.channel, packet, st.tracker, st.streams
                )
            except TraceFormatError as e:
                errors.append(str(e))
        st.packets += 1
        self.packets += 1
        path = f"{t.session.hostname}/{t.session.name}/{st.channel}"
        events = [i for i in items if not isinstance(i, Loss)]
        batch = LiveBatch(path, cpu, events, self.dropped, errors, items)
        self._on_batch(batch)


async def watch_remote(
    url: str | LiveUrl, from_beginning: bool = True, queue: int = QUEUE_BATCHES
) -> AsyncIterator[LiveBatch]:
    """Async iterator of the batches of a remote session; ends when the session does.

    Raises LiveError (one sentence) when the relayd or the session cannot be read.
    """
    watching = bridge(
        lambda on_batch, on_end: RemoteWatch(
            url, on_batch, on_end=on_end, from_beginning=from_beginning
        ),
        queue,
    )
    async for batch in watching:
        yield batch
