"""The packet header, stated once as named fields: the Python statement of native/ttrb.h.

Every sub-buffer of a ring is one CTF 1.8 packet; the ring writes this header and the writer,
the readers and the recorder read it.  :data:`HEADER_FIELDS` lists the fields in order
(``name``, struct code, TSDL type, section); everything else is derived from it: the
``struct`` used to read a header, its size, the byte offset of each field, the TSDL of the
trace's ``packet.header`` and the stream's ``packet.context`` (core/trace/metadata.py).
A test compares the offsets and the sizes with the compiled module's constants.

A record is ``u16 id | u64 timestamp | payload`` (:data:`EVENT_HEADER`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "EVENT_HEADER",
    "EVENT_HEADER_SIZE",
    "HEADER_FIELDS",
    "MAGIC",
    "OFFSETS",
    "PACKET_HEADER",
    "PACKET_HEADER_SIZE",
    "HeaderField",
    "PacketHeader",
]

MAGIC = 0xC1FC1FC1


@dataclass(frozen=True)
class HeaderField:
    """One field of the packet header (section "header") or context (section "context")."""

    name: str
    struct_char: str
    tsdl: str  # the declaration's type, with "{name}" where the field name goes
    section: str

    @property
    def size(self) -> int:
        return struct.calcsize("<" + self.struct_char)


HEADER_FIELDS: tuple[HeaderField, ...] = (
    HeaderField("magic", "I", "uint32_t {name}", "header"),
    HeaderField("uuid", "16s", "uint8_t {name}[16]", "header"),
    HeaderField("stream_id", "I", "uint32_t {name}", "header"),
    HeaderField("timestamp_begin", "Q", "tt_clock {name}", "context"),
    HeaderField("timestamp_end", "Q", "tt_clock {name}", "context"),
    HeaderField("content_size", "Q", "uint64_t {name}", "context"),  # bits
    HeaderField("packet_size", "Q", "uint64_t {name}", "context"),  # bits
    HeaderField("packet_seq_num", "Q", "uint64_t {name}", "context"),
    HeaderField("events_discarded", "Q", "uint64_t {name}", "context"),
    HeaderField("cpu_id", "I", "uint32_t {name}", "context"),
)

PACKET_HEADER = struct.Struct("<" + "".join(f.struct_char for f in HEADER_FIELDS))
PACKET_HEADER_SIZE = PACKET_HEADER.size  # 76


def _offsets() -> dict[str, int]:
    out, off = {}, 0
    for f in HEADER_FIELDS:
        out[f.name] = off
        off += f.size
    return out


OFFSETS: dict[str, int] = _offsets()

EVENT_HEADER = struct.Struct("<HQ")  # id, timestamp
EVENT_HEADER_SIZE = EVENT_HEADER.size  # 10


@dataclass(frozen=True)
class PacketHeader:
    """Packet header and context of one packet (sizes in bytes, not bits)."""

    magic: int
    uuid: bytes
    stream_id: int
    timestamp_begin: int
    timestamp_end: int
    content_size: int
    packet_size: int
    packet_seq_num: int
    events_discarded: int
    cpu_id: int

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview, offset: int = 0) -> PacketHeader:
        f = PACKET_HEADER.unpack_from(buf, offset)
        return cls(f[0], f[1], f[2], f[3], f[4], f[5] // 8, f[6] // 8, f[7], f[8], f[9])
