"""Recording messages of the control protocol (types 0x20-0x2F): probes and live views.

tracetui.core.wire.protocol owns the framing, the control verbs and the codec helpers; this module
adds the messages recording needs, in the same form (docs/PROTOCOL.md, "Recording"):

    TT_PROBE_HELLO    probe -> daemon   request, ack        this socket is a traced process
    TT_MARKER         probe -> daemon   NAME, FORMAT        reply TT_MARKER: ID, NAME
    TT_TARGETS        daemon -> probe   notification        GEN, TARGET* (the whole current table)
    TT_TARGETS_ACK    probe -> daemon   request             GEN: table GEN is in, no older emit runs
    TT_LOST           probe -> daemon   request             ID, COUNT: events emitted before the
                                                            marker's targets were known
    TT_PING           probe -> daemon   request, ack        liveness, both ways
    TT_LIVE_SUBSCRIBE client -> daemon  PATH (trace/chan)   reply TT_LIVE_SUBSCRIBE: CLOCK
    TT_LIVE_UNSUBSCRIBE client->daemon  PATH                ack
    TT_LIVE_BATCH     daemon -> client  notification        PATH, CPU, SEQ, PART, PARTS,
                                                            DROPPED, PACKET

TARGET is nested: ID (u32) then one SHM (asciiz shared-memory name) per channel the marker's
events go to.

A live batch is one whole packet up to its content end (header and context included, then the
records, exactly as the ring wrote them), cut into PARTS messages of at most MAX_BATCH bytes so
the daemon never decodes a record: the receiver joins parts PART = 0..PARTS-1 of packet SEQ of
CPU, then reads it with the packet reader that reads trace files (core/trace/packets.py), so
the losses the header reveals (discarded and too-big records, missing packets) show where they
happened.  A packet with a missing part is dropped whole by
the receiver.  DROPPED counts the packets the daemon could not send this subscriber so far
because it read too slowly (its queue was full); it never slows the daemon or a writer.  When
no later packet carries a new DROPPED (the channel went quiet after a burst), the daemon sends a
drop notice: a TT_LIVE_BATCH with PARTS = 0 and no PACKET.
"""

from __future__ import annotations

import errno
import json
import struct
from dataclasses import dataclass

from tracetui.core.wire.protocol import (
    NLM_F_REQUEST,
    Attrs,
    ProtocolError,
    message,
    nla,
    nla_str,
    nla_u32,
)

TT_PROBE_HELLO = 0x20
TT_MARKER = 0x21
TT_TARGETS = 0x22
TT_PING = 0x23
TT_LIVE_SUBSCRIBE = 0x24
TT_LIVE_UNSUBSCRIBE = 0x25
TT_LIVE_BATCH = 0x26
TT_TARGETS_ACK = 0x27
TT_LOST = 0x28
TT_LIVE_MARKER = 0x29

TT_A_NAME = 20  # asciiz
TT_A_FORMAT = 21  # asciiz
TT_A_ID = 22  # u32
TT_A_TARGET = 23  # nested: TT_T_ID, TT_T_SHM*
TT_A_PACKET = 24  # binary: a packet up to its content end, header included
TT_A_CPU = 25  # u32
TT_A_DROPPED = 26  # u32
TT_A_CLOCK = 27  # asciiz JSON: {"freq_hz", "tsc0", "mono_ns0", "real_ns0"}
TT_A_SEQ = 28  # u32: packet sequence number (low 32 bits)
TT_A_PART = 29  # u32
TT_A_PARTS = 30  # u32
TT_A_GEN = 31  # u32: generation of a target table, increasing per daemon
TT_A_COUNT = 32  # u64
TT_T_ID = 1
TT_T_SHM = 2

RECORDING_NAMES = {
    TT_PROBE_HELLO: "probe-hello",
    TT_MARKER: "marker",
    TT_TARGETS: "targets",
    TT_PING: "ping",
    TT_LIVE_SUBSCRIBE: "live-subscribe",
    TT_LIVE_UNSUBSCRIBE: "live-unsubscribe",
    TT_LIVE_BATCH: "live-batch",
    TT_TARGETS_ACK: "targets-ack",
    TT_LOST: "lost",
    TT_LIVE_MARKER: "live-marker",
}

# Bytes of records per batch message: one NLA holds at most 65,535 bytes.
MAX_BATCH = 60_000


_U64 = struct.Struct("=Q")


def nla_u64(typ: int, value: int) -> bytes:
    return nla(typ, _U64.pack(value))


def attr_u64(attrs: Attrs, typ: int) -> int:
    v = attrs.raw(typ)
    if v is None or len(v) != 8:
        raise ProtocolError(errno.EINVAL, f"attribute {typ} must be 8 bytes")
    return int(_U64.unpack(v)[0])


def encode_probe_hello(seq: int) -> bytes:
    return message(TT_PROBE_HELLO, NLM_F_REQUEST, seq)


def encode_ping(seq: int) -> bytes:
    return message(TT_PING, NLM_F_REQUEST, seq)


