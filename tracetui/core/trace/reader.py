"""Reading tracetui traces: stream files -> decoded events, merged by time.

``Trace(path)`` opens a trace directory written by ``ctf.TraceWriter``,
parses its metadata back (marker table, clock) and checks the first packet
of every stream file.  Iterating it yields ``Event`` and ``Loss`` objects
in timestamp order across all channels and CPUs.

Performance (the hot loop is here): records are decoded a chunk of a packet
at a time by ``_decode_records`` with a per-stream table ``id -> (unpack,
size, class)`` precompiled from the marker formats (one ``struct`` call per
fixed payload); an ``Event`` holds the raw tick count, the decoded value
tuple and its shared ``EventClass``, and computes names, dicts and
nanoseconds only when asked.  Streams are merged a chunk at a time: chunks
are taken in order of their first timestamp and, once no chunk still to
come can hold an earlier event, the decoded events in hand are merged with
one C-level stable sort (a single stream needs no merge at all, and streams
that do not overlap in time need no sort).  ``batches()`` yields the merged
events as lists; ``merged()`` takes any per-stream decoder, so ``tracetui
dump`` turns records straight into text lines.

Losses: ``events_discarded`` in a packet context is a free-running count per
buffer.  An increase from one packet to the next is a ``Loss`` of that many
events; a non-zero count in the first packet of a stream is reported too
(babeltrace2 says "may have discarded events" there).  A gap in
``packet_seq_num`` is a ``Loss`` of whole packets (unit "packets"); a stream
that does not start at packet 0 (a flight-recorder snapshot) is not a gap.
"""

from __future__ import annotations

import bisect
import heapq
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any, Protocol

from tracetui.core.model.formats import MarkerFormat
from tracetui.core.trace.metadata import (
    EVENT_HEADER,
    EVENT_HEADER_SIZE,
    MAGIC,
    METADATA,
    PACKET_HEADER,
    PACKET_HEADER_SIZE,
    Marker,
    Metadata,
    TraceClock,
    TraceFormatError,
    parse_metadata,
    parse_stream_file_name,
)

__all__ = [
    "CorruptRecord",
    "Event",
    "EventClass",
    "EventDecoder",
    "Loss",
    "Stream",
    "StreamDecoder",
    "Trace",
    "TraceFormatError",
]


@dataclass(frozen=True)
class Stream:
    """One stream file: the packets of one buffer of one channel."""

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


class Loss:
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

    @property
    def channel(self) -> str:
        return self.stream.channel

    @property
    def cpu(self) -> int:
        return self.stream.cpu

    @property
    def ts_ns(self) -> int:
        return self.stream.clock.mono_ns(self.tsc)

    @property
    def wall_ns(self) -> int:
        return self.stream.clock.wall_ns(self.tsc)

    def __repr__(self) -> str:
        return (
            f"Loss({self.lost} {self.unit}, channel={self.channel!r}, cpu={self.cpu}, "
            f"ts_ns={self.ts_ns})"
        )


Item = Event | Loss
_TSC = attrgetter("tsc")
_CHUNK = 8192  # bytes of records decoded at a time (see Trace._chunks)
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


Key = Callable[[Any], int]


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


