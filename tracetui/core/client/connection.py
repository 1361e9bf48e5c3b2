"""Client library of the control namespace: :class:`Client` (sync) and :class:`AsyncClient`.

This module owns the client side of the protocol: finding the daemon (the port file of the
runtime directory), the version handshake, checking that every reply comes from the expected uid
(the port file's owner, or root) so a squatted port is detected, and turning error replies back
into :class:`TraceError`. Both classes offer the same five verbs; the CLI and tests use
:class:`Client`, the Textual console :class:`AsyncClient` (which also streams namespace changes).

Both speak to a raw netlink socket with the struct codec of tracetui.core.wire.protocol: pyroute2
hides the sender's credentials, which the uid check needs, and its codec costs more than the round
trip.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracetui.core.client import rendezvous
from tracetui.core.errors import DaemonNotRunning, DaemonUnreachable, TraceError
from tracetui.core.wire import protocol as P
from tracetui.core.wire.protocol import Attrs, Change, Entry

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "AsyncClient",
    "Change",
    "Client",
    "DaemonNotRunning",
    "DaemonUnreachable",
    "Entry",
    "TraceError",
]

SO_PASSCRED = getattr(socket, "SO_PASSCRED", 16)
SCM_CREDENTIALS = getattr(socket, "SCM_CREDENTIALS", 2)
_CREDS = struct.Struct("=iII")
_ANC_SIZE = socket.CMSG_SPACE(_CREDS.size)
RCVBUF = 1 << 20
CHANGE_QUEUE = 10_000  # changes buffered per iterator before it is told to resync


def _open_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, P.NETLINK_USERSOCK)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind((0, 0))
        # A connected netlink socket only accepts datagrams from that port.
        sock.connect((port, 0))
    except OSError:
        sock.close()
        raise
    return sock


class _Conn:
    """What both clients share: where the daemon is, who it must be, how replies are read."""

    def __init__(self, runtime_dir: str | os.PathLike[str] | None, timeout: float) -> None:
        self.runtime_dir: Path = rendezvous.runtime_dir(runtime_dir)
        self.timeout = timeout
        self.last_warning = ""  # the last reply's warning sentence (an ack with a caveat)
        self.info = rendezvous.read_port_file(self.runtime_dir)
        self.daemon_pid = self.info.pid
        self.daemon_uid = self.info.uid
        try:
            self.sock = _open_socket(self.info.port)
        except OSError as e:
            raise TraceError(
                e.errno or errno.EIO, f"cannot open a netlink socket: {e.strerror}"
            ) from None
        self._seq = int(time.monotonic_ns() & 0x7FFF_FFFF) or 1
        self._buf = bytearray(256 * 1024)

    def next_seq(self) -> int:
        self._seq = (self._seq % 0xFFFF_FFFE) + 1
        return self._seq

    def check_sender(self, anc: list[tuple[int, int, bytes]]) -> None:
        """Refuse replies not sent by the daemon's uid (or root): the port may be squatted."""
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == SCM_CREDENTIALS and len(data) >= _CREDS.size:
                _pid, uid, _gid = _CREDS.unpack_from(data)
                if uid in (self.info.uid, 0):
                    return
                raise DaemonUnreachable(
                    errno.EPERM,
                    f"the process answering on netlink port {self.info.port} runs as uid {uid}, "
                    f"not {self.info.uid}: the port may be squatted; restart the daemon",
                )
        raise DaemonUnreachable(errno.EPERM, "a reply came without sender credentials")

    def no_daemon(self) -> DaemonNotRunning:
        return DaemonNotRunning(str(self.runtime_dir))

    def timed_out(self) -> TraceError:
        if not rendezvous.pid_alive(self.info.pid):
            return self.no_daemon()
        return DaemonUnreachable(
            errno.ETIMEDOUT,
            f"the tracetui daemon (pid {self.info.pid}) did not answer within {self.timeout:g} s",
        )

    def plan(
        self, verb: str, path: str, value: str | None = None
    ) -> tuple[bytes, int, Callable[[list[Attrs]], Any]]:
        """(request bytes, sequence number, reply parser) of one of the five verbs."""
        self.check_request(path, value)
        seq = self.next_seq()
        if verb == "write":
            assert value is not None
            return P.encode_write(seq, path, value), seq, _nothing
        typ, flags, parse = _PATH_VERBS[verb]
        return P.encode_path_request(typ, seq, path, flags), seq, parse

    @staticmethod
    def check_request(path: str, value: str | None = None) -> None:
        if len(path) > P.MAX_PATH:
            raise TraceError(errno.ENAMETOOLONG, f"a path is at most {P.MAX_PATH} characters")
        if value is not None and len(value.encode()) > P.MAX_VALUE:
            raise TraceError(errno.E2BIG, f"a value is at most {P.MAX_VALUE} bytes")


