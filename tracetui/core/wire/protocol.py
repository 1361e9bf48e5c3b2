"""The tracetui control protocol on NETLINK_USERSOCK: message types, attributes, and two codecs.

This module owns the wire format between the daemon and its clients (see docs/PROTOCOL.md). The
messages are *declared* as pyroute2 ``nlmsg`` classes (:data:`ttmsg`, :data:`tterrmsg`,
:data:`ttdone`, and :data:`MESSAGE_CLASSES` from message type to class), which is the reference
description and what the golden-bytes tests compare against. The hot path uses the hand-written
``struct`` codec below instead: pyroute2's codec costs 250-370 µs per round trip here, the
whole raw round trip about 23 µs. Both must produce identical bytes (tests/test_protocol.py).

The pyroute2 classes are built on first access: importing pyroute2 costs ~150 ms, which every
CLI invocation would otherwise pay for a codec it never uses.

Layout of every tracetui message (host byte order, as all netlink)::

    struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }   16 bytes
    struct ttmsg    { u8 version; u8 reserved1; u16 reserved2; }            4 bytes
    NLAs            { u16 len; u16 type; payload; pad to 4 }                 repeated

Errors and acknowledgements are standard ``NLMSG_ERROR`` messages in the kernel's extended-ack
form: ``i32 -errno`` (0 for an ack), the request's 16-byte header (always capped), then
``NLMSGERR_ATTR_MSG`` holding the one-sentence reason. Replies too large for one message are sent
as several ``NLM_F_MULTI`` parts closed by ``NLMSG_DONE``, as netlink dumps are.
"""

from __future__ import annotations

import builtins
import errno as _errno
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tracetui.core.errors import TraceError

PROTOCOL_VERSION = 1

# -- netlink constants (linux/netlink.h) ------------------------------------------------------
NETLINK_USERSOCK = 2
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
NLMSG_MIN_TYPE = 0x10
NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200
NLMSGERR_ATTR_MSG = 1
NLA_TYPE_MASK = 0x3FFF  # strips NLA_F_NESTED and NLA_F_NET_BYTEORDER

# -- message types ------------------------------------------------------------------------------
# 0x10-0x1F: the control namespace (this module). 0x20-0x2F are reserved for the recording work
# (marker registration, target lists pushed to probe processes, live-subscription batches);
# 0x30-0x3F for whatever comes after. The daemon answers unknown types with EOPNOTSUPP.
TT_HELLO = 0x10  # version handshake: request VERSION, CLIENT; reply VERSION, PID, UID
TT_LS = 0x11  # request PATH; reply ENTRY...
TT_MKDIR = 0x12  # request PATH; ack
TT_RMDIR = 0x13  # request PATH; ack
TT_READ = 0x14  # request PATH; reply VALUE... (concatenated)
TT_WRITE = 0x15  # request PATH, VALUE...; ack
TT_SUBSCRIBE = 0x16  # ack; then TT_CHANGE notifications until TT_UNSUBSCRIBE or drop
TT_UNSUBSCRIBE = 0x17  # ack
TT_CHANGE = 0x18  # notification (seq 0): OP, PATH, VALUE
TT_RECORDING_FIRST = 0x20
TT_RECORDING_LAST = 0x2F

VERB_NAMES = {
    TT_HELLO: "hello",
    TT_LS: "ls",
    TT_MKDIR: "mkdir",
    TT_RMDIR: "rmdir",
    TT_READ: "read",
    TT_WRITE: "write",
    TT_SUBSCRIBE: "subscribe",
    TT_UNSUBSCRIBE: "unsubscribe",
    TT_CHANGE: "change",
}

# -- attributes of ttmsg -------------------------------------------------------------------------
TT_A_UNSPEC = 0
TT_A_PATH = 1  # asciiz (UTF-8)
TT_A_VALUE = 2  # asciiz (UTF-8); may repeat, the value is the concatenation
TT_A_ENTRY = 3  # nested: TT_E_NAME, TT_E_KIND, TT_E_WRITABLE
TT_A_VERSION = 4  # u32
TT_A_PID = 5  # u32
TT_A_UID = 6  # u32
TT_A_OP = 7  # asciiz: "mkdir" | "rmdir" | "write" | "state"
TT_A_CLIENT = 8  # asciiz: what the client is ("cli", "console", ...), for the daemon's log
TT_E_NAME = 1
TT_E_KIND = 2  # u8: 0 file, 1 dir
TT_E_WRITABLE = 3  # u8: 0 | 1

