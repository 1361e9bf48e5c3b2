"""The tracetui daemon: serves the control namespace over NETLINK_USERSOCK, one loop, one thread.

This module owns the daemon's life (start, one instance per runtime directory, clean shutdown on
SIGTERM/SIGINT), who may talk to it (the kernel-supplied uid of every datagram: only the daemon's
own uid and root), how replies leave (never blocking: a client that stops reading is dropped, not
waited for), and the dispatch of messages to handlers.

The loop is built to be extended without being rewritten (the recording work plugs in here):

- ``daemon.handle(msg_type, fn)``: a handler per message type (``fn(req: Request)``; raise
  TraceError to refuse, call ``req.reply``/``req.ack`` to answer); types 0x20-0x2F are reserved
  for recording (see tracetui.core.wire.protocol);
- ``daemon.every(seconds, fn)``: periodic work (the consumer draining buffers every ~50 ms);
- ``daemon.add_reader(fd, fn)``: another file descriptor to watch;
- ``daemon.namespace.hooks``: trace start/stop, filter changes, channels added/allocated/freed;
- ``daemon.peer_gone``: callables told when a client port disappears or is dropped;
- ``daemon.deferrers``: callables that may hold the reply to a ``write`` (exact start/stop);
- ``daemon.send(port, datagrams)`` and ``daemon.broadcast(change)`` to push messages;
- the recorder (daemon/recorder.py) is installed at start, explicitly (``recorder.install``).

::

    poll(netlink socket, signal wakeup pipe, extra fds; timeout = next periodic deadline)
      -> recvmsg_into (SO_PASSCRED) -> per netlink message: authorize uid, check version,
         dispatch by type -> handler -> reply (sendto MSG_DONTWAIT; EAGAIN -> per-client outbox)
      -> periodic callables that are due -> retry outboxes; drop clients stuck > DROP_AFTER_S
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tracetui.core.client import rendezvous as runtime
from tracetui.core.daemon import recorder
from tracetui.core.daemon.log import log
from tracetui.core.daemon.namespace import Namespace, RootFile
from tracetui.core.errors import TraceError
from tracetui.core.wire import protocol as P
from tracetui.core.wire.protocol import Attrs, Change, Header, ProtocolError

SO_PASSCRED = getattr(socket, "SO_PASSCRED", 16)
SCM_CREDENTIALS = getattr(socket, "SCM_CREDENTIALS", 2)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_CREDS = struct.Struct("=iII")  # struct ucred: pid, uid, gid
_ANC_SIZE = socket.CMSG_SPACE(_CREDS.size)

# Modules imported at start whose install(daemon) adds handlers, periodic work and hooks.

RCVBUF = 4 << 20  # absorbs bursts from many clients
DROP_AFTER_S = 1.0  # a client whose socket stays full this long is dropped
MAX_OUTBOX = 1 << 20  # bytes queued for one client before it is dropped
MAX_BATCH = 256  # datagrams read per loop turn, so periodic work still runs under load
MAX_DROPPED_REMEMBERED = 1024


@dataclass
class Periodic:
    interval: float
    fn: Callable[[], None]
    due: float = 0.0


@dataclass
class Peer:
    """A client port the daemon keeps state for: pending replies, subscription."""

    port: int
    outbox: deque[bytes] = field(default_factory=deque)
    outbox_bytes: int = 0
    blocked_since: float = 0.0
    subscribed: bool = False


class Request:
    """One request from a client, handed to a handler."""

    __slots__ = ("_attrs", "answered", "daemon", "header", "payload", "pid", "port", "uid")

    def __init__(
        self, daemon: Daemon, port: int, pid: int, uid: int, header: Header, payload: memoryview
    ) -> None:
        self.daemon = daemon
        self.port = port  # the client's netlink port: where replies go
        self.pid = pid  # kernel-supplied credentials of the sending process
        self.uid = uid
        self.header = header
        self.payload = payload
        self.answered = False
        self._attrs: Attrs | None = None

    @property
    def type(self) -> int:
        return self.header.type

    @property
    def seq(self) -> int:
        return self.header.seq

    @property
    def attrs(self) -> Attrs:
        if self._attrs is None:
            self._attrs = Attrs.parse(self.payload)
        return self._attrs

    def raw_header(self) -> bytes:
        h = self.header
        return struct.pack("=IHHII", h.length, h.type, h.flags, h.seq, h.pid)

    def reply(self, attrs: list[bytes], typ: int | None = None) -> None:
        """Answer with a message of the request's type (or TYP) carrying ATTRS (encoded NLAs)."""
        self.answered = True
        self.daemon.send(
            self.port,
            P.encode_reply(self.type if typ is None else typ, self.seq, attrs, self.daemon.port),
        )

    def ack(self) -> None:
        self.answered = True
        self.daemon.send(self.port, [P.encode_error(self.raw_header(), 0, None, self.daemon.port)])

    def error(self, err: int, text: str) -> None:
        self.answered = True
        self.daemon.send(
            self.port, [P.encode_error(self.raw_header(), err, text, self.daemon.port)]
        )