class _Reply:
    """Collects the messages answering one request (one, or NLM_F_MULTI parts and DONE)."""

    __slots__ = ("done", "error", "parts", "warning")

    def __init__(self) -> None:
        self.parts: list[Attrs] = []
        self.error: TraceError | None = None
        self.warning = ""  # an ack's sentence: done, with a caveat
        self.done = False

    def feed(self, header: P.Header, payload: memoryview) -> None:
        if header.type == P.NLMSG_ERROR:
            err, text = P.decode_error(payload, header.flags)
            if err:
                self.error = TraceError(err, text or os.strerror(err))
            else:
                self.warning = text
            self.done = True
        elif header.type == P.NLMSG_DONE:
            self.done = True
        else:
            # The payload is a view into the shared receive buffer, which the next datagram
            # overwrites (another part, or a change arriving before an async caller resumes):
            # keep a copy.
            self.parts.append(Attrs.parse(memoryview(bytes(payload))))
            if not header.flags & P.NLM_F_MULTI:
                self.done = True

    def result(self) -> list[Attrs]:
        if self.error is not None:
            raise self.error
        return self.parts


def _unreachable(e: TraceError) -> TraceError:
    """A refused hello means the daemon cannot be used at all (other than EPERM for our uid)."""
    if e.errno == errno.EPROTO and not isinstance(e, DaemonUnreachable):
        return DaemonUnreachable(e.errno, e.message)
    return e


def _entries(parts: list[Attrs]) -> list[Entry]:
    return [e for a in parts for e in P.decode_entries(a)]


def _value(parts: list[Attrs]) -> str:
    return "".join(a.joined_str(P.TT_A_VALUE, "") for a in parts)


def _nothing(parts: list[Attrs]) -> None:
    return None


# The five verbs, stated once for both clients: how each request is built and its reply read.
# A client runs a request (``_request(data, seq)``, sync or async) and applies the parser.
_ACK = P.NLM_F_REQUEST | P.NLM_F_ACK
_PATH_VERBS: dict[str, tuple[int, int, Callable[[list[Attrs]], Any]]] = {
    "ls": (P.TT_LS, P.NLM_F_REQUEST, _entries),
    "mkdir": (P.TT_MKDIR, _ACK, _nothing),
    "rmdir": (P.TT_RMDIR, _ACK, _nothing),
    "read": (P.TT_READ, P.NLM_F_REQUEST, _value),
}