class Trace:
    """An opened trace directory (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise TraceFormatError(f"{self.path} does not exist")
        if not os.path.isdir(self.path):
            raise TraceFormatError(f"{self.path} is not a directory (a trace is a directory)")
        self.metadata: Metadata = self._read_metadata()
        self.streams: list[Stream] = []
        try:
            names = sorted(os.listdir(self.path))
        except OSError as e:
            raise TraceFormatError(f"cannot list {self.path}: {e.strerror}") from None
        for name in names:
            key = parse_stream_file_name(name)
            full = os.path.join(self.path, name)
            if key is None or not os.path.isfile(full) or os.path.getsize(full) == 0:
                continue
            stream = Stream(key[0], key[1], full, self.clock)
            self._check_first_packet(stream)
            self.streams.append(stream)
        self.streams.sort(key=lambda s: (s.channel, s.cpu))

    # -- metadata ---------------------------------------------------------

    def _read_metadata(self) -> Metadata:
        meta_path = os.path.join(self.path, METADATA)
        try:
            with open(meta_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise TraceFormatError(f"{self.path} is not a trace: it has no metadata file") from None
        except OSError as e:
            raise TraceFormatError(f"cannot read {meta_path}: {e.strerror}") from None
        if raw.startswith(b"\x75\x57\x1d\xc1") or raw.startswith(b"\xc1\x1d\x57\x75"):
            raise TraceFormatError(
                f"{meta_path} is packetized CTF metadata (LTTng?): tracetui reads its own traces"
            )
        return parse_metadata(raw.decode("utf-8", "replace"), meta_path)

    def reload_metadata(self) -> None:
        """Re-read the metadata (a trace being written may have gained markers)."""
        self.metadata = self._read_metadata()

    @property
    def uuid(self) -> bytes:
        return self.metadata.uuid

    @property
    def clock(self) -> TraceClock:
        return self.metadata.clock

    @property
    def markers(self) -> dict[int, Marker]:
        return self.metadata.markers

    @property
    def env(self) -> dict[str, str | int]:
        return self.metadata.env

    @property
    def channels(self) -> list[str]:
        return sorted({s.channel for s in self.streams})

    # -- packets ------------------------------------------------------------

    def _bad(self, stream: Stream, offset: int, what: str) -> TraceFormatError:
        name = os.path.basename(stream.path)
        return TraceFormatError(f"{self.path}: stream {name}, packet at byte {offset}: {what}")

    def _check_first_packet(self, stream: Stream) -> None:
        for _ in self._packets(stream, headers_only=True):
            return

    def _packets(
        self, stream: Stream, headers_only: bool = False
    ) -> Iterator[tuple[tuple[int, ...], bytes, int]]:
        """(header fields, packet bytes up to content end, offset) per packet."""
        try:
            fd = os.open(stream.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise TraceFormatError(f"cannot read {stream.path}: {e.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            off = 0
            uuid = self.uuid
            while off < size:
                head = os.pread(fd, PACKET_HEADER_SIZE, off)
                if len(head) < PACKET_HEADER_SIZE:
                    raise self._bad(stream, off, "the file ends inside a packet header")
                h = PACKET_HEADER.unpack(head)
                content, psize = h[5] >> 3, h[6] >> 3
                if h[0] != MAGIC:
                    raise self._bad(stream, off, f"bad magic {h[0]:#x} (not a CTF packet)")
                if h[1] != uuid:
                    raise self._bad(stream, off, "its uuid is not the trace's")
                if h[2] != 0:
                    raise self._bad(stream, off, f"unknown stream class {h[2]}")
                if not PACKET_HEADER_SIZE <= content <= psize:
                    raise self._bad(stream, off, f"content size {content} of {psize} bytes")
                if off + psize > size:
                    raise self._bad(stream, off, "the file ends inside the packet")
                buf = head if headers_only else os.pread(fd, content, off)
                yield h, buf, off
                off += psize
        finally:
            os.close(fd)

    def packet_headers(self, stream: Stream) -> Iterator[tuple[int, ...]]:
        """Raw header fields of each packet (see ctf.PACKET_HEADER)."""
        for h, _, _ in self._packets(stream, headers_only=True):
            yield h

    def _chunks(
        self,
        stream: Stream,
        decoder: StreamDecoder,
        key: Key | None,
        chunk: int = _CHUNK,
        begin_key: Callable[[int], Any] | None = None,
    ) -> Iterator[tuple[Any, list[Any]]]:
        """(start key, decoded items) per chunk of a packet, losses first.

        Packets are decoded in chunks of about _CHUNK bytes: the events of a
        chunk are usually consumed before the next is decoded, so they die
        young and the cyclic GC (which runs every 700 allocations and walks
        survivors) stays cheap; whole 256 KiB packets made it a third of the
        reading time.
        """
        prev_seq = prev_disc = -1
        decode = decoder.decode
        for h, buf, off in self._packets(stream):
            begin, seq, disc = h[3], h[7], h[8]
            items: list[Any] = []
            if prev_seq < 0:
                if disc:
                    items.append(decoder.loss(begin, disc, "events"))
            else:
                if disc > prev_disc:
                    items.append(decoder.loss(begin, disc - prev_disc, "events"))
                if seq > prev_seq + 1:
                    items.append(decoder.loss(begin, seq - prev_seq - 1, "packets"))
            prev_seq, prev_disc = seq, disc
            pos, end = PACKET_HEADER_SIZE, len(buf)
            while True:
                try:
                    pos = decode(buf, pos, min(pos + chunk, end), end, items)
                except CorruptRecord as e:
                    raise self._bad(stream, off, str(e)) from None
                if items:
                    first = items[0] if key is None else key(items[0])
                    if begin >= 0:
                        # A record may carry a timestamp a little before its
                        # packet's begin (a global buffer shared by CPUs):
                        # merge on the earliest.  Later chunks start at their
                        # first item.
                        b = begin if begin_key is None else begin_key(begin)
                        if b < first:
                            first = b
                    yield first, items
                if pos >= end:
                    break
                items = []
                begin = -1

    # -- merged iteration -------------------------------------------------------

    def merged(
        self,
        make_decoder: Callable[[Stream], StreamDecoder],
        key: Key | None,
        chunk: int = _CHUNK,
        begin_key: Callable[[int], Any] | None = None,
    ) -> Iterator[list[Any]]:
        """Decoded items of all streams as lists, in order of ``key(item)``.

        ``make_decoder(stream)`` decodes records into items (``batches``
        makes Events; ``tracetui dump`` makes text lines directly), ``chunk``
        bytes of records at a time.  ``key`` gives an item's time (ticks, or
        anything ordered the same way; None: items compare themselves) and
        ``begin_key`` maps a packet's begin ticks to that scale (None: as is).
        """
        if len(self.streams) == 1:
            stream = self.streams[0]
            for _, items in self._chunks(stream, make_decoder(stream), key, chunk, begin_key):
                yield items
            return
        heap: list[tuple[Any, int, list[Any], Iterator[tuple[Any, list[Any]]]]] = []
        for i, stream in enumerate(self.streams):
            it = self._chunks(stream, make_decoder(stream), key, chunk, begin_key)
            for start, items in it:
                heap.append((start, i, items, it))
                break
        heapq.heapify(heap)
        # Runs of decoded chunks in hand: [items, next index].  Every chunk
        # still to come starts at or after the heap's smallest key, so items
        # before that key are final.
        runs: list[list[Any]] = []
        while heap:
            limit, i, items, it = heap[0]
            if runs:
                batch = _take(runs, limit, key)
                if batch:
                    yield batch
            runs.append([items, 0])
            for start, nxt in it:
                heapq.heapreplace(heap, (start, i, nxt, it))
                break
            else:
                heapq.heappop(heap)
        if runs:
            batch = _take(runs, None, key)
            if batch:
                yield batch

    def batches(self) -> Iterator[list[Item]]:
        """Lists of events and losses, in timestamp order across all streams."""
        markers = self.markers
        return self.merged(lambda stream: EventDecoder(markers, stream), _TSC)

    def __iter__(self) -> Iterator[Item]:
        return chain.from_iterable(self.batches())

    def events(self) -> Iterator[Item]:
        return iter(self)


def _take(runs: list[list[Any]], limit: Any, key: Key | None) -> list[Any]:
    """Remove and return, merged, the items of all runs before ``limit``."""
    pieces: list[list[Any]] = []
    keep: list[list[Any]] = []
    for run in runs:
        items, pos = run
        cut = len(items) if limit is None else bisect.bisect_left(items, limit, pos, key=key)
        if cut > pos:
            pieces.append(items[pos:cut] if pos or cut < len(items) else items)
        if cut < len(items):
            run[1] = cut
            keep.append(run)
    runs[:] = keep
    if not pieces:
        return []
    if len(pieces) == 1:
        return pieces[0]
    merged = list(chain.from_iterable(pieces))
    merged.sort(key=key)  # stable: ties keep chunk order, losses first
    return merged
