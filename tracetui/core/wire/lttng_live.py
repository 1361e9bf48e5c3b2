"""A viewer client of lttng-relayd's live protocol (the live port, 5344; what babeltrace2's
``lttng-live`` source and Trace Compass speak).

Read from lttng-tools' ``doc/live-reading-protocol.md`` and
``src/bin/lttng-relayd/lttng-viewer-abi.hpp`` / ``live.cpp``:

* one TCP connection, the viewer asks and the relayd answers each command once (or closes the
  connection on a fatal error); every integer is big-endian, every struct packed;
* a command is ``data_size u64, cmd u32, cmd_version u32`` then ``data_size`` payload bytes;
* CONNECT settles the version: majors must be equal (2), both sides use the lower minor.  We
  claim 2.4, the version every relayd since 2.4 serves with fixed-size session entries
  (``id u64, live_timer u32, clients u32, streams u32, hostname[64], session_name[255]``) and
  that babeltrace2 speaks; 2.15's variable-length entries and CTF 2 sessions are not ours;
* a viewer creates one viewer session (CREATE_SESSION), then attaches relay sessions
  (ATTACH_SESSION, from the beginning or from now) and receives their streams
  (``id u64, ctf_trace_id u64, metadata_flag u32, path_name[4096], channel_name[255]``); a
  relay session takes one viewer at a time;
* per stream: GET_NEXT_INDEX answers OK (an index: offset, packet and content size in bits,
  timestamps, discarded events, stream class id), RETRY (nothing yet), INACTIVE (a beacon:
  nothing before ``timestamp_end``), HUP (the stream ended), ERR or EOF; its flags ask for new
  metadata or new streams first.  GET_PACKET reads ``len`` bytes at the index's offset;
  GET_METADATA returns the metadata appended since the last call (loop until NO_NEW);
* DETACH_SESSION leaves a session without closing the connection.

Errors are ``LiveError`` (a ``TraceError``: errno and one sentence); a relayd that cannot be
reached, or that goes away, is ``LiveUnreachable``.  The protocol has neither authentication
nor encryption.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
from dataclasses import dataclass

from tracetui.core.errors import TraceError
from tracetui.core.wire.relayd import (  # lttng-tools ABI sizes, the version rule
    HOST_NAME_MAX,
    NAME_MAX,
    PATH_MAX,
    agreed_minor,
)

__all__ = [
    "LIVE_PORT",
    "Index",
    "LiveClient",
    "LiveError",
    "LiveUnreachable",
    "LiveUrl",
    "SessionInfo",
    "StreamInfo",
    "parse_live_url",
]

LIVE_PORT = 5344
MAJOR = 2
MINOR = 4

# enum lttng_viewer_command
CONNECT = 1
LIST_SESSIONS = 2
ATTACH_SESSION = 3
GET_NEXT_INDEX = 4
GET_PACKET = 5
GET_METADATA = 6
GET_NEW_STREAMS = 7
CREATE_SESSION = 8
DETACH_SESSION = 9

CLIENT_COMMAND = 1  # enum lttng_viewer_connection_type

SEEK_BEGINNING = 1
SEEK_LAST = 2

FLAG_NEW_METADATA = 1
FLAG_NEW_STREAM = 2

# enum lttng_viewer_attach_return_code
ATTACH_OK, ATTACH_ALREADY, ATTACH_UNK, ATTACH_NOT_LIVE, ATTACH_SEEK_ERR, ATTACH_NO_SESSION = range(
    1, 7
)
# enum lttng_viewer_next_index_return_code
INDEX_OK, INDEX_RETRY, INDEX_HUP, INDEX_ERR, INDEX_INACTIVE, INDEX_EOF = range(1, 7)
# enum lttng_viewer_get_packet_return_code
PACKET_OK, PACKET_RETRY, PACKET_ERR, PACKET_EOF = range(1, 5)
# enum lttng_viewer_get_metadata_return_code
METADATA_OK, METADATA_NO_NEW, METADATA_ERR = range(1, 4)
# enum lttng_viewer_new_streams_return_code
NEW_STREAMS_OK, NEW_STREAMS_NO_NEW, NEW_STREAMS_ERR, NEW_STREAMS_HUP = range(1, 5)

_CMD = struct.Struct(">QII")
_CONNECT = struct.Struct(">QIII")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_SESSION = struct.Struct(f">QIII{HOST_NAME_MAX}s{NAME_MAX}s")
_ATTACH_REQ = struct.Struct(">QQI")
_STATUS_COUNT = struct.Struct(">II")
_STREAM = struct.Struct(f">QQI{PATH_MAX}s{NAME_MAX}s")
_INDEX = struct.Struct(">7QII")
_GET_PACKET = struct.Struct(">QQI")
_PACKET = struct.Struct(">III")
_METADATA = struct.Struct(">QI")

_MAX_REPLY = 1 << 30  # a packet or metadata reply larger than this is a broken relayd

_ATTACH_WHY = {
    ATTACH_ALREADY: "another viewer is already attached to it (relayd allows one)",
    ATTACH_UNK: "relayd does not know it (it ended?)",
    ATTACH_NOT_LIVE: "it is not a live session (created without a live timer)",
    ATTACH_SEEK_ERR: "relayd refused the seek",
    ATTACH_NO_SESSION: "no viewer session was created first",
}


class LiveError(TraceError):
    """The relayd refused, answered what this client cannot read, or went away (one sentence)."""

    def __init__(self, message: str, err: int = errno.EPROTO) -> None:
        super().__init__(err, message)


class LiveUnreachable(LiveError):
    """Nobody answers at the live URL's address (refused, unreachable, timed out)."""


