"""Streaming a trace to an lttng-relayd (the per-trace ``relay`` file).

``tracetui write mytrace/relay net://HOST[:CTRL[:DATA]]`` makes the recorder hand every packet
it writes to the trace directory (and the metadata, with its later appends) to a
``RelayStreamer``: one thread per trace owning a core/wire/relayd.py client, fed through a
bounded queue so the consumer never waits for the network.  The relayd sees a session named
after the trace from this host (``TRACETUI_HOSTNAME``, else the host's name), with a live timer
so babeltrace2 and Trace Compass can attach live (``net://HOST/host/HOSTNAME/TRACE``), and one
stream per stream file (channel and CPU), written by relayd under
``OUTPUT/HOSTNAME/TRACE-YYYYMMDD-HHMMSS/`` (one directory per session, as LTTng's).

Sessions follow the recording, as lttng-consumerd's do.  When the trace's output opens (start,
or ``relay`` written while it runs) the recorder calls ``begin`` with every per-CPU stream of
every channel that is consumed continuously: the streamer creates the relay session, adds the
metadata stream and all those streams, and says streams-sent before any data, so a viewer that
attaches at any time during the run gets every stream at once (relayd shows a viewer only the
streams published when it attaches or asks for new ones, and unpublishes a stream once it is
closed).  Flight channels' streams are added with their first snapshot's packets.  When the
output closes (the stop's final drain is in) the recorder calls ``end``: what is queued is sent,
every stream is closed after its last packet, the connection is closed, and relayd ends the
session for its viewers once they have read it all (babeltrace2 live exits).  A new start makes a
new session of the same name.

Live beacons.  The consumer calls ``quiet(stream, T)`` when it found a buffer empty (nothing
consumable, nothing open, nothing owed a commit) with T read from the trace clock *before* it
looked: no event of that stream older than T is still to come.  On every live-timer tick the
streamer sends, for each stream whose latest news is such a T, an index with packet size 0 and
timestamp_end T (after every packet queued before it), so a viewer that merges streams by time
(babeltrace2) moves past quiet streams instead of waiting on them.

Bounds.  The queue holds at most ``QUEUE_BYTES`` (64 MiB) of packets; a packet that does not
fit is dropped and counted (``packets_lost``), so a slow or unreachable relayd costs packets on
the relayd's side, never the local trace or a writer's time.  A relayd that goes away is
reconnected to every ``RETRY_S`` with a new session of the same name (in a directory of its
own); the packet being sent when it broke is counted lost, what was queued goes to the
new session.

relayd's protocol has neither authentication nor encryption: carry it over an SSH tunnel
(docs/PROTOCOL.md, the ``relay`` file).
"""

from __future__ import annotations

import collections
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tracetui.core.daemon.log import log
from tracetui.core.model.packet import PACKET_HEADER, PACKET_HEADER_SIZE, PacketHeader
from tracetui.core.trace.metadata import parse_stream_file_name
from tracetui.core.wire.relayd import RelaydClient, RelaydError, RelayUrl

__all__ = ["QUEUE_BYTES", "RelayStreamer", "hostname"]

QUEUE_BYTES = 64 << 20
RETRY_S = 1.0
LIVE_TIMER_US = 100_000  # the relayd's live timer: what live viewers wait at most
STREAM_CLASS_ID = 0  # tracetui's metadata has one stream class (core/trace/metadata.py)
CLOSE_WAIT_S = 5.0  # at most this long for relayd to have every packet before a session ends
SIGNATURE = b"/* CTF 1.8 */\n"  # opens each metadata chunk after the first (_send_metadata)


def hostname() -> str:
    """The host name this daemon reports to relayds: TRACETUI_HOSTNAME, else the host's."""
    return os.environ.get("TRACETUI_HOSTNAME") or socket.gethostname() or "localhost"


@dataclass
class _Packet:
    stream: str  # stream file name (channel_cpu)
    data: bytes


@dataclass
class _Begin:
    streams: tuple[str, ...]


class _End:
    pass


_Item = _Packet | _Begin | _End


class _Session:
    """One relay session on one connection (the streamer's thread only)."""

    def __init__(self, client: RelaydClient, path: str, meta: int) -> None:
        self.client = client
        self.path = path
        self.meta = meta
        self.meta_sent = 0
        self.handles: dict[str, int] = {}
        # stream -> (timestamp a viewer knows it at, by a packet's end or a beacon)
        self.known_ts: dict[str, int] = {}
        self.stream_ids: dict[str, tuple[int, int]] = {}  # stream -> (stream class, instance)


