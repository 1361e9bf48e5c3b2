"""Recording in the daemon: probes, the consumer, CTF output, snapshots and live fan-out.

Installed into the daemon at start (``install(daemon)``, called by daemon/server.py):

- **Probes.**  A traced process says TT_PROBE_HELLO, registers each marker (TT_MARKER: the
  namespace's registry assigns the id) and receives TT_TARGETS: for each of its markers, the
  shared-memory names of the channels its events go to (``Namespace.targets``: running traces
  whose filter accepts the event, routed by channel filters).  The table is pushed again to
  every probe whose table changed (start, stop, filters, allocation, new markers), with an
  increasing generation (GEN); the probe answers TT_TARGETS_ACK once no emit begun under an
  older table runs.  A probe that stops pinging or whose pid is gone is forgotten.
- **Exact start, stop and filter changes.**  The reply to a write that changed some probe's
  table waits (``defer``, the daemon loop never blocks) until every such probe acknowledged,
  at most ACK_TIMEOUT_S; those that did not are named in the reply and the log.  A stopped
  trace is drained only then (everything emitted before the reply is in it or counted); a
  reservation still uncommitted (a stopped writer) keeps the trace's output open
  ("lingering") until it is committed or its writer is known dead.
- **Consumer.**  Every tick (CONSUME_S) the complete packets of every non-flight channel of a
  running trace are written, as they are, to the trace's output directory (ctf.TraceWriter:
  metadata with every marker, later markers appended; one stream file per channel and CPU).
  A buffer that produced no packet for FLUSH_S is flushed so a slow channel still reaches disk
  within 250 ms.  While a channel has live subscribers, the consumer ticks every LIVE_S and
  flushes that channel's buffers after LIVE_S without a packet (LTTng's "live timer"), so an
  event reaches a live view within about two LIVE_S at any rate; a flushed partial packet
  leaves the rest of its sub-buffer unused, which is why this cadence is kept for watched
  channels only.  Nothing here ever makes a writer wait.
- **Dead writers.**  A sub-buffer left incomplete is reclaimed (dropped, its records counted
  as discarded and lost_dead) only when a process listed as mapping its channel is dead, no
  living mapper is stopped, and every living probe mapper acknowledged a table sent after the
  sub-buffer was seen stuck (so none is in the middle of an emit): a stopped or slow writer is
  waited for, however long (see docs/DECISIONS.md).
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
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tracetui.core import ring
from tracetui.core.daemon.log import log
from tracetui.core.daemon.relay import RelayStreamer
from tracetui.core.errors import TraceError
from tracetui.core.model.formats import check_event_name, parse_format
from tracetui.core.trace import writer as ctf
from tracetui.core.trace.metadata import stream_file_name
from tracetui.core.wire import protocol as P
from tracetui.core.wire import recording as R
from tracetui.core.wire.protocol import Change

if TYPE_CHECKING:
    from tracetui.core.daemon.namespace import Trace, TraceChannel
    from tracetui.core.daemon.server import Daemon, Request

CONSUME_S = 0.05
FLUSH_S = 0.1
LIVE_S = 0.01  # the consumer's tick and flush period for channels with live subscribers
PROBE_DEAD_S = 5.0
TICK_BUDGET_S = 0.03  # consumer work per tick before the loop serves requests again
ACK_TIMEOUT_S = float(os.environ.get("TRACETUI_ACK_TIMEOUT", "1.0"))
STUCK_CHECK_S = 0.25  # how often incomplete sub-buffers and mappers are looked at
STUCK_SETTLE_S = 0.2  # a stuck sub-buffer's commit word must not move for this long


def proc_state(pid: int) -> str:
    """'dead' (gone, zombie), 'stopped' (SIGSTOP, ptrace stop) or 'running'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "dead"
    if state in (b"Z", b"X", b"x"):
        return "dead"
    if state in (b"T", b"t"):
        return "stopped"
    return "running"


@dataclass
class Probe:
    port: int
    pid: int
    markers: set[int] = field(default_factory=set)
    last_seen: float = 0.0
    table: dict[int, list[str]] | None = None  # the last table sent
    sent_gen: int = 0
    acked_gen: int = 0


