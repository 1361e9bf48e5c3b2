"""A producer client of lttng-relayd's control and data protocol (the one lttng-consumerd speaks).

An unmodified ``lttng-relayd`` (Debian package lttng-tools) receives CTF streams from many hosts,
writes them under ``OUTPUT/HOSTNAME/...`` and serves them live (port 5344) to babeltrace2 and
Trace Compass.  This module speaks the producer side of its protocol, read from lttng-tools'
``src/common/sessiond-comm/relayd.hpp`` and ``src/bin/lttng-relayd/main.cpp``:

* every integer is big-endian, every struct packed;
* control messages (port 5342) are a header ``circuit_id u64, data_size u64, cmd u32,
  cmd_version u32`` then ``data_size`` payload bytes; each command gets one fixed-size reply;
* data messages (port 5343) are a header ``circuit_id u64, stream_id u64, net_seq_num u64,
  data_size u32, padding_size u32`` then the packet; they get no reply;
* the version command settles the protocol: the majors must be equal (2) and both sides use the
  lower minor.  We claim 2.10: relayd 2.11-2.15 still serves it with the fixed-size
  create-session (2.4 form: name[255], hostname[64], live_timer u32, snapshot u32) and
  add-stream (2.2 form: channel_name[264], pathname[4096], tracefile_size, tracefile_count)
  structs and without trace chunks; 2.8+ gives the index its stream_instance_id and
  packet_seq_num.

A session is: version, create session, one add stream per stream file (metadata first), streams
sent, then per packet a data message and a send-index command with the same net_seq_num (relayd
writes the index when both have arrived, which is when live viewers see the packet); an index
with packet_size 0 is a live beacon (a stream with nothing new is still at timestamp T).  Close
stream ends a stream after its last net_seq_num; data pending says whether relayd has received
a stream's data and indexes up to its last net_seq_num (asked before closing a session: relayd
hangs its viewers up once the producer's connection is closed and they have read what arrived);
relayd 2.13 takes a stream's beacons only once it has had a packet.  The protocol has neither
authentication nor encryption.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass

CONTROL_PORT = 5342
DATA_PORT = 5343
LIVE_PORT = 5344

MAJOR = 2
MINOR = 10  # the newest minor with fixed-size create-session/add-stream and no trace chunks

# enum lttcomm_relayd_command
ADD_STREAM = 1
CREATE_SESSION = 2
VERSION = 5
SEND_METADATA = 6
CLOSE_STREAM = 7
DATA_PENDING = 8
SEND_INDEX = 13
STREAMS_SENT = 16

LTTNG_OK = 10  # enum lttng_error_code: LTTNG_OK is 10

NAME_MAX = 255
HOST_NAME_MAX = 64
STREAM_NAME_LEN = 264
PATH_MAX = 4096

_CTRL_HDR = struct.Struct(">QQII")
_DATA_HDR = struct.Struct(">QQQII")
_VERSION = struct.Struct(">II")
_CREATE = struct.Struct(f">{NAME_MAX}s{HOST_NAME_MAX}sII")
_STATUS_SESSION = struct.Struct(">QI")
_ADD_STREAM = struct.Struct(f">{STREAM_NAME_LEN}s{PATH_MAX}sQQ")
_STATUS_STREAM = struct.Struct(">QI")
_GENERIC = struct.Struct(">I")
_METADATA = struct.Struct(">QI")
_CLOSE = struct.Struct(">QQ")
_INDEX = struct.Struct(">10Q")


class RelaydError(Exception):
    """One sentence saying what went wrong with the relayd (refused, incompatible, protocol)."""


def agreed_minor(
    theirs: tuple[int, int], ours: tuple[int, int], what: str, error: type[Exception]
) -> int:
    """The minor both sides use (the lower) after relayd's VERSION answer THEIRS; ERROR (one
    sentence naming WHAT: "relayd at HOST speaks ...") when the majors differ or the lower
    minor is older than 2.4, the oldest both relayd protocols here speak."""
    (major, minor), (our_major, our_minor) = theirs, ours
    if major != our_major:
        raise error(
            f"{what} speaks protocol {major}.{minor}, incompatible with this client's "
            f"{our_major}.{our_minor} (majors differ)"
        )
    agreed = min(minor, our_minor)
    if agreed < 4:
        raise error(f"{what} speaks protocol 2.{minor}, before 2.4")
    return agreed


@dataclass(frozen=True)
class RelayUrl:
    host: str
    control_port: int = CONTROL_PORT
    data_port: int = DATA_PORT

    def __str__(self) -> str:
        return f"net://{self.host}:{self.control_port}:{self.data_port}"


def parse_url(text: str) -> RelayUrl:
    """``net://HOST[:CTRL[:DATA]]`` (also ``tcp://``); raises ValueError with one sentence."""
    s = text.strip()
    for scheme in ("net://", "tcp://"):
        if s.startswith(scheme):
            s = s[len(scheme) :]
            break
    else:
        raise ValueError(f"relay URL {text!r} must start with net:// (net://HOST[:CTRL[:DATA]])")
    s = s.rstrip("/")
    if s.startswith("["):  # [v6]:ctrl:data
        end = s.find("]")
        if end < 0:
            raise ValueError(f"relay URL {text!r} has an unclosed '['")
        host, rest = s[1:end], s[end + 1 :]
        parts = rest.lstrip(":").split(":") if rest else []
    else:
        host, *parts = s.split(":")
    if not host or "/" in host or any(c.isspace() for c in host):
        raise ValueError(f"relay URL {text!r} has no valid host name")
    if len(parts) > 2:
        raise ValueError(f"relay URL {text!r} has more than two ports (net://HOST[:CTRL[:DATA]])")
    ports = []
    for p in parts:
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ValueError(f"relay URL {text!r} has a port {p!r} that is not 1-65535")
        ports.append(int(p))
    ctrl = ports[0] if ports else CONTROL_PORT
    data = ports[1] if len(ports) > 1 else ctrl + 1
    return RelayUrl(host, ctrl, data)