KIND_FILE = 0
KIND_DIR = 1

# Limits. One NLA holds at most 65,535 bytes; values are cut into chunks well below that, and
# reply messages are kept small so a client's default receive buffer (~208 KiB) holds several.
MAX_PATH = 4096
MAX_VALUE = 60_000  # a written value, in UTF-8 bytes
MAX_REQUEST = 65_536  # a request datagram; larger ones get EMSGSIZE
VALUE_CHUNK_CHARS = 8192  # <= 32 KiB of UTF-8 per VALUE attribute
MAX_PART = 32 * 1024  # payload bytes per reply message before splitting into NLM_F_MULTI parts

_HDR = struct.Struct("=IHHII")
_TT = struct.Struct("=BBH")
_NLA = struct.Struct("=HH")
_I32 = struct.Struct("=i")
_U32 = struct.Struct("=I")
HDR_LEN = _HDR.size
TT_LEN = _TT.size
_TT_HEADER = _TT.pack(PROTOCOL_VERSION, 0, 0)


@dataclass(frozen=True)
class Entry:
    """One name in a namespace directory."""

    name: str
    kind: str  # "dir" | "file"
    writable: bool


@dataclass(frozen=True)
class Change:
    """A change of the namespace, as pushed to subscribers.

    ``op`` is the verb that made it ("mkdir", "rmdir", "write") or "state" for changes the daemon
    made by itself (channels allocated by start, daemon shutting down, a subscriber resync).
    """

    op: str
    path: str
    value: str = ""


class ProtocolError(TraceError):
    """A message that does not follow this protocol."""


# ============================================================================== fast encoder


def nla(typ: int, payload: bytes | memoryview) -> bytes:
    """One attribute: header, payload, zero padding to 4 bytes."""
    n = 4 + len(payload)
    return _NLA.pack(n, typ) + payload + b"\0" * (-n & 3)


def nla_str(typ: int, text: str) -> bytes:
    return nla(typ, text.encode() + b"\0")


def nla_u32(typ: int, value: int) -> bytes:
    return nla(typ, _U32.pack(value))


def nla_u8(typ: int, value: int) -> bytes:
    return nla(typ, bytes((value,)))


def message(
    typ: int, flags: int, seq: int, body: bytes = b"", pid: int = 0, version: int = PROTOCOL_VERSION
) -> bytes:
    """A whole tracetui message: nlmsghdr, ttmsg header, then ``body`` (encoded attributes)."""
    tt = _TT_HEADER if version == PROTOCOL_VERSION else _TT.pack(version, 0, 0)
    return _HDR.pack(HDR_LEN + TT_LEN + len(body), typ, flags, seq, pid) + tt + body


def value_attrs(value: str) -> list[bytes]:
    """A value as VALUE attributes, cut on character boundaries so each chunk is valid UTF-8."""
    if len(value) <= VALUE_CHUNK_CHARS:
        return [nla_str(TT_A_VALUE, value)]
    return [
        nla_str(TT_A_VALUE, value[i : i + VALUE_CHUNK_CHARS])
        for i in range(0, len(value), VALUE_CHUNK_CHARS)
    ]


def entry_attr(entry: Entry) -> bytes:
    inner = (
        nla_str(TT_E_NAME, entry.name)
        + nla_u8(TT_E_KIND, KIND_DIR if entry.kind == "dir" else KIND_FILE)
        + nla_u8(TT_E_WRITABLE, 1 if entry.writable else 0)
    )
    return nla(TT_A_ENTRY, inner)


def encode_hello(seq: int, client: str = "", version: int = PROTOCOL_VERSION) -> bytes:
    body = nla_u32(TT_A_VERSION, version) + nla_str(TT_A_CLIENT, client)
    return message(TT_HELLO, NLM_F_REQUEST, seq, body, version=version)


