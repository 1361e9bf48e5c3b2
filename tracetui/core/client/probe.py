"""The traced process's link to the daemon: marker registration and target lists.

One background thread per process (a daemon thread: it never holds the program at exit).
It finds the daemon through the runtime directory's port file, says hello as a probe,
registers every marker (the daemon assigns ids), and applies the target tables the daemon
pushes: for each marker, the channels (shared-memory ring buffers) its events go to.  It
pings the daemon every second; when the daemon stops answering, every marker is disabled
and the thread looks for a daemon again, so markers survive a daemon restart.

Exactness.  After swapping in a table the thread waits (ring.synchronize) until no emit
that began under the older table still runs, then acknowledges it (TT_TARGETS_ACK, GEN):
the daemon holds its reply to start, stop and filter writes for those acknowledgements.
``probe.marker`` waits (:meth:`ProbeClient.wait_registered`, at most REGISTER_TIMEOUT_S) until
its marker's targets are applied when a daemon answers; when that times out, the marker
counts what it emits until its targets come and reports the count (TT_LOST), so the trace
charges those events as lost instead of never knowing of them.

Nothing here may hurt the traced program: every failure (no daemon, a refused message, a
channel that cannot be mapped) disables the markers concerned and is retried later.  The
thread only ever talks to a socket whose replies come from the daemon's uid (SO_PASSCRED).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracetui.core import ring
from tracetui.core.client import rendezvous as runtime
from tracetui.core.client.connection import _ANC_SIZE, _Conn
from tracetui.core.errors import TraceError
from tracetui.core.ring import GRACE_S, Channel, RingError
from tracetui.core.wire import protocol as P
from tracetui.core.wire import recording as R

PING_S = 1.0
DEAD_S = 3.5  # no message from the daemon for this long: it is gone
RETRY_S = 0.5
STALL_S = 1.5  # a loop turn takes at most PING_S / 2: a longer gap means we were stopped
SYNC_FIRST_S = 0.2  # quiescence wait right after a table; then retried every loop turn
SYNC_RETRY_S = 0.05
DEFAULT_REGISTER_TIMEOUT_S = 3.0  # LTTng-UST's LTTNG_UST_REGISTER_TIMEOUT default


def register_timeout() -> float:
    """TRACETUI_REGISTER_TIMEOUT (seconds; 0 disables waiting), else 3 s."""
    try:
        v = float(os.environ.get("TRACETUI_REGISTER_TIMEOUT", DEFAULT_REGISTER_TIMEOUT_S))
    except ValueError:
        return DEFAULT_REGISTER_TIMEOUT_S
    return v if v >= 0 else DEFAULT_REGISTER_TIMEOUT_S


class ProbeClient:
    """Registers this process's markers and keeps their targets current."""

    def __init__(self, markers: Callable[[], list[Any]], runtime_dir: str | None = None) -> None:
        self._markers = markers
        # Resolved once: the daemon this process traces for does not change with the
        # environment later (TRACETUI_RUNTIME_DIR read at the first marker).
        self._runtime_dir = str(runtime.runtime_dir(runtime_dir))
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pending: list[Any] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._conn: _Conn | None = None
        self._seq = 0
        self._by_id: dict[int, Any] = {}
        self._awaiting: dict[str, Any] = {}
        self._channels: dict[str, Channel] = {}
        self._retired: list[tuple[float, Channel]] = []
        self._thread: threading.Thread | None = None
        self._stop = False
        self._ready: dict[str, threading.Event] = {}  # marker name -> its targets are applied
        self._await_table: list[Any] = []  # ids known, waiting for the next table
        self._seq_marker: dict[int, Any] = {}  # registration seq -> marker (error replies)
        self._early: set[Any] = set()  # markers counting what they emit before their targets
        self._unacked: int | None = None  # generation applied but not acknowledged yet
        self.connected = threading.Event()
        self.targets_applied = 0  # tables applied so far (tests wait on it)
        self.gen = 0  # generation of the last table applied
        self.last_error = ""  # why the last session ended, for diagnostics

    # -- public ---------------------------------------------------------------------------------

    def start(self) -> None:
        # Every session registers every marker: each can be waited for from now on.
        with self._lock:
            for m in self._markers():
                self._ready.setdefault(m.name, threading.Event())
        self._thread = threading.Thread(target=self._run, name="tracetui-probe", daemon=True)
        self._thread.start()

    def register(self, marker: Any) -> None:
        """Queue a marker for registration (the thread sends it)."""
        with self._lock:
            self._ready.setdefault(marker.name, threading.Event())
            self._pending.append(marker)
        self._wake()

    register_timeout = staticmethod(register_timeout)

    def daemon_answers(self) -> bool:
        """A daemon is there to wait for: its port file exists and its pid runs."""
        try:
            info = runtime.read_port_file(Path(self._runtime_dir))
        except (OSError, ValueError, TraceError):
            return False
        return runtime.pid_alive(info.pid)

    def wait_registered(self, marker: Any, timeout: float) -> bool:
        """Wait until MARKER's targets are applied; on timeout, count its early events."""
        with self._lock:
            ev = self._ready.get(marker.name)
        if ev is None or ev.wait(timeout):
            return True
        with self._lock:
            if ev.is_set():
                return True
            # Until its targets come, what it emits is counted (and reported as lost).
            marker.native.count_early(True)
            marker.enabled = True  # so Python-level markers reach the C side, which counts
            self._early.add(marker)
        return False

    def stop(self) -> None:
        self._stop = True
        self._wake()
        if self._thread is not None:
            self._thread.join(2)

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's thread and socket are not ours."""
        self._stop = True
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                continue
        if self._sock is not None:
            self._sock.close()

    # -- the thread -----------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            return  # pipe full: the thread is awake anyway

    def _run(self) -> None:
        while not self._stop:
            try:
                self._session()
                self.last_error = "the daemon stopped answering"
            except (OSError, TraceError, ValueError, struct.error) as e:
                # Never the program's problem: disable, then look for a daemon again.
                self.last_error = str(e)
            self._disconnect()
            if not self._stop:
                time.sleep(RETRY_S)

    def _connect(self) -> None:
        # The clients' rendezvous: port file, connected socket, the uid replies must carry.
        self._conn = _Conn(self._runtime_dir, timeout=DEAD_S)
        self._sock = self._conn.sock

    def _session(self) -> None:
        self._connect()
        self._send(R.encode_probe_hello(self._next()))
        with self._lock:
            self._pending = list(self._markers())
        self._by_id.clear()
        self._awaiting.clear()
        last_rx = time.monotonic()
        last_ping = 0.0
        self.connected.set()
        last_turn = time.monotonic()
        while not self._stop:
            self._send_pending()
            now = time.monotonic()
            if now - last_turn > STALL_S:
                # This process was stopped (SIGSTOP, ctrl+Z, a debugger), not the daemon:
                # ask again before judging it gone.
                last_rx = now
                last_ping = 0.0
            last_turn = now
            if now - last_ping >= PING_S:
                self._send(R.encode_ping(self._next()))
                last_ping = now
                self._reap(now)
            assert self._sock is not None
            ready, _, _ = select.select([self._sock.fileno(), self._wake_r], [], [], PING_S / 2)
            if time.monotonic() - now > STALL_S:
                last_rx = time.monotonic()  # stopped inside select: see above
                last_ping = 0.0
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            if self._sock.fileno() in ready and self._receive():
                last_rx = time.monotonic()
            if time.monotonic() - last_rx > DEAD_S:
                return
            if self._unacked is not None:
                self._try_ack(SYNC_RETRY_S)

    def _send_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for m in pending:
            seq = self._next()
            self._send(R.encode_marker(seq, m.name, m.format.text))
            self._awaiting[m.name] = m
            self._seq_marker[seq] = m

    def _receive(self) -> bool:
        """Read every queued datagram; True if any came from the daemon."""
        assert self._sock is not None
        got = False
        while True:
            try:
                data, anc, _, _ = self._sock.recvmsg(1 << 16, _ANC_SIZE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return got
            try:
                assert self._conn is not None
                self._conn.check_sender(anc)
            except TraceError:
                continue  # not from the daemon's uid: a squatter, ignored
            got = True
            for hdr, payload in P.iter_messages(data):
                self._handle(hdr, payload)

    def _handle(self, hdr: P.Header, payload: memoryview) -> None:
        if hdr.type == R.TT_MARKER:
            attrs = P.Attrs.parse(payload)
            m = self._awaiting.pop(attrs.str(R.TT_A_NAME), None)
            if m is not None:
                mid = attrs.u32(R.TT_A_ID)
                m._id = mid
                m.native.set_id(mid)
                self._by_id[mid] = m
                self._seq_marker.pop(hdr.seq, None)
                # The daemon pushes a table covering it right after this reply.
                self._await_table.append(m)
        elif hdr.type == R.TT_TARGETS:
            attrs = P.Attrs.parse(payload)
            self._apply(R.decode_targets(attrs))
            self.gen = attrs.u32(R.TT_A_GEN, 0)
            for m in self._await_table:
                self._set_ready(m)
            self._await_table = []
            self._unacked = self.gen
            self._try_ack(SYNC_FIRST_S)
        elif hdr.type == P.NLMSG_ERROR:
            err, _text = P.decode_error(payload)
            if err == errno.ENOENT and hdr.seq == 0:
                raise TraceError(err, "the daemon forgot this process")
            m = self._seq_marker.pop(hdr.seq, None)
            if err and m is not None:
                # Refused (the daemon's rules differ from ours): nothing will come to wait for.
                self._awaiting.pop(m.name, None)
                self._set_ready(m)

    def _set_ready(self, m: Any) -> None:
        with self._lock:
            ev = self._ready.get(m.name)
        if ev is not None:
            ev.set()

    def _try_ack(self, timeout: float) -> None:
        """Acknowledge the applied table once no emit begun under an older one still runs."""
        if self._unacked is None or not ring.synchronize(timeout):
            return  # an emit is stopped mid-way (SIGSTOP, debugger): retried next turn
        gen, self._unacked = self._unacked, None
        with self._lock:
            early = [m for m in self._early if self._ready[m.name].is_set()]
            for m in early:
                m.native.count_early(False)
                m.enabled = bool(m.native.targets)
                self._early.discard(m)
        for m in early:
            # After the synchronize: no emit that saw the empty list is still counting.
            n = m.native.take_early()
            if n:
                self._send(R.encode_lost(self._next(), m._id, n))
        self._send(R.encode_targets_ack(self._next(), gen))

    def _apply(self, table: dict[int, list[str]]) -> None:
        used: set[str] = set()
        for mid, m in self._by_id.items():
            chans = []
            for name in table.get(mid, []):
                ch = self._channel(name)
                if ch is not None:
                    chans.append(ch)
                    used.add(name)
            m.native.set_targets(chans)
            if m not in self._early:
                m.enabled = bool(chans)
        now = time.monotonic()
        for name in [n for n in self._channels if n not in used]:
            # Writers may still hold the old target list: unmap after its grace.
            self._retired.append((now + 2 * GRACE_S, self._channels.pop(name)))
        self.targets_applied += 1

    def _channel(self, name: str) -> Channel | None:
        ch = self._channels.get(name)
        if ch is None:
            try:
                ch = Channel.open(name)
            except RingError:
                return None  # freed meanwhile: the next table will not name it
            self._channels[name] = ch
        return ch

    def _reap(self, now: float) -> None:
        for m in self._by_id.values():
            m.native.reap(now)
        keep = []
        for due, ch in self._retired:
            if due <= now:
                ch.close()
            else:
                keep.append((due, ch))
        self._retired = keep

    def _disconnect(self) -> None:
        self.connected.clear()
        if self.targets_applied:
            # Targets from a daemon that is gone: nothing may be written for it any more.
            for m in self._markers():
                m.enabled = False
                m.native.set_targets([])
        if self._channels:
            now = time.monotonic()
            self._retired += [(now + 2 * GRACE_S, ch) for ch in self._channels.values()]
            self._channels = {}
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._conn = None

    def _send(self, msg: bytes) -> None:
        assert self._sock is not None
        self._sock.send(msg, socket.MSG_DONTWAIT)

    def _next(self) -> int:
        self._seq = (self._seq + 1) & 0x7FFFFFFF or 1
        return self._seq