@dataclass
class Waiter:
    """A reply held until probes acknowledged their new tables (or the deadline)."""

    req: Request
    need: dict[int, int]  # probe port -> generation it must acknowledge
    deadline: float
    stops: list[str]  # traces whose final drain waits for the same acknowledgements
    path: str  # what was written (the request's payload is not ours to keep)


@dataclass
class Stuck:
    """A buffer whose oldest unconsumed sub-buffer is closed but incomplete."""

    subbuf: int
    commit: int
    since: float
    gen: int  # probes must acknowledge at least this generation before a reclaim


@dataclass
class Subscriber:
    port: int
    path: str
    dropped: int = 0
    told: int = 0  # the DROPPED it last received (a packet or a drop notice carried it)
    last_seq: dict[int, int] = field(default_factory=dict)  # flight: cpu -> last seq sent


class Recorder:
    """The daemon's recording state: probes, open trace outputs, live subscribers."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self.ns = daemon.namespace
        self.cal = ring.calibrate()
        self.probes: dict[int, Probe] = {}
        self.writers: dict[str, ctf.TraceWriter] = {}
        self.subs: dict[str, dict[int, Subscriber]] = {}
        self._last_packet: dict[tuple[str, int], float] = {}
        self._last_stuck = 0.0
        self.gen = 0
        self.ack_timeout = ACK_TIMEOUT_S
        self.waiters: list[Waiter] = []
        self._stops_new: list[str] = []  # stopped during the request being handled
        self._pushed_now: set[int] = set()  # probe ports sent a new table during it
        self._stopping: dict[str, float] = {}  # trace -> deadline of its final drain
        self.lingering: set[str] = set()  # stopped, output open: a reservation is uncommitted
        self._stuck: dict[tuple[str, int], Stuck] = {}
        self.reclaimed = 0
        self.unacknowledged: dict[int, int] = {}  # pid -> replies sent without its ack
        self.write_errors: dict[str, int] = {}  # trace -> packets that could not be written
        self.last_write_error: dict[str, str] = {}
        h = self.ns.hooks
        h.starting.append(self._on_starting)
        h.stopped.append(self._on_stopped)
        h.removing.append(self._on_removing)
        h.freeing.append(self._on_freeing)
        h.snapshot.append(self._on_snapshot)
        h.relay_changed.append(self._on_relay)
        h.allocated.append(self._on_allocated)
        self.relays: dict[str, RelayStreamer] = {}  # trace -> its streamer to an lttng-relayd
        self.ns.listeners.append(self._on_change)
        daemon.handle(R.TT_PROBE_HELLO, self._hello)
        daemon.handle(R.TT_MARKER, self._marker)
        daemon.handle(R.TT_PING, self._ping)
        daemon.handle(R.TT_TARGETS_ACK, self._targets_ack)
        daemon.handle(R.TT_LOST, self._lost)
        daemon.deferrers.append(self.defer)
        write = daemon.handlers[P.TT_WRITE]

        def write_request(req: Request) -> None:
            # Only the tables this write changes are waited for.
            self._pushed_now = set()
            write(req)

        daemon.handle(P.TT_WRITE, write_request)
        daemon.handle(R.TT_LIVE_SUBSCRIBE, self._live_subscribe)
        daemon.handle(R.TT_LIVE_UNSUBSCRIBE, self._live_unsubscribe)
        self._tick = daemon.every(CONSUME_S, self.tick)
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
            # Live subscribers learn it on their own socket, before any packet holding it.
            ports = {port for subs in self.subs.values() for port in subs}
            for port in ports:
                self.d.send(port, [R.encode_live_marker(mid, name, text, self.d.port)])
        p.markers.add(mid)
        p.last_seen = time.monotonic()
        req.reply([R.nla_u32(R.TT_A_ID, mid), R.nla_str(R.TT_A_NAME, name)])
        self._push_targets(p, force=True)  # what probe.marker() waits for

    def _targets_ack(self, req: Request) -> None:
        p = self.probes.get(req.port)
        if p is None:
            return
        p.last_seen = time.monotonic()
        p.acked_gen = max(p.acked_gen, req.attrs.u32(R.TT_A_GEN))
        req.answered = True  # a notification: nothing to answer
        self._check_waiters(time.monotonic())

    def _lost(self, req: Request) -> None:
        """Events a probe emitted before its marker's targets were known: charged as lost."""
        req.answered = True
        m = self.ns.markers.get(req.attrs.u32(R.TT_A_ID))
        count = R.attr_u64(req.attrs, R.TT_A_COUNT)
        if m is None or not count:
            return
        for _t, c in self.ns.targets(m.name):
            if c.buffers is not None:
                c.buffers.charge_lost(0, count)

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

    def _push_targets(self, p: Probe, force: bool = False) -> None:
        table = self._table_for(p)
        if table == p.table and not force:
            return  # nothing moved for this process: nothing to wait for either
        self.gen += 1
        p.table, p.sent_gen = table, self.gen
        self._pushed_now.add(p.port)
        self.d.send(p.port, [R.encode_targets(table, self.d.port, self.gen)])

    def push_all_targets(self, force: bool = False) -> None:
        for p in list(self.probes.values()):
            self._push_targets(p, force)

    # ------------------------------------------------------------------------- exact replies

    def defer(self, req: Request) -> bool:
        """Called by the daemon after a write: hold its reply until the probes whose table
        changed acknowledged.  True when the reply is ours to send."""
        stops, self._stops_new = self._stops_new, []
        pushed, self._pushed_now = self._pushed_now, set()
        need = {
            p.port: p.sent_gen
            for port in pushed
            if (p := self.probes.get(port)) is not None and p.acked_gen < p.sent_gen
        }
        if not need:
            for name in stops:
                self._finish_stop(name)
            return False
        req.answered = True
        path = req.attrs.str(P.TT_A_PATH, "")
        self.waiters.append(Waiter(req, need, time.monotonic() + self.ack_timeout, stops, path))
        return True

    def _check_waiters(self, now: float) -> None:
        for w in list(self.waiters):
            missing = [
                p
                for port, gen in w.need.items()
                if (p := self.probes.get(port)) is not None and p.acked_gen < gen
            ]
            if missing and now < w.deadline:
                continue
            self.waiters.remove(w)
            for name in w.stops:
                try:
                    self._finish_stop(name)
                except Exception:  # the reply goes out whatever happened; the log has it
                    log(f"final drain of trace '{name}' failed:\n{traceback.format_exc()}")
            if not missing:
                w.req.ack()
                continue
            pids = sorted(p.pid for p in missing)
            for pid in pids:
                self.unacknowledged[pid] = self.unacknowledged.get(pid, 0) + 1
            who = ", ".join(str(pid) for pid in pids)
            text = (
                f"done, but process{'es' if len(pids) > 1 else ''} {who} did not acknowledge "
                f"the change within {self.ack_timeout:g} s (stopped?): "
                "events it emits meanwhile may follow the old settings"
            )
            log(f"write {w.path}: {text}")
            w.req.daemon.send(
                w.req.port, [P.encode_error(w.req.raw_header(), 0, text, self.d.port)]
            )

    def _on_change(self, change: Change) -> None:
        # Any change may move events: start/stop, filters, allocation, channels.
        if change.op in ("write", "state", "mkdir", "rmdir"):
            self.push_all_targets()

    def _reap_probes(self) -> None:
        now = time.monotonic()
        for port, p in list(self.probes.items()):
            state = proc_state(p.pid)
            # A stopped process cannot ping; it is still there, and waited for.
            alive = state == "stopped" or (state == "running" and now - p.last_seen < PROBE_DEAD_S)
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
            relay = self.relays.get(t.name)
            if relay is not None:
                relay.begin(self._relay_streams(t))  # a relay session while the output is open
        return w

    @staticmethod
    def _relay_streams(t: Trace) -> list[str]:
        """Every per-CPU stream of every continuously consumed channel: a relay session
        announces them all before any data (flight channels' come with their snapshots).

        relayd 2.13 takes a stream's live beacons only once it has had a packet, so a buffer
        never written gets an empty packet now (what lttng-consumerd's live timer does with
        an empty flush): viewers can then move past a CPU that never traces."""
        out = []
        for c in t.channels.values():
            if c.buffers is None or c.flight:
                continue
            for b in range(c.buffers.nbuf):
                c.buffers.charge_lost(b, 0)  # an empty first packet if it has none
                out.append(stream_file_name(c.name, b))
        return out

    def _on_allocated(self, t: Trace, c: TraceChannel) -> None:
        relay = self.relays.get(t.name)
        if relay is not None and t.name in self.writers:
            relay.begin(self._relay_streams(t))  # a channel added while streaming

    def _on_starting(self, t: Trace) -> None:
        self._writer(t)  # refuses the start when the output cannot be written

    def _on_stopped(self, t: Trace) -> None:
        # The tables without this trace go out now; the final drain waits for the probes'
        # acknowledgements (defer), so it holds everything emitted before the reply.
        self.push_all_targets()
        self._stopping[t.name] = time.monotonic() + self.ack_timeout
        self._stops_new.append(t.name)

    def _finish_stop(self, name: str) -> None:
        """The final drain of a stopped trace; its output stays open while a reservation in
        it is uncommitted (lingering), and closes once everything is in or counted."""
        self._stopping.pop(name, None)
        t = self.ns.traces.get(name)
        w = self.writers.get(name)
        if t is None or w is None or t.running:
            return  # removed, or started again meanwhile: its writer goes on
        owed = False
        for c in t.channels.values():
            if c.buffers is None:
                continue
            c.buffers.flush()
            if c.flight:
                self._write_flight(t, c, w)
                continue
            self._drain(t, c, w, budget=None)
            # Losses after the last packet: once drained, an empty packet can carry them.
            if c.buffers.flush():
                self._drain(t, c, w, budget=None)
            owed = owed or c.buffers.pending() > 0
        if owed:
            self.lingering.add(name)
            return
        self.lingering.discard(name)
        self._close_writer(t, w)

    def _close_writer(self, t: Trace, w: ctf.TraceWriter) -> None:
        try:
            w.sync()
        except OSError as e:
            self._output_failed(t, e)
        finally:
            w.close()
            del self.writers[t.name]
            relay = self.relays.get(t.name)
            if relay is not None:
                relay.end()  # every packet is handed over: the relay session ends

    def _on_removing(self, t: Trace) -> None:
        relay = self.relays.pop(t.name, None)
        if relay is not None:
            relay.close(timeout=0)
        w = self.writers.pop(t.name, None)
        if w is not None:
            w.close()
        for c in t.channels.values():
            self.subs.pop(c.path, None)

    def _on_freeing(self, t: Trace, c: TraceChannel) -> None:
        if t.name in self._stopping:
            self._finish_stop(t.name)  # no loop turn left to wait in (daemon shutdown)
        w = self.writers.get(t.name)
        if w is not None and not t.running:
            # Lingering (a writer still owed a commit): the buffers go now, so what they hold
            # is written and the output closed; the owed record is gone with them.
            for other in t.channels.values():
                if other.buffers is not None and not other.flight:
                    self._drain(t, other, w, budget=None)
                    if other.buffers.flush():
                        self._drain(t, other, w, budget=None)
            self._close_writer(t, w)
        elif c.buffers is not None and not c.flight and w is not None:
            self._drain(t, c, w, budget=None)
        self.lingering.discard(t.name)
        for b in range(c.buffers.nbuf if c.buffers else 0):
            self._stuck.pop((c.shm_name, b), None)
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
                relay = self.relays.get(t.name)
                if relay is not None:
                    relay.end()

    def _write_flight(self, t: Trace, c: TraceChannel, w: ctf.TraceWriter) -> None:
        assert c.buffers is not None
        c.buffers.flush()
        for b in range(c.buffers.nbuf):
            for pkt in self._packets_of(c.buffers.snapshot(b), c.subbuf_size):
                self._write(t, w, c.name, b, pkt)

    def _write(self, t: Trace, w: ctf.TraceWriter, channel: str, cpu: int, pkt: memoryview) -> None:
        try:
            new = w.write_packet(channel, cpu, pkt)
        except OSError as e:
            self._output_failed(t, e)
            new = True
        relay = self.relays.get(t.name)
        if relay is not None and new:
            if not relay.begun:
                relay.begin(self._relay_streams(t))
            relay.put(stream_file_name(channel, cpu), pkt)

    def _on_relay(self, t: Trace) -> None:
        """The trace's relay file changed: stop the old streamer (it finishes on its own
        thread), start one for the new URL.  The output directory must exist for the metadata,
        so a trace not recording yet starts streaming when its writer opens."""
        old = self.relays.pop(t.name, None)
        if old is not None:
            old.close(timeout=0)
        if t.relay:
            from tracetui.core.wire.relayd import parse_url

            relay = self.relays[t.name] = RelayStreamer(
                parse_url(t.relay), t.name, lambda: t.output
            )
            if t.name in self.writers:
                relay.begin(self._relay_streams(t))  # recording already: streams now

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
        self._tick.interval = LIVE_S if any(self.subs.values()) else CONSUME_S
        if self.waiters:
            self._check_waiters(now)
        self._tell_drops()
        for name, due in list(self._stopping.items()):
            if now >= due and not any(name in w.stops for w in self.waiters):
                self._finish_stop(name)  # stopped outside a request
        check_stuck = now - self._last_stuck >= STUCK_CHECK_S
        if check_stuck:
            self._last_stuck = now
        for t in list(self.ns.traces.values()):
            draining = t.name in self._stopping or t.name in self.lingering
            for c in t.channels.values():
                ch = c.buffers
                if ch is None:
                    continue
                if check_stuck:
                    self._check_dead_writers(c, now)
                if not t.running and not draining:
                    continue
                if c.flight and draining:
                    continue
                if c.flight:
                    if self.subs.get(c.path):
                        self._live_flight(c)
                    continue
                w = self.writers.get(t.name)
                if w is not None and time.monotonic() < deadline:
                    self._drain(t, c, w, budget=deadline)
            if t.name in self.lingering and t.name not in self._stopping:
                self._finish_stop(t.name)  # closes the output once nothing is owed

    # ------------------------------------------------------------------------- dead writers

    def _check_dead_writers(self, c: TraceChannel, now: float) -> None:
        """Reclaim a sub-buffer only a dead process can owe; forget mappers that owe nothing."""
        ch = c.buffers
        assert ch is not None
        states = {pid: proc_state(pid) for pid in set(ch.mappers())}
        dead = [pid for pid, s in states.items() if s == "dead"]
        if dead and not any(self._stuck.get((c.shm_name, b)) for b in range(ch.nbuf)):
            # Close every open sub-buffer: a reservation the dead left is then in a closed
            # one; if none is incomplete, the dead owe nothing and are forgotten.
            ch.flush()
            if ch.incomplete() == 0:
                for pid in dead:
                    ch.forget_mapper(pid)
                dead = []
        for b in range(ch.nbuf):
            key = (c.shm_name, b)
            st = ch.stuck(b)
            if st is None:
                self._stuck.pop(key, None)
                continue
            seen = self._stuck.get(key)
            if seen is None or (seen.subbuf, seen.commit) != st:
                self._stuck[key] = Stuck(st[0], st[1], now, 0)
                continue
            if not dead or now - seen.since < STUCK_SETTLE_S:
                continue
            if any(s == "stopped" for s in states.values()):
                continue  # a stopped process may hold the reservation: wait for it
            if not seen.gen:
                # Every living probe must show it is not in the middle of an emit (its
                # acknowledgement of a new table means exactly that) before a reclaim.
                self.push_all_targets(force=True)
                seen.gen = max(self.gen, 1)
                continue
            probes = {p.pid: p for p in self.probes.values()}
            if any(
                s == "running" and pid in probes and probes[pid].acked_gen < seen.gen
                for pid, s in states.items()
            ):
                continue  # a living probe may be in the middle of an emit still
            if ch.reclaim(b, seen.subbuf):
                self.reclaimed += 1
                log(
                    f"{c.path}: dropped sub-buffer {seen.subbuf} of buffer {b}: a record in it "
                    f"was never committed and its writer is dead (pids {sorted(dead)})"
                )
            self._stuck.pop(key, None)

    def _drain(self, t: Trace, c: TraceChannel, w: ctf.TraceWriter, budget: float | None) -> None:
        ch = c.buffers
        assert ch is not None
        subs = self.subs.get(c.path)
        relay = self.relays.get(t.name)
        now = time.monotonic()
        flush_after = LIVE_S if subs else FLUSH_S
        for b in range(ch.nbuf):
            key = (c.shm_name, b)
            got = self._take_packets(t, c, w, b, subs, budget)
            if not got and now - self._last_packet.get(key, 0.0) >= flush_after:
                # Read before looking: no event older than this is still to come if the
                # buffer turns out empty (the relay's live beacon).
                ts = ring.clock_now() if relay is not None else 0
                if ch.flush(b):
                    # A slow buffer: its partial packet is closed and taken now, so it reaches
                    # disk and live views this tick.
                    self._take_packets(t, c, w, b, subs, budget)
                    got = True
                elif relay is not None and ch.pending(b) == 0:
                    relay.quiet(stream_file_name(c.name, b), ts)
            if got:
                self._last_packet[key] = now

    def _take_packets(
        self,
        t: Trace,
        c: TraceChannel,
        w: ctf.TraceWriter,
        b: int,
        subs: dict[int, Subscriber] | None,
        budget: float | None,
    ) -> bool:
        """Write (and fan out) the complete packets of buffer ``b``; whether there were any."""
        ch = c.buffers
        assert ch is not None
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
        return got

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
        self._tick.interval = LIVE_S
        self._tick.due = min(self._tick.due, time.monotonic() + LIVE_S)
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
        if content <= ctf.PACKET_HEADER_SIZE:
            return
        packet = pkt[:content]  # whole: subscribers read losses from its header
        sock = self.d.sock
        assert sock is not None
        for port, s in list(subs.items()):
            msgs = R.encode_live_packet(s.path, cpu, h[7], s.dropped, packet, self.d.port)
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
            else:
                s.told = s.dropped

    def _tell_drops(self) -> None:
        """Tell each subscriber of packets it lost that no later packet has reported.

        Drops at the end of a burst would otherwise stay unknown to a view until the channel
        records again; a notice is one small message, retried each tick until it gets through."""
        sock = self.d.sock
        if sock is None:
            return
        for path, subs in self.subs.items():
            for port, s in list(subs.items()):
                if s.told == s.dropped:
                    continue
                try:
                    sock.sendto(
                        R.encode_live_drops(path, s.dropped, self.d.port),
                        socket.MSG_DONTWAIT,
                        (port, 0),
                    )
                except BlockingIOError:
                    continue  # still full: next tick
                except OSError:
                    del subs[port]
                    continue
                s.told = s.dropped

    def status(self) -> dict[str, object]:
        return {
            "probes": len(self.probes),
            "probe_pids": sorted(p.pid for p in self.probes.values()),
            "writers": sorted(self.writers),
            "live_subscribers": sum(len(s) for s in self.subs.values()),
            "write_errors": self.write_errors,
            "waiting_replies": len(self.waiters),
            "lingering": sorted(self.lingering),
            "reclaimed": self.reclaimed,
            "unacknowledged": {str(k): v for k, v in self.unacknowledged.items()},
            "last_write_error": self.last_write_error,
            "relays": {name: r.status() for name, r in self.relays.items()},
        }

    def close(self) -> None:
        for name in list(self._stopping):
            self._finish_stop(name)
        for w in self.writers.values():
            with contextlib.suppress(OSError):
                w.sync()
            w.close()
        self.writers.clear()
        for r in self.relays.values():
            r.close(timeout=5.0)
        self.relays.clear()


def install(daemon: Daemon) -> Recorder:
    from tracetui.core.daemon.namespace import RootFile

    rec = Recorder(daemon)
    # `read recording`: the recorder's state as JSON (probes, open outputs, live subscribers).
    daemon.namespace.root_files["recording"] = RootFile(lambda: json.dumps(rec.status()))
    return rec