def encode_path_request(typ: int, seq: int, path: str, flags: int = NLM_F_REQUEST) -> bytes:
    """ls, mkdir, rmdir, read: one PATH attribute."""
    return message(typ, flags, seq, nla_str(TT_A_PATH, path))


def encode_write(seq: int, path: str, value: str) -> bytes:
    body = nla_str(TT_A_PATH, path) + b"".join(value_attrs(value))
    return message(TT_WRITE, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def encode_change(change: Change, pid: int = 0) -> bytes:
    body = nla_str(TT_A_OP, change.op) + nla_str(TT_A_PATH, change.path)
    body += b"".join(value_attrs(change.value))
    return message(TT_CHANGE, 0, 0, body, pid)


def encode_hello_reply(seq: int, pid: int, uid: int, port: int = 0) -> bytes:
    body = nla_u32(TT_A_VERSION, PROTOCOL_VERSION) + nla_u32(TT_A_PID, pid) + nla_u32(TT_A_UID, uid)
    return message(TT_HELLO, 0, seq, body, port)


def encode_error(orig_header: bytes, err: int, text: str | None, port: int = 0) -> bytes:
    """NLMSG_ERROR for the request whose 16-byte header is ``orig_header``; err 0 is an ack."""
    seq = _HDR.unpack_from(orig_header)[3]
    body = _I32.pack(-err) + orig_header[:HDR_LEN]
    flags = NLM_F_CAPPED
    if text:
        body += nla_str(NLMSGERR_ATTR_MSG, text)
        flags |= NLM_F_ACK_TLVS
    return _HDR.pack(HDR_LEN + len(body), NLMSG_ERROR, flags, seq, port) + body


def encode_done(seq: int, port: int = 0) -> bytes:
    return _HDR.pack(HDR_LEN + 4, NLMSG_DONE, NLM_F_MULTI, seq, port) + _I32.pack(0)


def encode_reply(typ: int, seq: int, attrs: list[bytes], port: int = 0) -> list[bytes]:
    """A reply as datagrams: one message, or NLM_F_MULTI parts of <= MAX_PART and NLMSG_DONE."""
    size = sum(len(a) for a in attrs)
    if size <= MAX_PART:
        return [message(typ, 0, seq, b"".join(attrs), port)]
    parts: list[bytes] = []
    chunk: list[bytes] = []
    used = 0
    for a in attrs:
        if chunk and used + len(a) > MAX_PART:
            parts.append(message(typ, NLM_F_MULTI, seq, b"".join(chunk), port))
            chunk, used = [], 0
        chunk.append(a)
        used += len(a)
    if chunk:
        parts.append(message(typ, NLM_F_MULTI, seq, b"".join(chunk), port))
    parts.append(encode_done(seq, port))
    return parts


# ============================================================================== fast decoder


@dataclass(frozen=True, slots=True)
class Header:
    length: int
    type: int
    flags: int
    seq: int
    pid: int


def iter_messages(data: memoryview | bytes) -> Iterator[tuple[Header, memoryview]]:
    """The netlink messages of one datagram: (header, payload after the header).

    Raises ProtocolError at the first message whose length is impossible; the messages before it
    have been yielded already.
    """
    buf = memoryview(data)
    off = 0
    end = len(buf)
    while off < end:
        if end - off < HDR_LEN:
            raise ProtocolError(
                _errno.EPROTO, f"a message of {end - off} bytes is shorter than its header"
            )
        ln, typ, flags, seq, pid = _HDR.unpack_from(buf, off)
        if ln < HDR_LEN or ln > end - off:
            raise ProtocolError(
                _errno.EPROTO, f"a message header says {ln} bytes where {end - off} were received"
            )
        yield Header(ln, typ, flags, seq, pid), buf[off + HDR_LEN : off + ln]
        off += (ln + 3) & ~3


class Attrs:
    """The attributes of one message payload, by type, with typed getters.

    Getters raise :class:`ProtocolError` (EINVAL) with a sentence for a missing or malformed
    attribute, so a handler can use them directly and the daemon turns the error into a reply.
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[int, memoryview]]) -> None:
        self._items = items

    @classmethod
    def parse(cls, payload: memoryview, offset: int = TT_LEN) -> Attrs:
        items: list[tuple[int, memoryview]] = []
        off = offset
        end = len(payload)
        while end - off >= 4:
            ln, typ = _NLA.unpack_from(payload, off)
            if ln < 4 or ln > end - off:
                raise ProtocolError(
                    _errno.EINVAL, f"an attribute claims {ln} bytes where {end - off} remain"
                )
            items.append((typ & NLA_TYPE_MASK, payload[off + 4 : off + ln]))
            off += (ln + 3) & ~3
        if off < end:
            raise ProtocolError(_errno.EINVAL, f"{end - off} stray bytes follow the last attribute")
        return cls(items)

    def all(self, typ: int) -> list[memoryview]:
        return [v for t, v in self._items if t == typ]

    def types(self) -> list[int]:
        return [t for t, _ in self._items]

    def has(self, typ: int) -> bool:
        return any(t == typ for t, _ in self._items)

    def raw(self, typ: int) -> memoryview | None:
        for t, v in self._items:
            if t == typ:
                return v
        return None

    def str(self, typ: int, default: str | None = None) -> str:
        v = self.raw(typ)
        if v is None:
            if default is not None:
                return default
            raise ProtocolError(_errno.EINVAL, f"the message lacks attribute {typ}")
        return _asciiz(v, typ)

    def joined_str(self, typ: int, default: builtins.str | None = None) -> builtins.str:
        """A value sent as several attributes of one type (VALUE chunks)."""
        parts = self.all(typ)
        if not parts:
            if default is not None:
                return default
            raise ProtocolError(_errno.EINVAL, f"the message lacks attribute {typ}")
        if len(parts) == 1:
            return _asciiz(parts[0], typ)
        return "".join(_asciiz(p, typ) for p in parts)

    def u32(self, typ: int, default: int | None = None) -> int:
        v = self.raw(typ)
        if v is None:
            if default is not None:
                return default
            raise ProtocolError(_errno.EINVAL, f"the message lacks attribute {typ}")
        if len(v) != 4:
            raise ProtocolError(_errno.EINVAL, f"attribute {typ} must be 4 bytes, not {len(v)}")
        return int(_U32.unpack(v)[0])

    def u8(self, typ: int) -> int:
        v = self.raw(typ)
        if v is None or len(v) != 1:
            raise ProtocolError(_errno.EINVAL, f"attribute {typ} must be 1 byte")
        return v[0]


def _asciiz(v: memoryview, typ: int) -> str:
    b = bytes(v)
    if not b or b[-1] != 0:
        raise ProtocolError(_errno.EINVAL, f"text attribute {typ} is not NUL-terminated")
    b = b[:-1]
    if b"\0" in b:
        raise ProtocolError(_errno.EINVAL, f"text attribute {typ} holds a NUL byte")
    try:
        return b.decode()
    except UnicodeDecodeError:
        raise ProtocolError(_errno.EINVAL, f"text attribute {typ} is not UTF-8") from None


def check_version(payload: memoryview) -> int:
    """The ttmsg version of a payload (ProtocolError when the payload is too short for it)."""
    if len(payload) < TT_LEN:
        raise ProtocolError(_errno.EPROTO, "the message lacks the 4-byte tracetui header")
    return payload[0]


def decode_error(
    payload: memoryview, flags: int = NLM_F_CAPPED | NLM_F_ACK_TLVS
) -> tuple[int, str]:
    """(errno, sentence) of an NLMSG_ERROR payload with header FLAGS; errno 0 is an ack (its
    sentence, if any, is a warning: the request was done, with a caveat)."""
    if len(payload) < 4:
        raise ProtocolError(_errno.EPROTO, "an error message is shorter than its error code")
    err = -int(_I32.unpack_from(payload)[0])
    if not flags & NLM_F_ACK_TLVS or len(payload) < 4 + HDR_LEN:
        return err, ""
    # Capped replies carry only the original header; uncapped ones carry the whole request.
    orig_len = HDR_LEN if flags & NLM_F_CAPPED else _U32.unpack_from(payload, 4)[0]
    off = 4 + orig_len
    try:
        text = Attrs.parse(payload, (off + 3) & ~3).str(NLMSGERR_ATTR_MSG, "")
    except ProtocolError:
        text = ""
    return err, text


def decode_entries(attrs: Attrs) -> list[Entry]:
    out = []
    for raw in attrs.all(TT_A_ENTRY):
        inner = Attrs.parse(raw, 0)
        out.append(
            Entry(
                name=inner.str(TT_E_NAME),
                kind="dir" if inner.u8(TT_E_KIND) == KIND_DIR else "file",
                writable=bool(inner.u8(TT_E_WRITABLE)),
            )
        )
    return out


def decode_change(attrs: Attrs) -> Change:
    return Change(attrs.str(TT_A_OP), attrs.str(TT_A_PATH), attrs.joined_str(TT_A_VALUE, ""))


# =========================================================================== pyroute2 classes

_DECLARED: dict[str, Any] = {}


def _declare() -> dict[str, Any]:
    """Build the pyroute2 declarations (the reference for the fast codec above)."""
    from pyroute2.netlink import nla as _nla
    from pyroute2.netlink import nlmsg

    class ttmsg(nlmsg):
        """Every tracetui request, reply and notification (types 0x10 and up).

        C structure::

            struct ttmsg {
                __u8  version;    /* PROTOCOL_VERSION */
                __u8  reserved1;  /* 0 */
                __u16 reserved2;  /* 0 */
            };                     /* followed by NLAs */
        """

        prefix = "TT_A_"
        fields = (("version", "B"), ("reserved1", "B"), ("reserved2", "H"))
        nla_map = (
            (TT_A_UNSPEC, "TT_A_UNSPEC", "none"),
            (TT_A_PATH, "TT_A_PATH", "asciiz"),
            (TT_A_VALUE, "TT_A_VALUE", "asciiz"),
            (TT_A_ENTRY, "TT_A_ENTRY", "entry"),
            (TT_A_VERSION, "TT_A_VERSION", "uint32"),
            (TT_A_PID, "TT_A_PID", "uint32"),
            (TT_A_UID, "TT_A_UID", "uint32"),
            (TT_A_OP, "TT_A_OP", "asciiz"),
            (TT_A_CLIENT, "TT_A_CLIENT", "asciiz"),
        )

        class entry(_nla):
            """One directory entry of an ls reply: name, kind (0 file, 1 dir), writable."""

            prefix = "TT_E_"
            nla_map = (
                (0, "TT_E_UNSPEC", "none"),
                (TT_E_NAME, "TT_E_NAME", "asciiz"),
                (TT_E_KIND, "TT_E_KIND", "uint8"),
                (TT_E_WRITABLE, "TT_E_WRITABLE", "uint8"),
            )

    class tterrmsg(nlmsg):
        """NLMSG_ERROR as the daemon sends it: extended ack, always capped.

        C structure::

            struct nlmsgerr { int error; struct nlmsghdr msg; };  /* then NLMSGERR_ATTR_MSG */
        """

        prefix = "NLMSGERR_ATTR_"
        fields = (
            ("error", "i"),
            ("orig_length", "I"),
            ("orig_type", "H"),
            ("orig_flags", "H"),
            ("orig_seq", "I"),
            ("orig_pid", "I"),
        )
        nla_map = (
            (0, "NLMSGERR_ATTR_UNUSED", "none"),
            (NLMSGERR_ATTR_MSG, "NLMSGERR_ATTR_MSG", "asciiz"),
        )

    class ttdone(nlmsg):
        """NLMSG_DONE closing a multi-part reply."""

        fields = (("status", "i"),)

    classes = {
        NLMSG_ERROR: tterrmsg,
        NLMSG_DONE: ttdone,
        **{t: ttmsg for t in VERB_NAMES},
    }
    return {"ttmsg": ttmsg, "tterrmsg": tterrmsg, "ttdone": ttdone, "MESSAGE_CLASSES": classes}


def __getattr__(name: str) -> Any:
    if name in ("ttmsg", "tterrmsg", "ttdone", "MESSAGE_CLASSES"):
        if not _DECLARED:
            _DECLARED.update(_declare())
        return _DECLARED[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