Handler = Callable[[Request], None]


class Daemon:
    """The daemon of one runtime directory."""

    def __init__(self, directory: Path, namespace: Namespace | None = None) -> None:
        self.directory = directory
        self.namespace = namespace or Namespace()
        self.uid = os.getuid()
        self.pid = os.getpid()
        self.port = 0
        self.sock: socket.socket | None = None
        self.handlers: dict[int, Handler] = {}
        self.periodic: list[Periodic] = []
        self.readers: dict[int, Callable[[], None]] = {}
        self.peer_gone: list[Callable[[int], None]] = []
        self.recorder: recorder.Recorder | None = None  # installed by open()
        # Called after a write was applied; one returning True has taken over the reply (it
        # answers later, e.g. once traced processes acknowledged the change).
        self.deferrers: list[Callable[[Request], bool]] = []
        self.peers: dict[int, Peer] = {}
        self.started = time.monotonic()
        self.counters = dict.fromkeys(
            ("requests", "malformed", "refused", "errors", "clients_dropped", "internal_errors"), 0
        )
        self._dropped: OrderedDict[int, str] = OrderedDict()
        self._stopping = False
        self._lock = runtime.DaemonLock(directory)
        self._buf = bytearray(P.MAX_REQUEST + 4096)
        self._wake_r = self._wake_w = -1
        self._poller: select.poll | None = None
        self._install_builtin()

    # ------------------------------------------------------------------------- extension API

    def handle(self, msg_type: int, fn: Handler) -> None:
        """Route messages of MSG_TYPE to FN (replacing any previous handler)."""
        self.handlers[msg_type] = fn

    def every(self, interval: float, fn: Callable[[], None]) -> Periodic:
        """Call FN about every INTERVAL seconds from the loop (the caller may change it)."""
        p = Periodic(interval, fn, time.monotonic() + interval)
        self.periodic.append(p)
        return p

    def add_reader(self, fd: int, fn: Callable[[], None]) -> None:
        self.readers[fd] = fn
        if self._poller is not None:
            self._poller.register(fd, select.POLLIN)

    def remove_reader(self, fd: int) -> None:
        self.readers.pop(fd, None)
        if self._poller is not None:
            with contextlib.suppress(KeyError):
                self._poller.unregister(fd)

    def broadcast(self, change: Change) -> None:
        """Send CHANGE to every subscribed client."""
        subscribers = [p.port for p in self.peers.values() if p.subscribed]
        if not subscribers:
            return
        data = P.encode_change(change, self.port)
        for port in subscribers:
            self.send(port, [data])

    def send(self, port: int, datagrams: list[bytes]) -> bool:
        """Send without ever blocking; what does not fit waits in the client's outbox.

        Returns False when the client is gone (its port is closed) or was dropped.
        """
        sock = self.sock
        assert sock is not None
        peer = self.peers.get(port)
        if peer is not None and peer.outbox:
            return self._queue(peer, datagrams, 0)
        for i, data in enumerate(datagrams):
            try:
                sock.sendto(data, socket.MSG_DONTWAIT, (port, 0))
            except BlockingIOError:
                if peer is None:
                    peer = self.peers[port] = Peer(port)
                peer.blocked_since = time.monotonic()
                return self._queue(peer, datagrams, i)
            except ConnectionRefusedError:
                self._forget(port)
                return False
            except OSError as e:
                log(f"cannot send to port {port}: {e.strerror}; forgetting it")
                self._forget(port)
                return False
        return True

    def subscribe(self, port: int, on: bool = True) -> None:
        if on:
            self.peers.setdefault(port, Peer(port)).subscribed = True
        else:
            peer = self.peers.get(port)
            if peer is not None:
                peer.subscribed = False
                if not peer.outbox:
                    del self.peers[port]

    def stop(self) -> None:
        """Ask the loop to end (safe from a signal handler or a handler)."""
        self._stopping = True
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"\0")

    # ------------------------------------------------------------------------- outboxes

    def _queue(self, peer: Peer, datagrams: list[bytes], start: int) -> bool:
        for data in datagrams[start:]:
            peer.outbox.append(data)
            peer.outbox_bytes += len(data)
        if peer.outbox_bytes > MAX_OUTBOX:
            self._drop(peer.port, f"more than {MAX_OUTBOX} bytes of replies waiting")
            return False
        return True

    def _flush_outboxes(self) -> None:
        sock = self.sock
        assert sock is not None
        now = time.monotonic()
        for peer in [p for p in self.peers.values() if p.outbox]:
            progressed = False
            while peer.outbox:
                data = peer.outbox[0]
                try:
                    sock.sendto(data, socket.MSG_DONTWAIT, (peer.port, 0))
                except BlockingIOError:
                    break
                except OSError:
                    self._forget(peer.port)
                    break
                peer.outbox.popleft()
                peer.outbox_bytes -= len(data)
                progressed = True
            if peer.port not in self.peers:
                continue
            if not peer.outbox:
                if not peer.subscribed:
                    del self.peers[peer.port]
            elif progressed:
                peer.blocked_since = now
            elif now - peer.blocked_since > DROP_AFTER_S:
                self._drop(peer.port, f"it read nothing for {DROP_AFTER_S:g} s")

    def _drop(self, port: int, why: str) -> None:
        self.counters["clients_dropped"] += 1
        self._dropped[port] = why
        while len(self._dropped) > MAX_DROPPED_REMEMBERED:
            self._dropped.popitem(last=False)
        log(f"dropped client port {port}: {why}")
        self._forget(port)

    def _forget(self, port: int) -> None:
        if self.peers.pop(port, None) is not None:
            for fn in self.peer_gone:
                self._guard(fn, port)

    # ------------------------------------------------------------------------- receiving

    def _drain_socket(self) -> None:
        sock = self.sock
        assert sock is not None
        buf = self._buf
        for _ in range(MAX_BATCH):
            try:
                n, anc, flags, addr = sock.recvmsg_into(
                    [buf], _ANC_SIZE, socket.MSG_DONTWAIT | socket.MSG_TRUNC
                )
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # our own receive buffer overflowed: keep going
                    self.counters["malformed"] += 1
                    continue
                raise
            self._on_datagram(memoryview(buf)[: min(n, len(buf))], n, anc, flags, addr[0])

    def _on_datagram(
        self, data: memoryview, size: int, anc: list[tuple[int, int, bytes]], flags: int, port: int
    ) -> None:
        if port == 0:
            return  # the kernel never talks to us on USERSOCK; nothing to answer
        pid = uid = -1
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == SCM_CREDENTIALS and len(cdata) >= _CREDS.size:
                pid, uid, _gid = _CREDS.unpack_from(cdata)
        if port in self._dropped:
            why = self._dropped.pop(port)
            self.send(port, [P.encode_change(Change("state", "", f"dropped: {why}"), self.port)])
        if flags & socket.MSG_TRUNC or size > len(self._buf):
            self.counters["malformed"] += 1
            if len(data) >= P.HDR_LEN:
                why = f"a request of {size} bytes exceeds the {P.MAX_REQUEST}-byte limit"
                self._error_raw(port, bytes(data[: P.HDR_LEN]), errno.EMSGSIZE, why)
            return
        try:
            for header, payload in P.iter_messages(data):
                self._on_message(port, pid, uid, header, payload)
        except ProtocolError as e:
            self.counters["malformed"] += 1
            if len(data) >= P.HDR_LEN:
                self._error_raw(port, bytes(data[: P.HDR_LEN]), e.errno, e.message)

    def _error_raw(self, port: int, header: bytes, err: int, text: str) -> None:
        _ln, typ, flags, _seq, _pid = struct.unpack("=IHHII", header)
        if typ < P.NLMSG_MIN_TYPE or not flags & P.NLM_F_REQUEST:
            return  # never answer what is not a request: two peers would echo errors forever
        self.send(port, [P.encode_error(header, err, text, self.port)])

    def _on_message(
        self, port: int, pid: int, uid: int, header: Header, payload: memoryview
    ) -> None:
        if header.type < P.NLMSG_MIN_TYPE or not header.flags & P.NLM_F_REQUEST:
            self.counters["malformed"] += 1
            return
        self.counters["requests"] += 1
        req = Request(self, port, pid, uid, header, payload)
        if uid != self.uid and uid != 0:
            self.counters["refused"] += 1
            req.error(
                errno.EPERM,
                f"uid {uid} may not use the tracetui daemon of uid {self.uid}; "
                "start your own with `tracetui daemon --detach`",
            )
            return
        try:
            version = P.check_version(payload)
            # hello answers any version itself, so an old client learns what the daemon speaks
            if version != P.PROTOCOL_VERSION and header.type != P.TT_HELLO:
                raise ProtocolError(
                    errno.EPROTO,
                    f"the client speaks tracetui protocol {version} and this daemon "
                    f"{P.PROTOCOL_VERSION}; use the same tracetui version for both",
                )
            handler = self.handlers.get(header.type)
            if handler is None:
                raise TraceError(
                    errno.EOPNOTSUPP,
                    f"message type {header.type:#x} is unknown to this daemon "
                    f"(protocol {P.PROTOCOL_VERSION})",
                )
            handler(req)
        except TraceError as e:
            self.counters["malformed" if isinstance(e, ProtocolError) else "errors"] += 1
            req.error(e.errno, e.message)
            return
        except Exception as e:  # a bug in a handler must not take every client down with it
            self.counters["internal_errors"] += 1
            log(f"internal error on message type {header.type:#x}:\n{traceback.format_exc()}")
            req.error(errno.EIO, f"the daemon failed on this request ({type(e).__name__}: {e})")
            return
        if not req.answered and header.flags & P.NLM_F_ACK:
            req.ack()

    # ------------------------------------------------------------------------- built-in verbs

    def _install_builtin(self) -> None:
        ns = self.namespace
        ns.listeners.append(self.broadcast)

        def hello(req: Request) -> None:
            wanted = req.attrs.u32(P.TT_A_VERSION, 0)
            if wanted != P.PROTOCOL_VERSION:
                raise ProtocolError(
                    errno.EPROTO,
                    f"the client speaks tracetui protocol {wanted} and this daemon "
                    f"{P.PROTOCOL_VERSION}; use the same tracetui version for both",
                )
            req.answered = True
            self.send(req.port, [P.encode_hello_reply(req.seq, self.pid, self.uid, self.port)])

        def ls(req: Request) -> None:
            entries = ns.ls(req.attrs.str(P.TT_A_PATH, ""))
            req.reply([P.entry_attr(e) for e in entries])

        def mkdir(req: Request) -> None:
            ns.mkdir(req.attrs.str(P.TT_A_PATH))
            req.ack()

        def rmdir(req: Request) -> None:
            ns.rmdir(req.attrs.str(P.TT_A_PATH))
            req.ack()

        def read(req: Request) -> None:
            req.reply(P.value_attrs(ns.read(req.attrs.str(P.TT_A_PATH))))

        def write(req: Request) -> None:
            attrs = req.attrs
            value = attrs.joined_str(P.TT_A_VALUE)
            if len(value) > P.MAX_VALUE:
                raise TraceError(errno.E2BIG, f"a value is at most {P.MAX_VALUE} characters")
            ns.write(attrs.str(P.TT_A_PATH), value)
            if not any(fn(req) for fn in self.deferrers):
                req.ack()

        def subscribe(req: Request) -> None:
            self.subscribe(req.port, req.type == P.TT_SUBSCRIBE)
            req.ack()

        for typ, fn in (
            (P.TT_HELLO, hello),
            (P.TT_LS, ls),
            (P.TT_MKDIR, mkdir),
            (P.TT_RMDIR, rmdir),
            (P.TT_READ, read),
            (P.TT_WRITE, write),
            (P.TT_SUBSCRIBE, subscribe),
            (P.TT_UNSUBSCRIBE, subscribe),
        ):
            self.handle(typ, fn)
        ns.root_files["status"] = RootFile(self.status_text)

    def status_text(self) -> str:
        """What a read of ``status`` returns: "key value" lines."""
        rows = {
            "pid": self.pid,
            "uid": self.uid,
            "port": self.port,
            "protocol": P.PROTOCOL_VERSION,
            "uptime_s": round(time.monotonic() - self.started, 1),
            **self.counters,
            "subscribers": sum(1 for p in self.peers.values() if p.subscribed),
            "clients_waiting": sum(1 for p in self.peers.values() if p.outbox),
            "traces": len(self.namespace.traces),
            "allocations": self.namespace.allocations,
            "markers": len(self.namespace.markers),
        }
        return "\n".join(f"{k} {v}" for k, v in rows.items())

    # ------------------------------------------------------------------------- life

    def open(self) -> None:
        """Take the directory, bind a netlink port, publish it. TraceError when it cannot."""
        runtime.ensure_runtime_dir(self.directory)
        self._lock.acquire()
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, P.NETLINK_USERSOCK)
            sock.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((0, 0))  # the kernel picks a free port; the port file publishes it
            sock.setblocking(False)
            self.sock = sock
            self.port = sock.getsockname()[0]
            self._remove_stale_shm()
            self.recorder = recorder.install(self)
            runtime.write_port_file(self.directory, self.port, P.PROTOCOL_VERSION)
        except OSError as e:
            self._lock.release()
            raise TraceError(
                e.errno or errno.EIO, f"cannot open the daemon's socket: {e.strerror}"
            ) from None

    def _remove_stale_shm(self) -> None:
        """Unlink buffers left by daemons of this user that died without cleaning up."""
        for path in glob.glob(f"/dev/shm/tracetui-{self.uid}-*-*"):
            pid_text = os.path.basename(path).split("-")[2]
            if (
                pid_text.isdigit()
                and int(pid_text) != self.pid
                and not runtime.pid_alive(int(pid_text))
            ):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    log(f"removed {path}, left by a daemon that died")

    def run(self) -> None:
        """Serve until stop() or SIGTERM/SIGINT."""
        sock = self.sock
        assert sock is not None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = signal.set_wakeup_fd(self._wake_w)
        old_handlers = {
            s: signal.signal(s, lambda *_: self.stop()) for s in (signal.SIGTERM, signal.SIGINT)
        }
        poller = self._poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        for fd in self.readers:
            poller.register(fd, select.POLLIN)
        sock_fd = sock.fileno()
        log(f"pid {self.pid} serving {self.directory} on netlink port {self.port}")
        try:
            while not self._stopping:
                for fd, _ev in poller.poll(self._timeout_ms()):
                    if fd == sock_fd:
                        self._drain_socket()
                    elif fd == self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 512)
                    else:
                        fn = self.readers.get(fd)
                        if fn is not None:
                            self._guard(fn)
                if self.periodic:
                    self._run_periodic()
                if any(p.outbox for p in self.peers.values()):
                    self._flush_outboxes()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for s, h in old_handlers.items():
                signal.signal(s, h)

    def _timeout_ms(self) -> int:
        timeout = 1000.0
        now = time.monotonic()
        for p in self.periodic:
            timeout = min(timeout, max(0.0, (p.due - now) * 1000))
        if any(p.outbox for p in self.peers.values()):
            timeout = min(timeout, 5.0)  # netlink gives no "writable" event for the receiver
        return int(timeout + 0.999)

    def _run_periodic(self) -> None:
        now = time.monotonic()
        for p in self.periodic:
            if now >= p.due:
                p.due = now + p.interval
                self._guard(p.fn)

    def _guard(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except TraceError as e:
            log(f"{getattr(fn, '__qualname__', fn)}: {e}")
        except Exception:  # an extension's bug must not stop the daemon; it is logged in full
            self.counters["internal_errors"] += 1
            log(f"internal error in {getattr(fn, '__qualname__', fn)}:\n{traceback.format_exc()}")

    def close(self) -> None:
        """Stop and flush running traces, unlink buffers, remove the port file, release."""
        self.broadcast(Change("state", "", "shutdown"))
        self._guard(self.namespace.shutdown)
        # Anything a hook refused to free is unlinked anyway: nothing may outlive the daemon.
        for name in self.namespace.shm_names():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/dev/shm{name}")
        runtime.remove_port_file(self.directory)
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        self._lock.release()
        log("stopped")


def main(directory: Path) -> int:
    """Run a daemon in the foreground until SIGTERM/SIGINT; the exit status."""
    d = Daemon(directory)
    try:
        d.open()
    except TraceError as e:
        print(f"tracetui: {e}", file=sys.stderr)
        return 1
    try:
        d.run()
    finally:
        d.close()
    return 0