@dataclass(frozen=True)
class LiveUrl:
    """``net://HOST[:PORT][/host/HOSTNAME/SESSION]`` (babeltrace2's form for lttng-live)."""

    host: str
    port: int = LIVE_PORT
    hostname: str | None = None
    session: str | None = None

    @property
    def address(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"net://{h}:{self.port}"

    def __str__(self) -> str:
        if self.hostname is None:
            return self.address
        return f"{self.address}/host/{self.hostname}/{self.session}"


def parse_live_url(text: str) -> LiveUrl:
    """Parse a live URL; LiveError (EINVAL, one sentence) for anything else."""

    def bad(why: str) -> LiveError:
        return LiveError(
            f"live URL {text!r} {why} (net://HOST[:PORT][/host/HOSTNAME/SESSION])", errno.EINVAL
        )

    s = text.strip()
    for scheme in ("net://", "net4://", "net6://", "tcp://"):
        if s.startswith(scheme):
            s = s[len(scheme) :]
            break
    else:
        raise bad("must start with net://")
    addr, slash, path = s.partition("/")
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise bad("has an unclosed '['")
        host, rest = addr[1:end], addr[end + 1 :]
        if rest and not rest.startswith(":"):
            raise bad("has text after its ']'")
        port_s = rest[1:] if rest else None
    else:
        host, colon, port_s_ = addr.partition(":")
        port_s = port_s_ if colon else None
    if not host or any(c.isspace() for c in host):
        raise bad("has no valid host name")
    port = LIVE_PORT
    if port_s is not None:
        if not port_s.isdigit() or not 0 < int(port_s) < 65536:
            raise bad(f"has a port {port_s!r} that is not 1-65535")
        port = int(port_s)
    path = path.strip("/")
    if not slash or not path:
        return LiveUrl(host, port)
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != "host" or not parts[1] or not parts[2]:
        raise bad("names a session by something other than /host/HOSTNAME/SESSION")
    return LiveUrl(host, port, parts[1], parts[2])


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


@dataclass(frozen=True)
class SessionInfo:
    """One relay session as LIST_SESSIONS describes it (live_timer in microseconds)."""

    id: int
    live_timer_us: int
    clients: int
    streams: int
    hostname: str
    name: str


@dataclass(frozen=True)
class StreamInfo:
    """One stream of an attached session; ``ctf_trace_id`` groups a metadata and its streams."""

    id: int
    ctf_trace_id: int
    metadata: bool
    path: str
    channel: str


@dataclass(frozen=True)
class Index:
    """GET_NEXT_INDEX's answer (sizes in bits, as the index file holds them)."""

    offset: int
    packet_size: int
    content_size: int
    timestamp_begin: int
    timestamp_end: int
    events_discarded: int
    stream_class_id: int
    status: int
    flags: int


class LiveClient:
    """One viewer connection to one relayd.  Not thread-safe: one thread owns it."""

    def __init__(self, url: LiveUrl, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.minor = 0
        self.viewer_session_id = 0
        self.relayd_version = (0, 0)

    # -- connection -------------------------------------------------------------------------

    def connect(self) -> LiveClient:
        """Connect and settle the protocol version; LiveUnreachable or LiveError."""
        self.close()
        where = self.url.address
        try:
            self.sock = socket.create_connection((self.url.host, self.url.port), self.timeout)
        except ConnectionRefusedError:
            raise LiveUnreachable(
                f"relayd at {where} refused the connection (is lttng-relayd running with its "
                "live port there?)",
                errno.ECONNREFUSED,
            ) from None
        except TimeoutError:
            raise LiveUnreachable(
                f"relayd at {where} did not answer in {self.timeout} s", errno.ETIMEDOUT
            ) from None
        except OSError as e:
            raise LiveUnreachable(
                f"cannot reach relayd at {where}: {e.strerror or e}", e.errno or errno.EHOSTUNREACH
            ) from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._send(CONNECT, _CONNECT.pack(0, MAJOR, MINOR, CLIENT_COMMAND))
            try:
                sid, major, minor, _type = _CONNECT.unpack(self._recv(_CONNECT.size))
            except LiveError as e:
                raise LiveError(
                    f"relayd at {where} closed the connection at version negotiation "
                    f"(it does not speak the live protocol {MAJOR}.{MINOR}?): {e}"
                ) from None
            self.relayd_version = (major, minor)
            what = f"relayd at {where} (live)"
            self.minor = agreed_minor((major, minor), (MAJOR, MINOR), what, LiveError)
            self.viewer_session_id = sid
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = None

    def __enter__(self) -> LiveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- framing ----------------------------------------------------------------------------

    def _send(self, cmd: int, payload: bytes = b"") -> None:
        if self.sock is None:
            raise LiveError(f"not connected to relayd at {self.url.address}")
        try:
            self.sock.sendall(_CMD.pack(len(payload), cmd, 0) + payload)
        except OSError as e:
            raise LiveUnreachable(
                f"relayd at {self.url.address} broke the connection: {e.strerror or e}",
                errno.ECONNRESET,
            ) from None

    def _recv(self, n: int) -> bytes:
        if self.sock is None:
            raise LiveError(f"not connected to relayd at {self.url.address}")
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            except TimeoutError:
                raise LiveError(
                    f"relayd at {self.url.address} did not answer in {self.timeout} s",
                    errno.ETIMEDOUT,
                ) from None
            except OSError as e:
                raise LiveUnreachable(
                    f"relayd at {self.url.address} broke the connection: {e.strerror or e}",
                    errno.ECONNRESET,
                ) from None
            if not chunk:
                raise LiveUnreachable(
                    f"relayd at {self.url.address} closed the connection", errno.ECONNRESET
                )
            buf += chunk
        return bytes(buf)

    def _streams(self, count: int) -> list[StreamInfo]:
        if count > 1 << 20:
            raise LiveError(f"relayd at {self.url.address} announced {count} streams")
        out = []
        for _ in range(count):
            sid, trace, meta, path, chan = _STREAM.unpack(self._recv(_STREAM.size))
            out.append(StreamInfo(sid, trace, bool(meta), _cstr(path), _cstr(chan)))
        return out

    # -- commands ---------------------------------------------------------------------------

    def list_sessions(self) -> list[SessionInfo]:
        self._send(LIST_SESSIONS)
        (count,) = _U32.unpack(self._recv(_U32.size))
        if count > 1 << 20:
            raise LiveError(f"relayd at {self.url.address} announced {count} sessions")
        out = []
        for _ in range(count):
            sid, timer, clients, streams, host, name = _SESSION.unpack(self._recv(_SESSION.size))
            out.append(SessionInfo(sid, timer, clients, streams, _cstr(host), _cstr(name)))
        return out

    def create_viewer_session(self) -> None:
        self._send(CREATE_SESSION)
        (status,) = _U32.unpack(self._recv(_U32.size))
        if status != 1:
            raise LiveError(f"relayd at {self.url.address} refused to create a viewer session")

    def attach(self, session: SessionInfo, seek: int = SEEK_BEGINNING) -> list[StreamInfo]:
        """Attach one relay session; its streams (metadata ones have ``metadata`` set)."""
        self._send(ATTACH_SESSION, _ATTACH_REQ.pack(session.id, 0, seek))
        status, count = _STATUS_COUNT.unpack(self._recv(_STATUS_COUNT.size))
        if status != ATTACH_OK:
            why = _ATTACH_WHY.get(status, f"status {status}")
            raise LiveError(
                f"relayd at {self.url.address} refused to attach session "
                f"{session.hostname}/{session.name}: {why}",
                errno.EBUSY if status == ATTACH_ALREADY else errno.EPROTO,
            )
        return self._streams(count)

    def new_streams(self, session_id: int) -> tuple[int, list[StreamInfo]]:
        """(status, streams): NEW_STREAMS_OK, _NO_NEW, _ERR or _HUP (the session ended)."""
        self._send(GET_NEW_STREAMS, _U64.pack(session_id))
        status, count = _STATUS_COUNT.unpack(self._recv(_STATUS_COUNT.size))
        return status, self._streams(count)

    def get_metadata(self, stream_id: int) -> tuple[int, bytes]:
        """(status, bytes appended since the last call)."""
        self._send(GET_METADATA, _U64.pack(stream_id))
        length, status = _METADATA.unpack(self._recv(_METADATA.size))
        if length > _MAX_REPLY:
            raise LiveError(f"relayd at {self.url.address} announced {length} bytes of metadata")
        return status, self._recv(length) if length else b""

    def all_metadata(self, stream_id: int) -> tuple[bytes, bool]:
        """Everything new on a metadata stream (loop until no new); (bytes, stream still there)."""
        out = bytearray()
        while True:
            status, data = self.get_metadata(stream_id)
            if status == METADATA_OK:
                out += data
                continue
            return bytes(out), status == METADATA_NO_NEW

    def next_index(self, stream_id: int) -> Index:
        self._send(GET_NEXT_INDEX, _U64.pack(stream_id))
        return Index(*_INDEX.unpack(self._recv(_INDEX.size)))

    def get_packet(self, stream_id: int, offset: int, length: int) -> tuple[int, int, bytes]:
        """(status, flags, bytes): ``length`` bytes at ``offset`` of a stream's file."""
        self._send(GET_PACKET, _GET_PACKET.pack(stream_id, offset, length))
        status, n, flags = _PACKET.unpack(self._recv(_PACKET.size))
        if status != PACKET_OK:
            return status, flags, b""
        if n > _MAX_REPLY:
            raise LiveError(f"relayd at {self.url.address} announced a packet of {n} bytes")
        return status, flags, self._recv(n)

    def detach(self, session_id: int) -> bool:
        self._send(DETACH_SESSION, _U64.pack(session_id))
        (status,) = _U32.unpack(self._recv(_U32.size))
        return status == 1
