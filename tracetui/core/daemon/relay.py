"""Streaming a trace to an lttng-relayd (the per-trace ``relay`` file).

``tracetui write mytrace/relay net://HOST[:CTRL[:DATA]]`` makes the recorder hand every packet
it writes to the trace directory (and the metadata, with its later appends) to a
``RelayStreamer``: one thread per trace owning a core/wire/relayd.py client, fed through a
bounded queue so the consumer never waits for the network.  The relayd sees a session named
after the trace from this host (``TRACETUI_HOSTNAME``, else the host's name), with a live timer
so babeltrace2 and Trace Compass can attach live (``net://HOST/host/HOSTNAME/TRACE``), and one
stream per stream file (channel and CPU).

Bounds.  The queue holds at most ``QUEUE_BYTES`` (64 MiB) of packets; a packet that does not
fit is dropped and counted (``packets_lost``), so a slow or unreachable relayd costs packets on
the relayd's side, never the local trace or a writer's time.  A relayd that goes away is
reconnected to every ``RETRY_S`` with a new session of the same name (relayd keeps the earlier
one's files); what was queued while it was gone and did not fit is counted the same way.

relayd's protocol has neither authentication nor encryption: carry it over an SSH tunnel
(docs/PROTOCOL.md, the ``relay`` file).
"""

from __future__ import annotations

import collections
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tracetui.core.daemon.log import log
from tracetui.core.model.packet import PacketHeader
from tracetui.core.wire.relayd import RelaydClient, RelaydError, RelayUrl

__all__ = ["QUEUE_BYTES", "RelayStreamer", "hostname"]

QUEUE_BYTES = 64 << 20
RETRY_S = 1.0
LIVE_TIMER_US = 100_000  # the relayd's live timer: what live viewers wait at most


def hostname() -> str:
    """The host name this daemon reports to relayds: TRACETUI_HOSTNAME, else the host's."""
    return os.environ.get("TRACETUI_HOSTNAME") or socket.gethostname() or "localhost"


@dataclass
class _Packet:
    stream: str  # stream file name (channel_cpu)
    data: bytes


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
        self.reconnects = 0
        self._sessions = 0
        self._queue: collections.deque[_Packet] = collections.deque()
        self._inflight: list[_Packet | None] = []
        self._queued_bytes = 0
        self._cv = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"relay-{trace}", daemon=True)
        self._thread.start()

    # -- the consumer's side (never blocks) ------------------------------------------------------

    def put(self, stream: str, packet: bytes | memoryview) -> None:
        with self._cv:
            if self._queued_bytes + len(packet) > QUEUE_BYTES:
                self.packets_lost += 1
                return
            self._queue.append(_Packet(stream, bytes(packet)))
            self._queued_bytes += len(packet)
            self._cv.notify()

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
        while True:
            with self._cv:
                if self._stop and not self._queue:
                    return
            try:
                self._session()
                return  # stopped and drained
            except (RelaydError, OSError) as e:
                text = str(e) if isinstance(e, RelaydError) else f"relayd connection: {e}"
                with self._cv:
                    changed = text != self.error
                    self.state, self.error = "error", text
                    if self._stop:
                        # Not sent now, not ever: counted.
                        self.packets_lost += len(self._queue)
                        self._queue.clear()
                        self._queued_bytes = 0
                        return
                if changed:
                    log(f"trace '{self.trace}': relay {self.url}: {text}")
            deadline = time.monotonic() + RETRY_S
            with self._cv:
                while not self._stop and time.monotonic() < deadline:
                    self._cv.wait(deadline - time.monotonic())

    def _session(self) -> None:
        client = RelaydClient(self.url)
        client.connect()
        try:
            host = hostname()
            client.create_session(self.trace, host, LIVE_TIMER_US)
            with self._cv:
                if self._sessions:
                    self.reconnects += 1  # a new session after a relayd that went away
                self._sessions += 1
            path = f"{host}/{self.trace}"
            meta = client.add_stream("metadata", path)
            handles: dict[str, int] = {}
            meta_sent = 0
            last_ts: dict[str, tuple[int, int, int]] = {}
            with self._cv:
                self.state, self.error = "connected", ""
            log(f"trace '{self.trace}': streaming to relayd {self.url} as {path}")
            streams_sent = False
            while True:
                with self._cv:
                    while not self._queue and not self._stop:
                        if not self._cv.wait(LIVE_TIMER_US / 1e6):
                            break
                    batch: list[_Packet | None] = list(self._queue)
                    self._inflight = batch
                    self._queue.clear()
                    stop = self._stop
                # Metadata first: the packets that follow may use markers it just gained.
                meta_sent = self._send_metadata(client, meta, meta_sent)
                for i, p in enumerate(batch):
                    assert p is not None
                    h = handles.get(p.stream)
                    if h is None:
                        h = handles[p.stream] = client.add_stream(p.stream, path)
                        streams_sent = False
                    if not streams_sent:
                        client.streams_sent()
                        streams_sent = True
                    hdr = PacketHeader.parse(p.data)
                    client.send_packet(
                        h,
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
                    last_ts[p.stream] = (hdr.timestamp_end, hdr.stream_id, hdr.cpu_id)
                    with self._cv:
                        self.packets_sent += 1
                        self.bytes_sent += len(p.data)
                        self._queued_bytes -= len(p.data)
                    batch[i] = None
                if not streams_sent:
                    client.streams_sent()
                    streams_sent = True
                if not batch:
                    # Idle: beacons let live viewers advance past quiet streams.
                    for stream, (ts, sid, inst) in last_ts.items():
                        client.beacon(handles[stream], ts, sid, inst)
                if stop:
                    for h in handles.values():
                        client.close_stream(h)
                    client.close_stream(meta)
                    with self._cv:
                        self.state = "closed"
                    return
        except BaseException:
            # Packets of a batch taken but not sent are gone with the connection: counted.
            unsent = [p for p in self._inflight if p is not None]
            with self._cv:
                self.packets_lost += len(unsent)
                self._queued_bytes -= sum(len(p.data) for p in unsent)
            raise
        finally:
            self._inflight = []
            client.close()

    def _send_metadata(self, client: RelaydClient, handle: int, sent: int) -> int:
        try:
            with open(os.path.join(self.output(), "metadata"), "rb") as f:
                f.seek(sent)
                more = f.read()
        except OSError:
            return sent
        if more:
            client.send_metadata(handle, more)
        return sent + len(more)