class Client(_Conn):
    """Synchronous client (not thread-safe). Raises DaemonNotRunning when no daemon answers."""

    def __init__(
        self,
        runtime_dir: str | os.PathLike[str] | None = None,
        timeout: float = 2.0,
        *,
        name: str = "cli",
    ) -> None:
        super().__init__(runtime_dir, timeout)
        self.sock.settimeout(timeout)
        try:
            self._hello(name)
        except BaseException:
            self.sock.close()
            raise

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _hello(self, name: str) -> None:
        seq = self.next_seq()
        try:
            attrs = self._request(P.encode_hello(seq, name), seq)[0]
        except TraceError as e:
            raise _unreachable(e) from None
        self.daemon_pid = attrs.u32(P.TT_A_PID)
        self.daemon_uid = attrs.u32(P.TT_A_UID)

    def _request(self, data: bytes, seq: int) -> list[Attrs]:
        sock = self.sock
        try:
            sock.send(data)
        except ConnectionRefusedError:
            raise self.no_daemon() from None
        except TimeoutError:
            raise self.timed_out() from None
        reply = _Reply()
        view = memoryview(self._buf)
        deadline = time.monotonic() + self.timeout
        while not reply.done:
            try:
                n, anc, _flags, _addr = sock.recvmsg_into([self._buf], _ANC_SIZE)
            except TimeoutError:
                raise self.timed_out() from None
            except ConnectionRefusedError:
                raise self.no_daemon() from None
            self.check_sender(anc)
            for header, payload in P.iter_messages(view[:n]):
                if header.seq == seq and header.type != P.TT_CHANGE:
                    reply.feed(header, payload)
            if not reply.done and time.monotonic() > deadline:
                raise self.timed_out()
        self.last_warning = reply.warning
        return reply.result()

    def _verb(self, verb: str, path: str, value: str | None = None) -> Any:
        data, seq, parse = self.plan(verb, path, value)
        return parse(self._request(data, seq))

    # -- the five verbs (built and parsed by _Conn.plan) ------------------------------------------

    def ls(self, path: str = "") -> list[Entry]:
        entries: list[Entry] = self._verb("ls", path)
        return entries

    def mkdir(self, path: str) -> None:
        self._verb("mkdir", path)

    def rmdir(self, path: str) -> None:
        self._verb("rmdir", path)

    def read(self, path: str) -> str:
        return str(self._verb("read", path))

    def write(self, path: str, value: str) -> str:
        """Write VALUE; returns the daemon's warning sentence ("" when there is none)."""
        self._verb("write", path, value)
        return self.last_warning


