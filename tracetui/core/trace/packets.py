"""The packet reader: one packet's records -> events, and the losses between packets.

It knows nothing of files or sockets: trace directories (core/trace/reader.py) and live
subscriptions hand it packets, and it turns them into ``Event`` and ``Loss`` items.

Records are decoded a chunk of a packet at a time by ``_decode_records`` with a per-stream
table ``id -> (unpack, size, class)`` precompiled from the marker formats (one ``struct``
call per fixed payload); an ``Event`` holds the raw tick count, the decoded value tuple and
its shared ``EventClass``, and computes names, dicts and nanoseconds only when asked.

Losses are found here, in :class:`LossTracker`, and nowhere else: ``events_discarded`` in a
packet context is a free-running count per buffer.  An increase from one packet to the next
is a ``Loss`` of that many events; a non-zero count in the first packet of a stream is
reported too (babeltrace2 says "may have discarded events" there).  A gap in
``packet_seq_num`` is a ``Loss`` of whole packets (unit "packets"); a stream that does not
start at packet 0 (a flight-recorder snapshot) is not a gap.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from tracetui.core.model.clock import TraceClock
from tracetui.core.model.formats import MarkerFormat
from tracetui.core.model.markers import Marker
from tracetui.core.model.packet import (
    EVENT_HEADER,
    EVENT_HEADER_SIZE,
    HEADER_FIELDS,
    PACKET_HEADER_SIZE,
)
from tracetui.core.trace.metadata import TraceFormatError

__all__ = [
    "CHUNK",
    "CorruptRecord",
    "Event",
    "EventClass",
    "EventDecoder",
    "Item",
    "Loss",
    "LossTracker",
    "PacketReader",
    "Stream",
    "StreamDecoder",
]


@dataclass(frozen=True)
class Stream:
    """The packets of one buffer of one channel (a stream file, or a live subscription: path "")."""

    channel: str
    cpu: int
    path: str
    clock: TraceClock


class EventClass:
    """What events of one marker in one stream share (one object, many events)."""

    __slots__ = ("channel", "clock", "cpu", "format", "id", "name", "names")

    def __init__(self, marker: Marker, stream: Stream) -> None:
        self.id = marker.id
        self.name = marker.name
        self.format: MarkerFormat = marker.format
        self.names = marker.format.names
        self.channel = stream.channel
        self.cpu = stream.cpu
        self.clock = stream.clock


class Event:
    """One decoded event.

    ``tsc`` (raw ticks) and ``values`` (decoded field values in format
    order) are stored; everything else is derived on access.
    """

    __slots__ = ("cls", "tsc", "values")

    def __init__(self, tsc: int, values: tuple[Any, ...], cls: EventClass) -> None:
        self.tsc = tsc
        self.values = values
        self.cls = cls

    @property
    def name(self) -> str:
        return self.cls.name

    @property
    def id(self) -> int:
        return self.cls.id

    @property
    def channel(self) -> str:
        return self.cls.channel

    @property
    def cpu(self) -> int:
        return self.cls.cpu

    @property
    def fields(self) -> dict[str, Any]:
        return dict(zip(self.cls.names, self.values, strict=True))

    @property
    def ts_ns(self) -> int:
        """CLOCK_MONOTONIC nanoseconds."""
        return self.cls.clock.mono_ns(self.tsc)

    @property
    def wall_ns(self) -> int:
        """Nanoseconds since the Unix epoch (as babeltrace2 computes them)."""
        return self.cls.clock.wall_ns(self.tsc)

    def __repr__(self) -> str:
        return (
            f"Event({self.name}, ts_ns={self.ts_ns}, cpu={self.cpu}, "
            f"channel={self.channel!r}, fields={self.fields!r})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and (
            self.tsc,
            self.values,
            self.name,
            self.channel,
            self.cpu,
        ) == (other.tsc, other.values, other.name, other.channel, other.cpu)

    __hash__ = None  # type: ignore[assignment]


class OnStream:
    """What an item read from a stream derives from its ``stream`` and raw ``tsc``.

    Shared by losses and by the events of readers whose events carry their stream (LTTng's);
    tracetui's own ``Event`` reaches the same facts through its event class instead."""

    __slots__ = ()
    stream: Stream
    tsc: int

    @property
    def channel(self) -> str:
        return self.stream.channel

    @property
    def cpu(self) -> int:
        return self.stream.cpu

    @property
    def ts_ns(self) -> int:
        """CLOCK_MONOTONIC nanoseconds."""
        return self.stream.clock.mono_ns(self.tsc)

    @property
    def wall_ns(self) -> int:
        """Nanoseconds since the Unix epoch (as babeltrace2 computes them)."""
        return self.stream.clock.wall_ns(self.tsc)


class Loss(OnStream):
    """Events (unit "events") or whole packets (unit "packets") lost in a stream.

    ``tsc``/``ts_ns`` is the beginning of the first packet after the loss:
    the records were lost before that point (after the previous packet).
    """

    __slots__ = ("lost", "stream", "tsc", "unit")

    def __init__(self, tsc: int, lost: int, stream: Stream, unit: str = "events") -> None:
        self.tsc = tsc
        self.lost = lost
        self.stream = stream
        self.unit = unit

    def __repr__(self) -> str:
        return (
            f"Loss({self.lost} {self.unit}, channel={self.channel!r}, cpu={self.cpu}, "
            f"ts_ns={self.ts_ns})"
        )


Item = Event | Loss
# Per stream: id -> (unpack, size, class).  size > 0: fixed payload,
# ``unpack(buf, pos)`` gives the values and the record is ``size`` bytes with
# its header; size == 0: ``unpack(buf, pos, end)`` gives (values, new_pos).
_Table = dict[int, tuple[Callable[..., Any], int, EventClass]]


def _table(markers: dict[int, Marker], stream: Stream) -> _Table:
    table: _Table = {}
    for mid, m in markers.items():
        cls = EventClass(m, stream)
        st = m.format.fixed_struct
        if st is not None:
            table[mid] = (st.unpack_from, EVENT_HEADER_SIZE + st.size, cls)
        else:
            table[mid] = (m.format.decode, 0, cls)
    return table


class CorruptRecord(Exception):
    """A record that cannot be decoded (raised by decoders; the reader turns
    it into a TraceFormatError that says which stream and packet)."""


def _decode_records(
    buf: bytes, pos: int, stop: int, end: int, table: _Table, out: list[Item]
) -> int:
    """Decode records from ``pos`` until one ends at or after ``stop`` (the hot loop).

    Records are within ``buf[:end]``.  Returns the position after the last
    record decoded.
    """
    append = out.append
    unpack_header = EVENT_HEADER.unpack_from
    event = Event
    try:
        while pos < stop:
            eid, tsc = unpack_header(buf, pos)
            unpack, size, cls = table[eid]
            if size:
                append(event(tsc, unpack(buf, pos + 10), cls))
                pos += size
            else:
                values, pos = unpack(buf, pos + 10, end)
                append(event(tsc, values, cls))
    except KeyError:
        raise CorruptRecord(
            f"event id {eid} at byte {pos} is not declared in the metadata"
        ) from None
    except (struct.error, ValueError, UnicodeDecodeError):
        raise CorruptRecord(f"the record at byte {pos} is cut short") from None
    if pos > end:
        raise CorruptRecord(f"the last record runs {pos - end} bytes past the content")
    return pos


class StreamDecoder(Protocol):
    """Turns the records of one stream into items (see ``Trace.merged``)."""

    def decode(self, buf: bytes, pos: int, stop: int, end: int, out: list[Any]) -> int:
        """Decode records from ``pos`` until one ends at or after ``stop``.

        Records lie within ``buf[:end]``; items go onto ``out``; returns the
        position after the last record; raises CorruptRecord.
        """
        ...

    def loss(self, tsc: int, lost: int, unit: str) -> Any:
        """The item reporting ``lost`` events or packets before ``tsc``."""
        ...


class EventDecoder:
    """Decodes the records of one buffer into Events (and losses into Loss).

    Live views that receive bare record batches (``u16 id | u64 tsc |
    payload``...) use ``decode_all``; ``update`` takes a new marker table
    as markers register.
    """

    def __init__(self, markers: dict[int, Marker], stream: Stream) -> None:
        self.stream = stream
        self.table = _table(markers, stream)

    def update(self, markers: dict[int, Marker]) -> None:
        self.table = _table(markers, self.stream)

    def decode(self, buf: bytes, pos: int, stop: int, end: int, out: list[Any]) -> int:
        return _decode_records(buf, pos, stop, end, self.table, out)

    def loss(self, tsc: int, lost: int, unit: str) -> Loss:
        return Loss(tsc, lost, self.stream, unit)

    def decode_all(self, buf: bytes, pos: int = 0, end: int | None = None) -> list[Item]:
        """All records of ``buf[pos:end]``; TraceFormatError if one cannot be decoded."""
        out: list[Item] = []
        end = len(buf) if end is None else end
        try:
            _decode_records(buf, pos, end, end, self.table, out)
        except CorruptRecord as e:
            raise TraceFormatError(f"record batch of channel {self.stream.channel}: {e}") from None
        return out


class LossTracker:
    """The losses one packet reveals, given the packets of its buffer before it (see above)."""

    __slots__ = ("prev_disc", "prev_seq", "report_first")

    def __init__(self, report_first: bool = True) -> None:
        self.prev_seq = self.prev_disc = -1
        # A live subscriber joins a buffer mid-way: its first packet's count is history.
        self.report_first = report_first

    def losses(
        self, begin: int, seq: int, disc: int, decoder: StreamDecoder, out: list[Any]
    ) -> None:
        """Append the items reporting what was lost before a packet (``begin`` ticks)."""
        if self.prev_seq < 0:
            if disc and self.report_first:
                out.append(decoder.loss(begin, disc, "events"))
        else:
            if disc > self.prev_disc:
                out.append(decoder.loss(begin, disc - self.prev_disc, "events"))
            if seq > self.prev_seq + 1:
                out.append(decoder.loss(begin, seq - self.prev_seq - 1, "packets"))
        self.prev_seq, self.prev_disc = seq, disc


CHUNK = 8192  # bytes of records decoded at a time (see PacketReader)
# Positions in a raw header tuple (PACKET_HEADER.unpack), by name (core/model/packet.py).
_POS = {f.name: i for i, f in enumerate(HEADER_FIELDS)}
_BEGIN, _SEQ, _DISCARDED = (
    _POS["timestamp_begin"],
    _POS["packet_seq_num"],
    _POS["events_discarded"],
)


class PacketReader:
    """Walks the packets of one buffer, in order: losses first, then the records, in chunks.

    ``chunks(header, buf)`` takes one packet (its raw header tuple, and its bytes up to the
    content end, header included) from any medium and yields ``(start key, items)`` per chunk:
    the losses the packet reveals (:class:`LossTracker`) then its records, decoded by the
    stream's decoder (``EventDecoder``: Events; ``tracetui dump``: text lines).  ``key`` gives
    an item's time (ticks, or anything ordered the same way; None: items compare themselves)
    and ``begin_key`` maps a packet's begin ticks to that scale, so a merge can order chunks.

    Packets are decoded in chunks of about CHUNK bytes: the events of a chunk are usually
    consumed before the next is decoded, so they die young and the cyclic GC (which runs every
    700 allocations and walks survivors) stays cheap; whole 256 KiB packets made it a third of
    the reading time.  Raises CorruptRecord.
    """

    def __init__(
        self,
        decoder: StreamDecoder,
        key: Callable[[Any], Any] | None = None,
        chunk: int = CHUNK,
        begin_key: Callable[[int], Any] | None = None,
        report_first: bool = True,
    ) -> None:
        self.decoder = decoder
        self.key = key
        self.chunk = chunk
        self.begin_key = begin_key
        self.tracker = LossTracker(report_first)

    def chunks(self, h: tuple[Any, ...], buf: bytes) -> Iterator[tuple[Any, list[Any]]]:
        decoder, key, chunk, begin_key = self.decoder, self.key, self.chunk, self.begin_key
        decode = decoder.decode
        begin = h[_BEGIN]
        items: list[Any] = []
        self.tracker.losses(begin, h[_SEQ], h[_DISCARDED], decoder, items)
        pos, end = PACKET_HEADER_SIZE, len(buf)
        while True:
            pos = decode(buf, pos, min(pos + chunk, end), end, items)
            if items:
                first = items[0] if key is None else key(items[0])
                if begin >= 0:
                    # A record may carry a timestamp a little before its packet's begin (a
                    # global buffer shared by CPUs): merge on the earliest.  Later chunks
                    # start at their first item.
                    b = begin if begin_key is None else begin_key(begin)
                    if b < first:
                        first = b
                yield first, items
            if pos >= end:
                break
            items = []
            begin = -1

    def items(self, h: tuple[Any, ...], buf: bytes) -> list[Any]:
        """All items of one packet (a live subscriber's whole packet)."""
        out: list[Any] = []
        for _, items in self.chunks(h, buf):
            out.extend(items)
        return out