class RelayStreamer:
    """Sends one trace's packets and metadata to one relayd, from a thread of its own."""

    def __init__(self, url: RelayUrl, trace: str, output: Callable[[], str]) -> None:
        self.url = url
        self.trace = trace
        self.output = output
        self.state = "connecting"
        self.error = ""
        self.packets_sent = 0
        self.bytes_sent = 0
        self.packets_lost = 0
        self.beacons_sent = 0
        self.sessions = 0  # relay sessions opened (one per recording run, plus reconnects)
        self.reconnects = 0
        self._queue: collections.deque[_Item] = collections.deque()
        self._quiet: dict[str, int] = {}  # stream -> trace-clock time it was found empty at
        self._queued_bytes = 0
        self._begun = False  # the consumer's side: a session is wanted (output open)
        self._streams: tuple[str, ...] = ()  # the streams announced at a session's start
        self._paths: set[str] = set()  # the relayd paths this streamer's sessions used
        self._last_header: dict[str, bytes] = {}  # stream -> its last packet's header (thread)
        self._cv = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"relay-{trace}", daemon=True)
        self._thread.start()

    # -- the consumer's side (never blocks) ------------------------------------------------------

    def begin(self, streams: Iterable[str]) -> None:
        """The trace's output is open: a relay session with STREAMS (announced at once).  Called
        again while it runs, it announces the streams not announced yet (a channel added)."""
        new = tuple(streams)
        with self._cv:
            if self._begun and set(new) <= set(self._streams):
                return
            self._streams = tuple(dict.fromkeys((*self._streams, *new))) if self._begun else new
            self._begun = True
            self._queue.append(_Begin(self._streams))
            self._cv.notify()

    def end(self) -> None:
        """The trace's output closed: send what is queued, then close the relay session."""
        with self._cv:
            if not self._begun:
                return
            self._begun = False
            self._queue.append(_End())
            self._cv.notify()

    @property
    def begun(self) -> bool:
        return self._begun

    def put(self, stream: str, packet: bytes | memoryview) -> None:
        with self._cv:
            if self._queued_bytes + len(packet) > QUEUE_BYTES:
                self.packets_lost += 1
                return
            self._queue.append(_Packet(stream, bytes(packet)))
            self._queued_bytes += len(packet)
            self._quiet.pop(stream, None)  # news older than this packet's
            self._cv.notify()

    def quiet(self, stream: str, timestamp: int) -> None:
        """STREAM's buffer was found empty; TIMESTAMP (trace clock) was read before looking."""
        with self._cv:
            self._quiet[stream] = timestamp

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (at most TIMEOUT seconds), close the streams, stop the thread."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout)

    def status(self) -> dict[str, object]:
        with self._cv:
            return {
                "url": str(self.url),
                "state": self.state,
                "error": self.error,
                "packets_sent": self.packets_sent,
                "bytes_sent": self.bytes_sent,
                "packets_lost": self.packets_lost,
                "queued_bytes": self._queued_bytes,
                "beacons_sent": self.beacons_sent,
                "sessions": self.sessions,
                "reconnects": self.reconnects,
            }

    def stats_text(self) -> str:
        s = self.status()
        err = f" error={s['error']!r}" if s["error"] else ""
        return (
            f"relay url={s['url']} state={s['state']} packets_sent={s['packets_sent']} "
            f"bytes_sent={s['bytes_sent']} packets_lost={s['packets_lost']} "
            f"queued_bytes={s['queued_bytes']} reconnects={s['reconnects']}{err}"
        )

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        sess: _Session | None = None
        want = False  # between a _Begin and its _End: a session is open or owed
        broken = False  # the last session broke: the next one is a reconnect
        streams: tuple[str, ...] = ()
        batch: collections.deque[_Item] = collections.deque()
        while True:
            with self._cv:
                if not batch and not self._queue and not self._stop:
                    self._cv.wait(LIVE_TIMER_US / 1e6)
                # Packets and quiet times are taken together: a quiet time recorded after a
                # packet was queued goes out after that packet.
                batch.extend(self._queue)
                self._queue.clear()
                quiet, self._quiet = self._quiet, {}
                stop = self._stop
            try:
                while batch:
                    item = batch[0]
                    if isinstance(item, _Begin):
                        streams, want = item.streams, True
                        if sess is None:
                            sess, broken = self._open(streams, broken), False
                        else:
                            self._announce(sess, streams)
                    elif isinstance(item, _End):
                        want = False
                        if sess is not None:
                            s, sess = sess, None
                            self._close_session(s)
                    else:
                        if sess is None:
                            sess, broken = self._open(streams, broken), False
                        self._send(sess, item)
                    batch.popleft()
                if sess is None and want and not stop:
                    sess, broken = self._open(streams, broken), False  # after a broken one
                if sess is not None:
                    sess.meta_sent = self._send_metadata(sess)
                    self._beacons(sess, quiet)
                if stop:
                    if sess is not None:
                        s, sess = sess, None
                        self._close_session(s)
                    with self._cv:
                        self.state = "closed"
                    return
            except (RelaydError, OSError) as e:
                if sess is not None:
                    sess.client.close()
                    sess = None
                if batch and isinstance(batch[0], _Packet):
                    # Being sent when the connection broke: gone with it, counted.
                    lost = batch.popleft()
                    assert isinstance(lost, _Packet)
                    with self._cv:
                        self.packets_lost += 1
                        self._queued_bytes -= len(lost.data)
                broken = True
                text = str(e) if isinstance(e, RelaydError) else f"relayd connection: {e}"
                with self._cv:
                    changed = text != self.error
                    self.state, self.error = "error", text
                    if self._stop:
                        # Not sent now, not ever: counted.
                        gone = [i for i in (*batch, *self._queue) if isinstance(i, _Packet)]
                        self.packets_lost += len(gone)
                        self._queue.clear()
                        self._queued_bytes = 0
                        return
                if changed:
                    log(f"trace '{self.trace}': relay {self.url}: {text}")
                deadline = time.monotonic() + RETRY_S
                with self._cv:
                    while not self._stop and time.monotonic() < deadline:
                        self._cv.wait(deadline - time.monotonic())

    def _open(self, streams: tuple[str, ...], reconnect: bool) -> _Session:
        client = RelaydClient(self.url)
        client.connect()
        try:
            host = hostname()
            client.create_session(self.trace, host, LIVE_TIMER_US)
            path = self._session_path(host)
            sess = _Session(client, path, client.add_stream("metadata", path))
            # The metadata before any stream's data: a viewer that attaches reads it first.
            sess.meta_sent = self._send_metadata(sess)
            self._announce(sess, streams)
            for stream in sess.handles:
                if stream in self._last_header:
                    self._send_empty(sess, stream)
        except BaseException:
            client.close()
            raise
        with self._cv:
            self.sessions += 1
            if reconnect:
                self.reconnects += 1  # a new session after a relayd that went away
            self.state, self.error = "connected", ""
        log(f"trace '{self.trace}': streaming to relayd {self.url} as {path}")
        return sess

    def _session_path(self, host: str) -> str:
        """``HOST/TRACE-YYYYMMDD-HHMMSS`` (``-N`` after it for a second session within the
        same second), as lttng-sessiond names a session's directory: relayd truncates the
        files of a path it is given again, so each session (a recording run, a reconnect)
        needs a path of its own to keep the earlier ones' files."""
        base = f"{host}/{self.trace}-{time.strftime('%Y%m%d-%H%M%S')}"
        path, n = base, 1
        while path in self._paths:
            n += 1
            path = f"{base}-{n}"
        self._paths.add(path)
        return path

    def _announce(self, sess: _Session, streams: Iterable[str]) -> None:
        """Add the streams the session does not have yet, then say streams-sent."""
        added = False
        for s in streams:
            if s not in sess.handles:
                sess.handles[s] = sess.client.add_stream(s, sess.path)
                parsed = parse_stream_file_name(s)
                sess.stream_ids[s] = (STREAM_CLASS_ID, parsed[1] if parsed else 0)
                added = True
        if added or not sess.handles:
            sess.client.streams_sent()

    def _send(self, sess: _Session, p: _Packet) -> None:
        if p.stream not in sess.handles:
            # A flight channel's first snapshot, or a channel added while streaming.
            sess.meta_sent = self._send_metadata(sess)
            self._announce(sess, (p.stream,))
        else:
            # Metadata first: the packet may hold markers it just gained.
            sess.meta_sent = self._send_metadata(sess)
        hdr = PacketHeader.parse(p.data)
        sess.client.send_packet(
            sess.handles[p.stream],
            p.data,
            packet_size_bits=len(p.data) * 8,
            content_size_bits=min(hdr.content_size, len(p.data)) * 8,
            timestamp_begin=hdr.timestamp_begin,
            timestamp_end=hdr.timestamp_end,
            events_discarded=hdr.events_discarded,
            stream_id=hdr.stream_id,
            stream_instance_id=hdr.cpu_id,
            packet_seq_num=hdr.packet_seq_num,
        )
        sess.stream_ids[p.stream] = (hdr.stream_id, hdr.cpu_id)
        self._last_header[p.stream] = p.data[:PACKET_HEADER_SIZE]
        sess.known_ts[p.stream] = max(sess.known_ts.get(p.stream, 0), hdr.timestamp_end)
        with self._cv:
            self.packets_sent += 1
            self.bytes_sent += len(p.data)
            self._queued_bytes -= len(p.data)

    def _send_empty(self, sess: _Session, stream: str) -> None:
        """A header-only packet repeating the stream's last one (same sequence number and
        discarded count, no events, at its end time) as a new session's first packet of a
        stream the ring buffer already wrote to: relayd 2.13 takes beacons only for a stream
        that had a packet, and the buffer makes no empty one after its first (a trace started
        again, a relayd reconnected to)."""
        f = list(PACKET_HEADER.unpack(self._last_header[stream]))
        f[3] = f[4]  # timestamp_begin = timestamp_end
        f[5] = f[6] = PACKET_HEADER_SIZE * 8  # content and packet sizes, in bits
        sess.client.send_packet(
            sess.handles[stream],
            PACKET_HEADER.pack(*f),
            packet_size_bits=f[6],
            content_size_bits=f[5],
            timestamp_begin=f[3],
            timestamp_end=f[4],
            events_discarded=f[8],
            stream_id=f[2],
            stream_instance_id=f[9],
            packet_seq_num=f[7],
        )
        sess.stream_ids[stream] = (f[2], f[9])
        sess.known_ts[stream] = max(sess.known_ts.get(stream, 0), f[4])

    def _beacons(self, sess: _Session, quiet: dict[str, int]) -> None:
        """An index of size 0 for each stream found empty since its last packet or beacon."""
        sent = 0
        for stream, ts in quiet.items():
            h = sess.handles.get(stream)
            if h is None or ts <= sess.known_ts.get(stream, 0):
                continue
            sid, inst = sess.stream_ids[stream]
            sess.client.beacon(h, ts, sid, inst)
            sess.known_ts[stream] = ts
            sent += 1
        if sent:
            with self._cv:
                self.beacons_sent += sent

    def _close_session(self, sess: _Session) -> None:
        """Every stream closed after its last packet, then the connection: relayd ends the
        session for its viewers once they have read everything."""
        try:
            sess.meta_sent = self._send_metadata(sess)
            deadline = time.monotonic() + CLOSE_WAIT_S
            pending = list(sess.handles.values())
            while pending and time.monotonic() < deadline:
                pending = [h for h in pending if sess.client.data_pending(h)]
                if pending:
                    time.sleep(0.005)
            for h in sess.handles.values():
                sess.client.close_stream(h)
            sess.client.close_stream(sess.meta)
        finally:
            sess.client.close()
        with self._cv:
            self.state = "closed"
        log(f"trace '{self.trace}': relay session {sess.path} closed")

    def _send_metadata(self, sess: _Session) -> int:
        """Send what the metadata file gained since the last call, in whole blocks.

        babeltrace2 2.0's live reader decodes each plain-text chunk it fetches on its own and
        wants each to open with the ``/* CTF 1.8`` signature, so a later chunk is sent after
        that comment (TSDL ignores it; relayd's copy of the file reads the same)."""
        try:
            with open(os.path.join(self.output(), "metadata"), "rb") as f:
                f.seek(sess.meta_sent)
                more = f.read()
        except OSError:
            return sess.meta_sent
        end = more.rfind(b"\n};\n")
        if end < 0:
            return sess.meta_sent  # no whole block yet
        more = more[: end + 4]
        sess.client.send_metadata(sess.meta, more if sess.meta_sent == 0 else SIGNATURE + more)
        return sess.meta_sent + len(more)