class AsyncClient(_Conn):
    """Asyncio client for the console: the five verbs, plus :meth:`changes`."""

    def __init__(
        self, runtime_dir: str | os.PathLike[str] | None = None, timeout: float = 2.0
    ) -> None:
        import asyncio  # here, not at the top: the CLI never pays for importing asyncio

        super().__init__(runtime_dir, timeout)
        self.sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._pending: dict[int, tuple[asyncio.Future[list[Attrs]], _Reply]] = {}
        self._queues: list[asyncio.Queue[Change | None]] = []
        self._subscribed = False
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop.add_reader(self.sock.fileno(), self._on_readable)

    @classmethod
    async def connect(
        cls,
        runtime_dir: str | os.PathLike[str] | None = None,
        timeout: float = 2.0,
        *,
        name: str = "console",
    ) -> AsyncClient:
        self = cls(runtime_dir, timeout)
        try:
            seq = self.next_seq()
            try:
                attrs = (await self._request(P.encode_hello(seq, name), seq))[0]
            except TraceError as e:
                raise _unreachable(e) from None
        except BaseException:
            await self.close()
            raise
        self.daemon_pid = attrs.u32(P.TT_A_PID)
        self.daemon_uid = attrs.u32(P.TT_A_UID)
        return self

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        if self._subscribed:
            self._subscribed = False
            # The daemon may be gone or have dropped us: then there is nothing to unsubscribe.
            with contextlib.suppress(TraceError):
                await self._simple(P.TT_UNSUBSCRIBE)
        self._closed = True
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.set_exception(TraceError(errno.ECANCELED, "the client was closed"))
        self._pending.clear()
        for q in self._queues:
            _put_latest(q, None)

    # -- plumbing ------------------------------------------------------------------------------

    def _on_readable(self) -> None:
        while True:
            try:
                n, anc, _flags, _addr = self.sock.recvmsg_into([self._buf], _ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._fail_all(
                    TraceError(e.errno or errno.EIO, f"netlink receive failed: {e.strerror}")
                )
                return
            try:
                self.check_sender(anc)
                for header, payload in P.iter_messages(memoryview(self._buf)[:n]):
                    if header.type == P.TT_CHANGE:
                        self._on_change(P.decode_change(Attrs.parse(payload)))
                        continue
                    entry = self._pending.get(header.seq)
                    if entry is None:
                        continue  # a late reply to a request that timed out
                    fut, reply = entry
                    reply.feed(header, payload)
                    if reply.done:
                        del self._pending[header.seq]
                        if not fut.done():
                            try:
                                fut.set_result(reply.result())
                            except TraceError as e:
                                fut.set_exception(e)
            except TraceError as e:
                self._fail_all(e)

    def _fail_all(self, exc: TraceError) -> None:
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()

    def _on_change(self, change: Change) -> None:
        if change.op == "state" and change.path == "" and change.value.startswith("dropped"):
            # The daemon dropped us (we stopped reading) and forgot our subscription.
            if self._subscribed:
                task = self._loop.create_task(self._resubscribe())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            change = Change("state", "", "resync")
        for q in self._queues:
            _put_latest(q, change)

    async def _resubscribe(self) -> None:
        try:
            await self._simple(P.TT_SUBSCRIBE)
        except TraceError as e:
            for q in self._queues:
                _put_latest(q, Change("state", "", f"unsubscribed: {e}"))

    async def _request(self, data: bytes, seq: int) -> list[Attrs]:
        import asyncio

        if self._closed:
            raise TraceError(errno.EBADF, "the client is closed")
        fut: asyncio.Future[list[Attrs]] = self._loop.create_future()
        self._pending[seq] = (fut, _Reply())
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                try:
                    self.sock.send(data)
                    break
                except BlockingIOError:
                    # The daemon's receive buffer is full: it is busy, not gone. Retry shortly.
                    if time.monotonic() > deadline:
                        raise self.timed_out() from None
                    await asyncio.sleep(0.001)
                except ConnectionRefusedError:
                    raise self.no_daemon() from None
            # asyncio.timeout, not wait_for: on 3.11 wait_for returns the reply and swallows a
            # cancellation that lands as the reply arrives, so a cancelled poller (a Textual
            # timer stopped at exit) went on forever and the app never closed.
            try:
                async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
                    return await fut
            except TimeoutError:
                raise self.timed_out() from None
        finally:
            self._pending.pop(seq, None)

    async def _verb(self, verb: str, path: str, value: str | None = None) -> Any:
        data, seq, parse = self.plan(verb, path, value)
        return parse(await self._request(data, seq))

    async def _simple(self, typ: int) -> None:
        seq = self.next_seq()
        await self._request(P.message(typ, P.NLM_F_REQUEST | P.NLM_F_ACK, seq), seq)

    # -- the five verbs (built and parsed by _Conn.plan) ------------------------------------------

    async def ls(self, path: str = "") -> list[Entry]:
        entries: list[Entry] = await self._verb("ls", path)
        return entries

    async def mkdir(self, path: str) -> None:
        await self._verb("mkdir", path)

    async def rmdir(self, path: str) -> None:
        await self._verb("rmdir", path)

    async def read(self, path: str) -> str:
        return str(await self._verb("read", path))

    async def write(self, path: str, value: str) -> None:
        await self._verb("write", path, value)

    # -- changes -------------------------------------------------------------------------------

    async def subscribe(self) -> None:
        """Ask the daemon for changes now (``changes()`` does it on first use)."""
        if not self._subscribed:
            await self._simple(P.TT_SUBSCRIBE)
            self._subscribed = True

    def changes(self) -> AsyncIterator[Change]:
        """Every change of the namespace from now on, whoever made it, until close().

        Change("state", "", "resync") means changes were lost (a slow reader): read the state
        again. Change("state", "", "shutdown") means the daemon is stopping.
        """
        import asyncio

        q: asyncio.Queue[Change | None] = asyncio.Queue(CHANGE_QUEUE)
        self._queues.append(q)
        return self._iterate(q)

    async def _iterate(self, q: asyncio.Queue[Change | None]) -> AsyncIterator[Change]:
        try:
            await self.subscribe()
            while True:
                item = await q.get()
                if item is None:
                    return
                yield item
        finally:
            if q in self._queues:
                self._queues.remove(q)


def _put_latest(q: asyncio.Queue[Change | None], item: Change | None) -> None:
    """Queue ITEM; a full queue is emptied and told to resync instead of growing."""
    import asyncio

    try:
        q.put_nowait(item)
    except asyncio.QueueFull:
        while not q.empty():
            q.get_nowait()
        q.put_nowait(Change("state", "", "resync"))
        if item is None or (item.op == "state" and item.path == ""):
            q.put_nowait(item)
