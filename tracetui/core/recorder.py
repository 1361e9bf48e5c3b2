"""Recording in the daemon: probes, the consumer, CTF output, snapshots and live fan-out.

Installed into the daemon at start (``install(daemon)``, see tracetui.core.daemon):

- **Probes.**  A traced process says TT_PROBE_HELLO, registers each marker (TT_MARKER: the
  namespace's registry assigns the id) and receives TT_TARGETS: for each of its markers, the
  shared-memory names of the channels its events go to (``Namespace.targets``: running traces
  whose filter accepts the event, routed by channel filters).  The table is pushed again to
  every probe whenever it can change (start, stop, filters, allocation, new markers).  A probe
  that stops pinging or whose pid is gone is forgotten.
- **Consumer.**  Every tick (CONSUME_S) the complete packets of every non-flight channel of a
  running trace are written, as they are, to the trace's output directory (ctf.TraceWriter:
  metadata with every marker, later markers appended; one stream file per channel and CPU).
  A buffer that produced no packet for FLUSH_S is flushed so a slow channel still reaches disk
  and live views within 250 ms.  Stuck sub-buffers of dead writers are recovered (STUCK_S).
  Nothing here ever makes a writer wait: writers never wait for anything.
- **Flight channels** are written on ``snapshot`` (the trace keeps running) and on stop:
  flush, copy the complete packets, append those not written yet.
- **Live subscriptions.**  A client subscribes to ``trace/channel``; each packet the consumer
  handles (or, for flight channels, each new packet of a periodic snapshot) is sent to it as
  TT_LIVE_BATCH parts, with MSG_DONTWAIT: a packet that does not fit the subscriber's socket is
  dropped for that subscriber and counted (reported to it in later batches).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tracetui.core import buffers
from tracetui.core import recording_protocol as R
from tracetui.core.daemon import log
from tracetui.core.errors import TraceError
from tracetui.core.model.formats import check_event_name, parse_format
from tracetui.core.trace import writer as ctf
from tracetui.core.wire.protocol import Change

if TYPE_CHECKING:
    from tracetui.core.daemon import Daemon, Request
    from tracetui.core.namespace import Trace, TraceChannel

CONSUME_S = 0.05
FLUSH_S = 0.1
PROBE_DEAD_S = 5.0
STUCK_S = float(os.environ.get("TRACETUI_STUCK_TIMEOUT", "2.0"))
TICK_BUDGET_S = 0.03  # consumer work per tick before the loop serves requests again


@dataclass
class Probe:
    port: int
    pid: int
    markers: set[int] = field(default_factory=set)
    last_seen: float = 0.0


@dataclass
class Subscriber:
    port: int
    path: str
    dropped: int = 0
    last_seq: dict[int, int] = field(default_factory=dict)  # flight: cpu -> last seq sent


class Recorder:
    """The daemon's recording state: probes, open trace outputs, live subscribers."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self.ns = daemon.namespace
        self.cal = buffers.calibrate()
        self.probes: dict[int, Probe] = {}
        self.writers: dict[str, ctf.TraceWriter] = {}
        self.subs: dict[str, dict[int, Subscriber]] = {}
        self._last_packet: dict[tuple[str, int], float] = {}
        self._last_stuck = 0.0
        self.write_errors: dict[str, int] = {}  # trace -> packets that could not be written
        self.last_write_error: dict[str, str] = {}
        h = self.ns.hooks
        h.starting.append(self._on_starting)
        h.stopped.append(self._on_stopped)
        h.removing.append(self._on_removing)
        h.freeing.append(self._on_freeing)
        h.snapshot.append(self._on_snapshot)
        self.ns.listeners.append(self._on_change)
        daemon.handle(R.TT_PROBE_HELLO, self._hello)
        daemon.handle(R.TT_MARKER, self._marker)
        daemon.handle(R.TT_PING, self._ping)
        daemon.handle(R.TT_LIVE_SUBSCRIBE, self._live_subscribe)
        daemon.handle(R.TT_LIVE_UNSUBSCRIBE, self._live_unsubscribe)
        daemon.every(CONSUME_S, self.tick)
        daemon.every(1.0, self._reap_probes)
        daemon.peer_gone.append(self._peer_gone)

    # ------------------------------------------------------------------------- probes

    def _hello(self, req: Request) -> None:
        self.probes[req.port] = Probe(req.port, req.pid, last_seen=time.monotonic())
        req.ack()

    def _ping(self, req: Request) -> None:
        p = self.probes.get(req.port)
        if p is None:
            # A daemon restarted under this probe: it must say hello and register again.
            raise TraceError(errno.ENOENT, "this daemon does not know this probe: register again")
        p.last_seen = time.monotonic()
        req.ack()

    def _marker(self, req: Request) -> None:
        p = self.probes.get(req.port)
        if p is None:
            raise TraceError(errno.ENOENT, "say TT_PROBE_HELLO before registering markers")
        name = req.attrs.str(R.TT_A_NAME)
        text = req.attrs.str(R.TT_A_FORMAT, "")
        try:
            check_event_name(name)
            fmt = parse_format(text)
        except ValueError as e:
            raise TraceError(errno.EINVAL, str(e)) from None
        known = self.ns.markers.lookup(name, text)
        mid = self.ns.markers.register(name, text)
        if known is None:
            marker = ctf.Marker(mid, name, fmt)
            for trace, w in self.writers.items():
                try:
                    w.add_marker(marker)
                except OSError as e:
                    self._output_failed(self.ns.traces[trace], e)
            self.d.broadcast(Change("state", "markers", f"{mid} {name} {text}".rstrip()))
        p.markers.add(mid)
        p.last_seen = time.monotonic()
        req.reply([R.nla_u32(R.TT_A_ID, mid), R.nla_str(R.TT_A_NAME, name)])
        self._push_targets(p)

    def _table_for(self, p: Probe) -> dict[int, list[str]]:
        table: dict[int, list[str]] = {}
        for mid in p.markers:
            m = self.ns.markers.get(mid)
            if m is None:
                continue
            shms = [c.shm_name for _, c in self.ns.targets(m.name)]
            if shms:
                table[mid] = shms
        return table

    def _push_targets(self, p: Probe) -> None:
        self.d.send(p.port, [R.encode_targets(self._table_for(p), self.d.port)])

    def push_all_targets(self) -> None:
        for p in list(self.probes.values()):
            self._push_targets(p)

    def _on_change(self, change: Change) -> None:
        # Any change may move events: start/stop, filters, allocation, channels.
        if change.op in ("write", "state", "mkdir", "rmdir"):
            self.push_all_targets()

    def _reap_probes(self) -> None:
        now = time.monotonic()
        for port, p in list(self.probes.items()):
            alive = now - p.last_seen < PROBE_DEAD_S
            if alive:
                try:
                    os.kill(p.pid, 0)
                except ProcessLookupError:
                    alive = False
                except PermissionError:
                    alive = True  # exists, owned by root while we are not
            if not alive:
                del self.probes[port]

    def _peer_gone(self, port: int) -> None:
        self.probes.pop(port, None)
        for subs in self.subs.values():
            subs.pop(port, None)

    # ------------------------------------------------------------------------- output

    def _writer(self, t: Trace) -> ctf.TraceWriter:
        w = self.writers.get(t.name)
        if w is None:
            markers = [ctf.Marker(m.id, m.name, parse_format(m.format)) for m in self.ns.markers]
            try:
                w = ctf.TraceWriter(
                    t.output, uuid=t.uuid, calibration=self.cal, markers=markers, trace_name=t.name
                )
            except ctf.OutputError as e:
                raise TraceError(e.errno or errno.EIO, f"trace '{t.name}': {e}") from None
            self.writers[t.name] = w
        return w

    def _on_starting(self, t: Trace) -> None:
        self._writer(t)  # refuses the start when the output cannot be written

    def _on_stopped(self, t: Trace) -> None:
        # The namespace flushed every buffer; targets go out with the change that follows.
        self.push_all_targets()
        w = self.writers.get(t.name)
        if w is None:
            return
        for c in t.channels.values():
            if c.buffers is None:
                continue
            if c.flight:
                self._write_flight(t, c, w)
            else:
                self._drain(t, c, w, budget=None)
                # Losses after the last packet: once drained, an empty packet can carry them.
                if c.buffers.flush():
                    self._drain(t, c, w, budget=None)
        try:
            w.sync()
        except OSError as e:
            self._output_failed(t, e)
        finally:
            w.close()
            del self.writers[t.name]

    def _on_removing(self, t: Trace) -> None:
        w = self.writers.pop(t.name, None)
        if w is not None:
            w.close()
        for c in t.channels.values():
            self.subs.pop(c.path, None)

    def _on_freeing(self, t: Trace, c: TraceChannel) -> None:
        if c.buffers is not None and not c.flight and t.name in self.writers:
            self._drain(t, c, self.writers[t.name], budget=None)
        for b in range(c.buffers.nbuf if c.buffers else 0):
            self._last_packet.pop((c.shm_name, b), None)

    def _on_snapshot(self, t: Trace) -> None:
        opened = t.name not in self.writers
        w = self._writer(t)
        try:
            for c in t.channels.values():
                if c.buffers is not None and c.flight:
                    self._write_flight(t, c, w)
        finally:
            if opened:
                w.close()
                del self.writers[t.name]

    def _write_flight(self, t: Trace, c: TraceChannel, w: ctf.TraceWriter) -> None:
        assert c.buffers is not None
        c.buffers.flush()
        for b in range(c.buffers.nbuf):
            for pkt in self._packets_of(c.buffers.snapshot(b), c.subbuf_size):
                self._write(t, w, c.name, b, pkt)

    def _write(self, t: Trace, w: ctf.TraceWriter, channel: str, cpu: int, pkt: memoryview) -> None:
        try:
            w.write_packet(channel, cpu, pkt)
        except OSError as e:
            self._output_failed(t, e)

    def _output_failed(self, t: Trace, e: OSError) -> None:
        """A packet could not reach disk (disk full, I/O error): lost, counted, and said."""
        self.write_errors[t.name] = self.write_errors.get(t.name, 0) + 1
        text = f"cannot write to {t.output}: {e.strerror or e}"
        if self.last_write_error.get(t.name) != text:
            self.last_write_error[t.name] = text
            log(f"trace '{t.name}': {text}")
            # Consoles show it at once; `read recording` keeps the count.
            self.d.broadcast(Change("state", f"{t.name}/output", text))

    @staticmethod
    def _packets_of(data: bytes, size: int) -> list[memoryview]:
        view = memoryview(data)
        return [view[i : i + size] for i in range(0, len(view), size)]

    # ------------------------------------------------------------------------- the consumer

    def tick(self) -> None:
        now = time.monotonic()
        deadline = now + TICK_BUDGET_S
        check_stuck = now - self._last_stuck >= 1.0
        if check_stuck:
            self._last_stuck = now
        for t in list(self.ns.traces.values()):
            for c in t.channels.values():
                ch = c.buffers
                if ch is None:
                    continue
                if check_stuck:
                    ch.check_stuck(STUCK_S)
                if not t.running:
                    continue
                if c.flight:
                    if self.subs.get(c.path):
                        self._live_flight(c)
                    continue
                w = self.writers.get(t.name)
                if w is not None and time.monotonic() < deadline:
                    self._drain(t, c, w, budget=deadline)

    def _drain(self, t: Trace, c: TraceChannel, w: ctf.TraceWriter, budget: float | None) -> None:
        ch = c.buffers
        assert ch is not None
        subs = self.subs.get(c.path)
        now = time.monotonic()
        for b in range(ch.nbuf):
            key = (c.shm_name, b)
            got = False
            while budget is None or time.monotonic() < budget:
                pkt = ch.get_packet(b)
                if pkt is None:
                    break
                try:
                    self._write(t, w, c.name, b, pkt)
                    if subs:
                        self._fan_out(subs, b, pkt)
                finally:
                    ch.put_packet(b)
                got = True
            if got:
                self._last_packet[key] = now
            elif now - self._last_packet.get(key, 0.0) >= FLUSH_S and ch.flush(b):
                # A slow buffer: its partial packet is closed so it reaches disk and live views.
                self._last_packet[key] = now

    # ------------------------------------------------------------------------- live

    def _live_subscribe(self, req: Request) -> None:
        path = req.attrs.str(1).strip("/")
        parts = path.split("/")
        if len(parts) != 2:
            raise TraceError(errno.EINVAL, f"watch takes TRACE/CHANNEL, not '{path}'")
        t = self.ns.traces.get(parts[0])
        if t is None:
            raise TraceError(errno.ENOENT, f"there is no trace '{parts[0]}'")
        if parts[1] not in t.channels:
            raise TraceError(errno.ENOENT, f"trace '{t.name}' has no channel '{parts[1]}'")
        self.subs.setdefault(path, {})[req.port] = Subscriber(req.port, path)
        clock = {
            "freq_hz": self.cal.freq_hz,
            "tsc0": self.cal.tsc0,
            "mono_ns0": self.cal.mono_ns0,
            "real_ns0": self.cal.real_ns0,
        }
        req.answered = True
        self.d.send(req.port, [R.encode_live_subscribe_reply(req.seq, clock, self.d.port)])

    def _live_unsubscribe(self, req: Request) -> None:
        path = req.attrs.str(1).strip("/")
        self.subs.get(path, {}).pop(req.port, None)
        req.ack()

    def _live_flight(self, c: TraceChannel) -> None:
        ch = c.buffers
        assert ch is not None
        subs = self.subs[c.path]
        now = time.monotonic()
        for b in range(ch.nbuf):
            key = (c.shm_name, b)
            if now - self._last_packet.get(key, 0.0) < FLUSH_S:
                continue
            self._last_packet[key] = now
            ch.flush(b)
            # Copy only packets some subscriber has not had yet.
            since = min(s.last_seq.get(b, -1) for s in subs.values()) + 1
            for pkt in self._packets_of(ch.snapshot(b, since), c.subbuf_size):
                seq = ctf.PACKET_HEADER.unpack_from(pkt)[7]
                fresh = {p: s for p, s in subs.items() if seq > s.last_seq.get(b, -1)}
                if fresh:
                    self._fan_out(fresh, b, pkt)
                    for s in fresh.values():
                        s.last_seq[b] = seq

    def _fan_out(self, subs: dict[int, Subscriber], cpu: int, pkt: memoryview) -> None:
        h = ctf.PACKET_HEADER.unpack_from(pkt)
        content = h[5] // 8
        records = pkt[ctf.PACKET_HEADER_SIZE : content]
        if not records:
            return
        sock = self.d.sock
        assert sock is not None
        for port, s in list(subs.items()):
            msgs = R.encode_live_packet(s.path, cpu, h[7], s.dropped, records, self.d.port)
            for m in msgs:
                try:
                    sock.sendto(m, socket.MSG_DONTWAIT, (port, 0))
                except BlockingIOError:
                    # Its socket is full: this packet is lost to it, never waited for.
                    s.dropped += 1
                    break
                except OSError:
                    del subs[port]  # gone
                    break

    def status(self) -> dict[str, object]:
        return {
            "probes": len(self.probes),
            "probe_pids": sorted(p.pid for p in self.probes.values()),
            "writers": sorted(self.writers),
            "live_subscribers": sum(len(s) for s in self.subs.values()),
            "write_errors": self.write_errors,
            "last_write_error": self.last_write_error,
        }

    def close(self) -> None:
        for w in self.writers.values():
            with contextlib.suppress(OSError):
                w.sync()
            w.close()
        self.writers.clear()


def install(daemon: Daemon) -> Recorder:
    from tracetui.core.namespace import RootFile

    rec = Recorder(daemon)
    daemon.recorder = rec  # type: ignore[attr-defined]
    # `read recording`: the recorder's state as JSON (probes, open outputs, live subscribers).
    daemon.namespace.root_files["recording"] = RootFile(lambda: json.dumps(rec.status()))
    return rec