def encode_marker(seq: int, name: str, fmt: str) -> bytes:
    return message(
        TT_MARKER, NLM_F_REQUEST, seq, nla_str(TT_A_NAME, name) + nla_str(TT_A_FORMAT, fmt)
    )


def encode_marker_reply(seq: int, marker_id: int, name: str, port: int = 0) -> bytes:
    return message(
        TT_MARKER, 0, seq, nla_u32(TT_A_ID, marker_id) + nla_str(TT_A_NAME, name), pid=port
    )


def encode_targets(targets: dict[int, list[str]], port: int = 0, gen: int = 0) -> bytes:
    body = nla_u32(TT_A_GEN, gen & 0xFFFFFFFF) + b"".join(
        nla(TT_A_TARGET, nla_u32(TT_T_ID, mid) + b"".join(nla_str(TT_T_SHM, s) for s in shms))
        for mid, shms in sorted(targets.items())
    )
    return message(TT_TARGETS, 0, 0, body, pid=port)


def encode_targets_ack(seq: int, gen: int) -> bytes:
    return message(TT_TARGETS_ACK, NLM_F_REQUEST, seq, nla_u32(TT_A_GEN, gen & 0xFFFFFFFF))


def encode_lost(seq: int, marker_id: int, count: int) -> bytes:
    return message(
        TT_LOST, NLM_F_REQUEST, seq, nla_u32(TT_A_ID, marker_id) + nla_u64(TT_A_COUNT, count)
    )


def decode_targets(attrs: Attrs) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for raw in attrs.all(TT_A_TARGET):
        inner = Attrs.parse(raw, 0)
        out[inner.u32(TT_T_ID)] = [bytes(v[:-1]).decode() for v in inner.all(TT_T_SHM)]
    return out


def encode_live_subscribe(seq: int, path: str, subscribe: bool = True) -> bytes:
    typ = TT_LIVE_SUBSCRIBE if subscribe else TT_LIVE_UNSUBSCRIBE
    return message(typ, NLM_F_REQUEST, seq, nla_str(1, path))  # 1 == protocol.TT_A_PATH


def encode_live_subscribe_reply(seq: int, clock: dict[str, float], port: int = 0) -> bytes:
    return message(TT_LIVE_SUBSCRIBE, 0, seq, nla_str(TT_A_CLOCK, json.dumps(clock)), pid=port)


def encode_live_packet(
    path: str, cpu: int, seq: int, dropped: int, packet: bytes | memoryview, port: int = 0
) -> list[bytes]:
    """One packet (up to its content end) as PARTS messages."""
    head = nla_str(1, path) + nla_u32(TT_A_CPU, cpu) + nla_u32(TT_A_SEQ, seq & 0xFFFFFFFF)
    tail = nla_u32(TT_A_DROPPED, dropped & 0xFFFFFFFF)
    n = max(1, -(-len(packet) // MAX_BATCH))
    return [
        message(
            TT_LIVE_BATCH,
            0,
            0,
            head
            + nla_u32(TT_A_PART, i)
            + nla_u32(TT_A_PARTS, n)
            + tail
            + nla(TT_A_PACKET, packet[i * MAX_BATCH : (i + 1) * MAX_BATCH]),
            pid=port,
        )
        for i in range(n)
    ]


def encode_live_drops(path: str, dropped: int, port: int = 0) -> bytes:
    """A drop notice: DROPPED packets lost to this subscriber so far, no packet (PARTS = 0)."""
    body = (
        nla_str(1, path)
        + nla_u32(TT_A_CPU, 0)
        + nla_u32(TT_A_SEQ, 0)
        + nla_u32(TT_A_PART, 0)
        + nla_u32(TT_A_PARTS, 0)
        + nla_u32(TT_A_DROPPED, dropped & 0xFFFFFFFF)
    )
    return message(TT_LIVE_BATCH, 0, 0, body, pid=port)


def encode_live_marker(mid: int, name: str, fmt: str, port: int = 0) -> bytes:
    """A marker registered after a subscription began: its definition, on the live socket."""
    body = nla_u32(TT_A_ID, mid) + nla_str(TT_A_NAME, name) + nla_str(TT_A_FORMAT, fmt)
    return message(TT_LIVE_MARKER, 0, 0, body, pid=port)


def decode_live_marker(attrs: Attrs) -> tuple[int, str, str]:
    """(id, name, format) of a TT_LIVE_MARKER."""
    return attrs.u32(TT_A_ID), attrs.str(TT_A_NAME), attrs.str(TT_A_FORMAT, "")


@dataclass(frozen=True)
class LivePart:
    path: str
    cpu: int
    seq: int
    part: int
    parts: int
    dropped: int
    data: bytes  # this part of the packet


def decode_live_part(attrs: Attrs) -> LivePart:
    raw = attrs.raw(TT_A_PACKET)
    return LivePart(
        attrs.str(1),
        attrs.u32(TT_A_CPU),
        attrs.u32(TT_A_SEQ),
        attrs.u32(TT_A_PART),
        attrs.u32(TT_A_PARTS),
        attrs.u32(TT_A_DROPPED),
        bytes(raw) if raw else b"",
    )