def _cstr(s: str, size: int, what: str) -> bytes:
    b = s.encode()
    if len(b) >= size or b"\0" in b:
        raise RelaydError(f"{what} {s!r} is longer than relayd's {size - 1} bytes")
    return b


class RelaydClient:
    """One producer session on one relayd.  Not thread-safe: the streamer's thread owns it."""

    def __init__(self, url: RelayUrl, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self.ctrl: socket.socket | None = None
        self.data: socket.socket | None = None
        self.minor = 0
        self.session_id = 0
        self._seq: dict[int, int] = {}  # relay stream handle -> next net_seq_num
        self._lock = threading.Lock()

    # -- connection -------------------------------------------------------------------------

    def _connect(self, port: int, what: str) -> socket.socket:
        try:
            s = socket.create_connection((self.url.host, port), timeout=self.timeout)
        except ConnectionRefusedError:
            raise RelaydError(
                f"relayd at {self.url.host}:{port} refused the {what} connection "
                "(is lttng-relayd running there?)"
            ) from None
        except OSError as e:
            raise RelaydError(
                f"cannot reach relayd at {self.url.host}:{port} ({what}): {e.strerror or e}"
            ) from None
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def connect(self) -> None:
        """Open both connections and settle the version; raises RelaydError."""
        self.close()
        self.ctrl = self._connect(self.url.control_port, "control")
        try:
            major, minor = _VERSION.unpack(
                self._command(VERSION, _VERSION.pack(MAJOR, MINOR), _VERSION.size)
            )
            where = f"relayd at {self.url.host}"
            self.minor = agreed_minor((major, minor), (MAJOR, MINOR), where, RelaydError)
            self.data = self._connect(self.url.data_port, "data")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for s in (self.ctrl, self.data):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()
        self.ctrl = self.data = None
        self._seq.clear()

    # -- framing ----------------------------------------------------------------------------

    def _recv(self, n: int) -> bytes:
        assert self.ctrl is not None
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.ctrl.recv(n - len(buf))
            except TimeoutError:
                raise RelaydError(
                    f"relayd at {self.url.host} did not answer in {self.timeout} s"
                ) from None
            except OSError as e:
                raise RelaydError(
                    f"relayd at {self.url.host} broke the control connection: {e}"
                ) from None
            if not chunk:
                raise RelaydError(f"relayd at {self.url.host} closed the control connection")
            buf += chunk
        return bytes(buf)

    def _send(self, sock: socket.socket | None, parts: list[bytes | memoryview], what: str) -> None:
        if sock is None:
            raise RelaydError(f"not connected to relayd at {self.url.host}")
        try:
            if sum(map(len, parts)) < 65536:
                sock.sendall(b"".join(parts))  # one segment for small messages
            else:
                for p in parts:
                    sock.sendall(p)
        except OSError as e:
            raise RelaydError(
                f"relayd at {self.url.host} broke the {what} connection: {e}"
            ) from None

    def _command(self, cmd: int, payload: bytes, reply_size: int) -> bytes:
        self._send(self.ctrl, [_CTRL_HDR.pack(0, len(payload), cmd, 0), payload], "control")
        return self._recv(reply_size) if reply_size else b""

    def _check(self, code: int, what: str) -> None:
        if code != LTTNG_OK:
            raise RelaydError(f"relayd at {self.url.host} refused {what} (error code {code})")

    # -- commands ---------------------------------------------------------------------------

    def create_session(self, name: str, hostname: str, live_timer_us: int) -> int:
        body = _CREATE.pack(
            _cstr(name, NAME_MAX, "session name"),
            _cstr(hostname, HOST_NAME_MAX, "host name"),
            live_timer_us,
            0,
        )
        sid, code = _STATUS_SESSION.unpack(
            self._command(CREATE_SESSION, body, _STATUS_SESSION.size)
        )
        self._check(code, f"session {name!r}")
        self.session_id = sid
        return sid

    def add_stream(self, channel_name: str, pathname: str) -> int:
        """A stream file ``pathname/channel_name`` under relayd's output; returns its handle."""
        body = _ADD_STREAM.pack(
            _cstr(channel_name, STREAM_NAME_LEN, "stream name"),
            _cstr(pathname, PATH_MAX, "stream path"),
            0,
            0,
        )
        handle, code = _STATUS_STREAM.unpack(self._command(ADD_STREAM, body, _STATUS_STREAM.size))
        self._check(code, f"stream {pathname}/{channel_name}")
        self._seq[handle] = 0
        return handle

    def streams_sent(self) -> None:
        (code,) = _GENERIC.unpack(self._command(STREAMS_SENT, b"", _GENERIC.size))
        self._check(code, "streams-sent")

    def send_metadata(self, handle: int, text: bytes) -> None:
        """Append TSDL text to the metadata stream (no reply)."""
        payload = _METADATA.pack(handle, 0)
        hdr = _CTRL_HDR.pack(0, len(payload) + len(text), SEND_METADATA, 0)
        self._send(self.ctrl, [hdr, payload, text], "control")

    def send_packet(
        self,
        handle: int,
        packet: bytes | memoryview,
        *,
        packet_size_bits: int,
        content_size_bits: int,
        timestamp_begin: int,
        timestamp_end: int,
        events_discarded: int,
        stream_id: int,
        stream_instance_id: int,
        packet_seq_num: int,
    ) -> None:
        """One packet on the data port, then its index on the control port."""
        seq = self._seq.get(handle, 0)
        self._seq[handle] = seq + 1
        self._send(self.data, [_DATA_HDR.pack(0, handle, seq, len(packet), 0), packet], "data")
        self._index(
            handle,
            seq,
            packet_size_bits,
            content_size_bits,
            timestamp_begin,
            timestamp_end,
            events_discarded,
            stream_id,
            stream_instance_id,
            packet_seq_num,
        )

    def beacon(self, handle: int, timestamp: int, stream_id: int, stream_instance_id: int) -> None:
        """A live beacon: the stream has nothing newer than ``timestamp``."""
        seq = max(self._seq.get(handle, 0) - 1, 0)
        self._index(handle, seq, 0, 0, 0, timestamp, 0, stream_id, stream_instance_id, 0)

    def _index(self, handle: int, seq: int, *fields: int) -> None:
        body = _INDEX.pack(handle, seq, *(f & 0xFFFFFFFFFFFFFFFF for f in fields))
        if self.minor < 8:
            body = body[: 8 * 8]
        (code,) = _GENERIC.unpack(self._command(SEND_INDEX, body, _GENERIC.size))
        self._check(code, f"the index of packet {seq} of stream {handle}")

    def data_pending(self, handle: int) -> bool:
        """Whether relayd still waits for data or indexes of the stream's packets sent so far
        (closing the session before they arrived would end its viewers early)."""
        last = self._seq.get(handle, 0) - 1
        if last < 0:
            return False
        body = _CLOSE.pack(handle, last)
        (code,) = _GENERIC.unpack(self._command(DATA_PENDING, body, _GENERIC.size))
        if code not in (0, 1):
            raise RelaydError(f"relayd at {self.url.host} does not know stream {handle}")
        return code == 1

    def close_stream(self, handle: int) -> None:
        last = self._seq.get(handle, 0) - 1
        body = _CLOSE.pack(handle, last & 0xFFFFFFFFFFFFFFFF)
        (code,) = _GENERIC.unpack(self._command(CLOSE_STREAM, body, _GENERIC.size))
        self._check(code, f"closing stream {handle}")
        self._seq.pop(handle, None)
