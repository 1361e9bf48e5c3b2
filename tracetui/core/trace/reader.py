"""Reading trace directories: stream files -> packets -> events, merged by time.

``TraceDirectory(path)`` opens a trace directory written by ``core.trace.writer.TraceWriter``,
parses its metadata back (marker table, clock) and checks the first packet of every stream
file.  Iterating it yields ``Event`` and ``Loss`` objects in timestamp order across all
channels and CPUs; the records of each packet are decoded by the packet reader
(core/trace/packets.py), which also finds the losses.

Streams are merged a chunk at a time: chunks are taken in order of their first timestamp and,
once no chunk still to come can hold an earlier event, the decoded events in hand are merged
with one C-level stable sort (a single stream needs no merge at all, and streams that do not
overlap in time need no sort).  ``batches()`` yields the merged events as lists; ``merged()``
takes any per-stream decoder, so ``tracetui dump`` turns records straight into text lines.
"""

from __future__ import annotations

import bisect
import heapq
import os
from collections.abc import Callable, Iterator
from itertools import chain
from operator import attrgetter
from typing import Any

from tracetui.core.model.clock import TraceClock
from tracetui.core.model.markers import Marker
from tracetui.core.model.packet import (
    HEADER_FIELDS,
    MAGIC,
    PACKET_HEADER,
    PACKET_HEADER_SIZE,
    PacketHeader,
)
from tracetui.core.trace.metadata import (
    METADATA,
    Metadata,
    TraceFormatError,
    parse_metadata,
    parse_stream_file_name,
)
from tracetui.core.trace.packets import (
    CHUNK,
    CorruptRecord,
    EventDecoder,
    Item,
    PacketReader,
    Stream,
    StreamDecoder,
)
from tracetui.core.trace.source import PacketInfo

__all__ = ["Key", "TraceDirectory", "TraceFormatError"]

_TSC = attrgetter("tsc")
# Positions in the raw header tuple, by name (core/model/packet.py).
_POS = {f.name: i for i, f in enumerate(HEADER_FIELDS)}
_MAGIC, _UUID, _STREAM_ID = _POS["magic"], _POS["uuid"], _POS["stream_id"]
_CONTENT, _PSIZE = _POS["content_size"], _POS["packet_size"]
_BEGIN, _END = _POS["timestamp_begin"], _POS["timestamp_end"]
_SEQ, _DISCARDED = _POS["packet_seq_num"], _POS["events_discarded"]
Key = Callable[[Any], int]


class TraceDirectory:
    """An opened trace directory (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise TraceFormatError(f"{self.path} does not exist")
        if not os.path.isdir(self.path):
            raise TraceFormatError(f"{self.path} is not a directory (a trace is a directory)")
        self.metadata: Metadata = self._read_metadata()
        self.streams: list[Stream] = []
        self._indexes: dict[str, list[PacketInfo]] = {}
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
        """(header fields, packet bytes up to content end, offset) per packet.

        The header fields are the raw tuple of PACKET_HEADER (the hot path indexes it by the
        positions named below, derived from the one header table).
        """
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
                content, psize = h[_CONTENT] >> 3, h[_PSIZE] >> 3
                if h[_MAGIC] != MAGIC:
                    raise self._bad(stream, off, f"bad magic {h[_MAGIC]:#x} (not a CTF packet)")
                if h[_UUID] != uuid:
                    raise self._bad(stream, off, "its uuid is not the trace's")
                if h[_STREAM_ID] != 0:
                    raise self._bad(stream, off, f"unknown stream class {h[_STREAM_ID]}")
                if not PACKET_HEADER_SIZE <= content <= psize:
                    raise self._bad(stream, off, f"content size {content} of {psize} bytes")
                if off + psize > size:
                    raise self._bad(stream, off, "the file ends inside the packet")
                buf = head if headers_only else os.pread(fd, content, off)
                yield h, buf, off
                off += psize
        finally:
            os.close(fd)

    def packet_headers(self, stream: Stream) -> Iterator[PacketHeader]:
        """The header of each packet."""
        for _, head, _ in self._packets(stream, headers_only=True):
            yield PacketHeader.parse(head)

    def packet_index(self, stream: Stream) -> list[PacketInfo]:
        """One PacketInfo per packet of ``stream``, from headers alone (core/trace/source.py)."""
        clock = stream.clock
        out: list[PacketInfo] = []
        for h, _, off in self._packets(stream, headers_only=True):
            begin, end = h[_BEGIN], h[_END]
            out.append(
                PacketInfo(
                    off,
                    h[_PSIZE] >> 3,
                    h[_CONTENT] >> 3,
                    clock.mono_ns(begin),
                    clock.mono_ns(end),
                    clock.wall_ns(begin),
                    clock.wall_ns(end),
                    h[_DISCARDED],
                    h[_SEQ],
                    len(out),
                )
            )
        self._indexes[stream.path] = out
        return out

    def packet_items(self, stream: Stream, info: PacketInfo) -> list[Item]:
        """The events and losses of one packet, losses first (core/trace/source.py).

        Losses are those since the previous packet of the stream, as the merged iteration
        reports them (the first packet: a non-zero discarded count).
        """
        reader = PacketReader(EventDecoder(self.markers, stream), _TSC)
        if info.index > 0:
            # The loss tracker starts from the previous packet's counters.
            index = self._indexes.get(stream.path) or self.packet_index(stream)
            prev = index[info.index - 1]
            reader.tracker.prev_seq = -1 if prev.seq is None else prev.seq
            reader.tracker.prev_disc = prev.events_discarded
        try:
            fd = os.open(stream.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise TraceFormatError(f"cannot read {stream.path}: {e.strerror}") from None
        try:
            buf = os.pread(fd, info.content_size, info.offset)
        finally:
            os.close(fd)
        if len(buf) < info.content_size:
            raise self._bad(stream, info.offset, "the file ends inside the packet")
        try:
            return reader.items(PACKET_HEADER.unpack_from(buf), buf)
        except CorruptRecord as e:
            raise self._bad(stream, info.offset, str(e)) from None

    def _chunks(
        self,
        stream: Stream,
        decoder: StreamDecoder,
        key: Key | None,
        chunk: int = CHUNK,
        begin_key: Callable[[int], Any] | None = None,
    ) -> Iterator[tuple[Any, list[Any]]]:
        """(start key, decoded items) per chunk of a packet, losses first.

        The packet reader (core/trace/packets.py) walks each packet; this adds the file.
        """
        reader = PacketReader(decoder, key, chunk, begin_key)
        for h, buf, off in self._packets(stream):
            try:
                yield from reader.chunks(h, buf)
            except CorruptRecord as e:
                raise self._bad(stream, off, str(e)) from None

    # -- merged iteration -------------------------------------------------------

    def merged(
        self,
        make_decoder: Callable[[Stream], StreamDecoder],
        key: Key | None,
        chunk: int = CHUNK,
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
