"""The explorer's index over a recorded trace: rows by time from packet headers, decoded lazily.

``TraceIndex(source)`` reads every stream's packet index (``TraceSource.packet_index``: packet
headers and contexts, never events) and builds, without decoding a single record:

- **windows**: the trace's time cut at every packet's begin time.  Window ``k`` holds the items
  (events and losses) with a timestamp in ``[cut[k], cut[k+1])`` of every packet overlapping it,
  merged by time, so row order is the trace's time order across streams.  A row is
  ``(window, offset)``; a window's items come from its packets, decoded on demand
  (``packet_items``) and kept in an LRU cache bounded by the number of items it holds;
- **counts**: items per window, estimated from content sizes (bytes / mean record size) until
  known: a window decoded for display becomes exact at once, and ``count_pass()`` (a generator a
  worker drives; it yields progress) makes them all exact;
- **losses**: per stream from the packet headers alone (``events_discarded`` rises and
  ``packet_seq_num`` gaps, the same rule as ``LossTracker``), for loss marks and ``l``/``L``;
- **buckets**: items per time bucket per channel or CPU (``stream_buckets``: per stream, for the
  overview strip, visiting only the packets of the range), spread from packets (exact
  per-packet counts once known, estimates by the mean record size decoded so far before).

An item's window is decided by one function (``_split``) both when counting and when showing, so
counts and rows always agree.  Scans (statistics, filters, search) are generators yielding
``Progress`` so a worker can run them and stop between packets.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from tracetui.core.model.predicate import EventFilter
from tracetui.core.trace.packets import Item, Loss, Stream
from tracetui.core.trace.source import PacketInfo, TraceSource

__all__ = [
    "FilteredRows",
    "LossMark",
    "PacketRef",
    "Progress",
    "Statistics",
    "TraceIndex",
    "filter_items",
    "find",
]

_TS = attrgetter("ts_ns")
EST_RECORD = 24  # bytes per record when nothing better is known
CACHE_ITEMS = 400_000  # decoded items kept (events of recent packets), about 40-60 MB


@dataclass(frozen=True)
class PacketRef:
    """One packet of the trace, in begin-time order."""

    stream: int  # index into TraceIndex.streams
    info: PacketInfo
    first: int  # first window it overlaps
    last: int  # last window it overlaps

    @property
    def begin_ns(self) -> int:
        return self.info.begin_ns

    @property
    def end_ns(self) -> int:
        return self.info.end_ns


@dataclass(frozen=True)
class LossMark:
    """Events or packets lost in one stream before ``ts_ns`` (the next packet's begin)."""

    ts_ns: int
    stream: int
    lost: int
    unit: str  # "events" or "packets"


@dataclass(frozen=True)
class Progress:
    """How far a scan is: ``done`` of ``total`` packets (or windows)."""

    done: int
    total: int

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass
class Statistics:
    """Counts per event name, CPU and channel, and losses per stream, over the whole trace."""

    events: int = 0
    by_name: Counter[str] = field(default_factory=Counter)
    by_cpu: Counter[int] = field(default_factory=Counter)
    by_channel: Counter[str] = field(default_factory=Counter)
    lost_events: Counter[str] = field(default_factory=Counter)  # stream label -> events
    lost_packets: Counter[str] = field(default_factory=Counter)
    first_ns: int | None = None
    last_ns: int | None = None

    @property
    def duration_s(self) -> float:
        if self.first_ns is None or self.last_ns is None or self.last_ns <= self.first_ns:
            return 0.0
        return (self.last_ns - self.first_ns) / 1e9

    def rate(self, count: int) -> float:
        d = self.duration_s
        return count / d if d > 0 else 0.0


def stream_label(stream: Stream) -> str:
    return f"{stream.channel}_{stream.cpu}"


class WindowedRows:
    """Rows numbered across time windows: ``_cum[k]`` is the first row of window ``k``.

    The one walk from a row number or a time to items, shared by the whole trace (counts
    estimated until a window is decoded) and by its filtered views (counts exact)."""

    _cum: list[int]
    cuts: list[int]  # each window's first time (ns)

    def window(self, k: int) -> Sequence[Item]:
        raise NotImplementedError

    @property
    def row_count(self) -> int:
        return self._cum[-1]

    @property
    def window_total(self) -> int:
        return len(self.cuts)

    def window_start(self, k: int) -> int:
        return self._cum[k]

    def locate(self, row: int) -> tuple[int, int]:
        """(window, offset) of ROW (clamped to the rows)."""
        if not self.cuts:
            return 0, 0
        row = max(0, min(row, self.row_count - 1))
        k = bisect.bisect_right(self._cum, row) - 1
        k = min(k, len(self.cuts) - 1)
        return k, row - self._cum[k]

    def rows(self, start: int, count: int) -> list[tuple[int, Item]]:
        """Up to COUNT (row number, item) pairs from row START on; counts become exact on the way.

        Windows decoded here may turn out to hold more or fewer items than estimated: rows
        after them move, and the caller re-reads ``row_count``.
        """
        out: list[tuple[int, Item]] = []
        if not self.cuts or count <= 0 or start >= self.row_count:
            return out
        k, off = self.locate(start)
        while len(out) < count and k < len(self.cuts):
            items = self.window(k)
            base = self._cum[k]
            if off >= len(items):
                off -= len(items)
                if not items:
                    off = 0
                k += 1
                continue
            for item in items[off : off + count - len(out)]:
                out.append((base + off, item))
                off += 1
            k += 1
            off = 0
        return out

    def item(self, row: int) -> Item | None:
        got = self.rows(row, 1)
        return got[0][1] if got else None

    def row_at_time(self, ts_ns: int) -> int:
        """The first row at or after TS_NS (the last row past the end)."""
        if not self.cuts:
            return 0
        k = max(0, bisect.bisect_right(self.cuts, ts_ns) - 1)
        while k < len(self.cuts):
            items = self.window(k)
            off = bisect.bisect_left(items, ts_ns, key=_TS)
            if off < len(items):
                return self._cum[k] + off
            k += 1
        return max(0, self.row_count - 1)

    def row_time(self, row: int) -> int | None:
        item = self.item(row)
        return None if item is None else item.ts_ns


class TraceIndex(WindowedRows):
    """Rows of a whole trace by time, from its packet index (see the module docstring)."""

    def __init__(
        self, source: TraceSource, cache_items: int = CACHE_ITEMS, native: bool = True
    ) -> None:
        self.source = source
        self.path = source.path
        self.streams: list[Stream] = list(source.streams)
        self.cache_items = cache_items
        # Scans walk records in C where a stream allows (core/trace/native.py); the streams
        # the last scan walked in C.
        self.native = native
        self.native_streams: list[int] = []
        infos: list[tuple[int, int, PacketInfo]] = []
        self.losses: list[LossMark] = []
        self._stream_infos: list[list[PacketInfo]] = []
        for si, stream in enumerate(self.streams):
            index = source.packet_index(stream)
            self._stream_infos.append(index)
            prev: PacketInfo | None = None
            for info in index:
                infos.append((info.begin_ns, si, info))
                self._header_losses(si, prev, info)
                prev = info
        infos.sort(key=lambda t: (t[0], t[1], t[2].index))
        self.losses.sort(key=lambda m: (m.ts_ns, m.stream))
        self.cuts: list[int] = sorted({b for b, _, _ in infos})
        cuts = self.cuts
        self.packets: list[PacketRef] = []
        self.window_packets: list[list[int]] = [[] for _ in cuts]
        for pi, (begin, si, info) in enumerate(infos):
            first = bisect.bisect_left(cuts, begin)
            last = max(first, bisect.bisect_right(cuts, info.end_ns) - 1)
            self.packets.append(PacketRef(si, info, first, last))
            for k in range(first, last + 1):
                self.window_packets[k].append(pi)
        self.record_size = EST_RECORD
        # Per packet: its exact item count once decoded (else None, an estimate is used).
        self.packet_count: list[int | None] = [None] * len(self.packets)
        # Per window: exact item count, or None (estimated).
        self.exact: list[int | None] = [None] * len(cuts)
        self._est = [0.0] * len(cuts)
        for p in self.packets:
            est = self._packet_estimate(p)
            span = p.last - p.first + 1
            for k in range(p.first, p.last + 1):
                self._est[k] += est / span
        self._cum: list[int] = []
        self._recount()
        self._cache: OrderedDict[int, list[Item]] = OrderedDict()
        self._cached_items = 0
        self._windows: OrderedDict[int, list[Item]] = OrderedDict()
        self._seen_bytes = self._seen_items = 0
        self._begins = [p.begin_ns for p in self.packets]
        self._max_span = max((max(0, p.end_ns - p.begin_ns) for p in self.packets), default=0)
        self._loss_times = [m.ts_ns for m in self.losses]
        self.first_ns = infos[0][0] if infos else 0
        self.last_ns = max((i.end_ns for _, _, i in infos), default=0)

    # -- construction ---------------------------------------------------------------

    def _header_losses(self, si: int, prev: PacketInfo | None, info: PacketInfo) -> None:
        disc = info.events_discarded
        if prev is None:
            if disc:
                self.losses.append(LossMark(info.begin_ns, si, disc, "events"))
            return
        if disc > prev.events_discarded:
            self.losses.append(LossMark(info.begin_ns, si, disc - prev.events_discarded, "events"))
        if info.seq is not None and prev.seq is not None and info.seq > prev.seq + 1:
            self.losses.append(LossMark(info.begin_ns, si, info.seq - prev.seq - 1, "packets"))

    def _packet_estimate(self, p: PacketRef) -> float:
        header = 64 if p.info.content_size > 64 else 0
        return max(0.0, (p.info.content_size - header) / self.record_size)

    def _recount(self) -> None:
        self._cum = [0, *itertools.accumulate(self.window_count(k) for k in range(len(self.cuts)))]

    def window_count(self, k: int) -> int:
        exact = self.exact[k]
        return exact if exact is not None else max(0, round(self._est[k]))

    @property
    def exact_count(self) -> bool:
        return all(c is not None for c in self.exact)

    def stream_of(self, item: Item) -> int:
        s = item.stream if isinstance(item, Loss) else None
        for i, st in enumerate(self.streams):
            if (s is not None and st == s) or (
                s is None and st.channel == item.channel and st.cpu == item.cpu
            ):
                return i
        return -1

    # -- decoding ---------------------------------------------------------------------

    def packet(self, pi: int) -> list[Item]:
        """The items of packet PI (decoded, cached)."""
        items = self._cache.get(pi)
        if items is not None:
            self._cache.move_to_end(pi)
            return items
        p = self.packets[pi]
        items = self.source.packet_items(self.streams[p.stream], p.info)
        self._cache[pi] = items
        self._cached_items += len(items)
        while self._cached_items > self.cache_items and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_items -= len(old)
        if self.packet_count[pi] is None:
            self._learn(pi, len(items))
        return items

    def _learn(self, pi: int, n: int) -> None:
        """Packet PI holds N items: keep it, and the mean record size it shows."""
        self.packet_count[pi] = n
        p = self.packets[pi]
        self._seen_bytes += max(0, p.info.content_size - (64 if p.info.content_size > 64 else 0))
        self._seen_items += n

    def _overview_estimate(self, p: PacketRef) -> float:
        """A packet's items from its size by the mean record size of the packets decoded so far."""
        if self._seen_items and self._seen_bytes:
            header = 64 if p.info.content_size > 64 else 0
            return max(0.0, (p.info.content_size - header) * self._seen_items / self._seen_bytes)
        return self._packet_estimate(p)

    def _split(self, pi: int, k: int) -> Sequence[Item]:
        """The items of packet PI that belong to window K (the one assignment rule)."""
        p = self.packets[pi]
        items = self.packet(pi)
        if p.first == p.last:
            return items
        lo = 0 if k == p.first else bisect.bisect_left(items, self.cuts[k], key=_TS)
        hi = len(items) if k == p.last else bisect.bisect_left(items, self.cuts[k + 1], key=_TS)
        return items[lo:hi]

    def window_parts(self, k: int) -> list[Sequence[Item]]:
        return [self._split(pi, k) for pi in self.window_packets[k]]

    def window(self, k: int) -> list[Item]:
        """The items of window K in time order (and its count made exact)."""
        items = self._windows.get(k)
        if items is not None:
            self._windows.move_to_end(k)
            return items
        parts = self.window_parts(k)
        if len(parts) == 1:
            items = list(parts[0])
        else:
            items = list(itertools.chain.from_iterable(parts))
            items.sort(key=_TS)  # stable: a packet's losses stay before its events
        self._windows[k] = items
        while len(self._windows) > 32:
            self._windows.popitem(last=False)
        self._set_exact(k, len(items))
        return items

    def _set_exact(self, k: int, n: int) -> None:
        if self.exact[k] == n:
            return
        old = self.window_count(k)
        self.exact[k] = n
        if n != old:
            delta = n - old
            cum = self._cum
            for j in range(k + 1, len(cum)):
                cum[j] += delta

    # -- losses --------------------------------------------------------------------

    def loss_near(self, ts_ns: int, *, backwards: bool = False) -> LossMark | None:
        """The first loss strictly after TS_NS (or strictly before, backwards)."""
        times = [m.ts_ns for m in self.losses]
        if backwards:
            i = bisect.bisect_left(times, ts_ns) - 1
            return self.losses[i] if i >= 0 else None
        i = bisect.bisect_right(times, ts_ns)
        return self.losses[i] if i < len(self.losses) else None

    def row_of_loss(self, mark: LossMark) -> int:
        """The row of the Loss item reporting MARK (or the first row at its time)."""
        row = self.row_at_time(mark.ts_ns)
        k, off = self.locate(row)
        stream = self.streams[mark.stream]
        while k < len(self.cuts):
            items = self.window(k)
            for j in range(off, len(items)):
                it = items[j]
                if it.ts_ns > mark.ts_ns:
                    return row
                if isinstance(it, Loss) and it.stream == stream and it.unit == mark.unit:
                    return self._cum[k] + j
            k, off = k + 1, 0
        return row

    # -- overview ------------------------------------------------------------------

    def buckets(
        self, t0: int, t1: int, n: int, by: str = "channel"
    ) -> tuple[dict[Any, list[float]], list[int]]:
        """Items per bucket of ``[t0, t1)`` per channel (or cpu), and lost items per bucket.

        A packet's items are spread evenly over its time range: its exact count once decoded,
        an estimate from its size before.
        """
        out: dict[Any, list[float]] = {}
        lost = [0] * n
        if n <= 0 or t1 <= t0:
            return out, lost
        width = (t1 - t0) / n
        for pi, p in enumerate(self.packets):
            b, e = p.begin_ns, max(p.end_ns, p.begin_ns)
            if e < t0 or b >= t1:
                continue
            s = self.streams[p.stream]
            key = s.channel if by == "channel" else s.cpu
            row = out.get(key)
            if row is None:
                row = out[key] = [0.0] * n
            c = self.packet_count[pi]
            count = float(c) if c is not None else self._packet_estimate(p)
            _spread(row, b, e, count, t0, width, b if e == b else None)
        for m in self.losses:
            if t0 <= m.ts_ns < t1:
                lost[min(n - 1, int((m.ts_ns - t0) / width))] += m.lost
        return out, lost

    def stream_buckets(self, t0: int, t1: int, n: int) -> tuple[list[list[float]], list[list[int]]]:
        """Items per bucket of ``[t0, t1)`` per stream, and lost items per bucket per stream.

        From packet headers only (exact counts for packets already decoded), as ``buckets``;
        only the packets overlapping the range are visited (bisected on begin time), so a
        zoomed-in strip costs its packets, not the trace's.
        """
        counts = [[0.0] * max(0, n) for _ in self.streams]
        lost = [[0] * max(0, n) for _ in self.streams]
        if n <= 0 or t1 <= t0 or not self.packets:
            return counts, lost
        width = (t1 - t0) / n
        lo = bisect.bisect_left(self._begins, t0 - self._max_span)
        hi = bisect.bisect_left(self._begins, t1)
        pcount = self.packet_count
        for pi in range(lo, hi):
            p = self.packets[pi]
            b, e = p.begin_ns, max(p.end_ns, p.begin_ns)
            if e < t0:
                continue
            row = counts[p.stream]
            c = pcount[pi]
            count = float(c) if c is not None else self._overview_estimate(p)
            # A packet shorter than a bucket counts where its middle falls.
            _spread(row, b, e, count, t0, width, (b + e) / 2 if e - b < width else None)
        times = self._loss_times
        for j in range(bisect.bisect_left(times, t0), bisect.bisect_left(times, t1)):
            m = self.losses[j]
            lost[m.stream][min(n - 1, int((m.ts_ns - t0) / width))] += m.lost
        return counts, lost

    # -- scans ----------------------------------------------------------------------

    def count_pass(self) -> Iterator[Progress]:
        """Make every window's count exact (decoding each packet once); yields progress."""
        total = len(self.cuts)
        scanners = self._scanners()
        if any(sc is not None for sc in scanners):
            yield from self._native_count_pass(scanners)
            return
        for k in range(total):
            if self.exact[k] is None:
                n = sum(len(part) for part in self.window_parts(k))
                self._set_exact(k, n)
            if k % 16 == 0:
                yield Progress(k, total)
        yield Progress(total, total)

    def _native_count_pass(self, scanners: list[Any]) -> Iterator[Progress]:
        """``count_pass`` packet by packet: items per window counted in C where a stream allows
        (an always-true filter), by ``_split`` elsewhere; only packets of inexact windows."""
        from tracetui.core.trace import native

        every = EventFilter()
        compiled = [None if sc is None else native.compile_filter(every, sc) for sc in scanners]
        need = [c is None for c in self.exact]
        acc = [0] * len(self.cuts)
        yield from self._window_pass(
            scanners, compiled, acc, lambda pi, k: len(self._split(pi, k)), need
        )
        for k, needed in enumerate(need):
            if needed:
                self.exact[k] = acc[k]
        self._recount()
        yield Progress(len(self.packets), len(self.packets))

    def _window_pass(
        self,
        scanners: list[Any],
        compiled: list[Any],
        acc: list[int],
        python_count: Callable[[int, int], int],
        need: list[bool] | None = None,
    ) -> Iterator[Progress]:
        """Add each packet's matching items per window to ACC (packets of a window in NEED only):
        in C by its stream's compiled filter, else ``python_count(packet, window)``."""
        total = len(self.packets)
        cuts = self.cuts
        try:
            for pi, p in enumerate(self.packets):
                if need is not None and not any(need[p.first : p.last + 1]):
                    continue
                cf = compiled[p.stream]
                if cf is None:
                    for k in range(p.first, p.last + 1):
                        acc[k] += python_count(pi, k)
                else:
                    got, n = scanners[p.stream].windows(cf, p.info, cuts[p.first + 1 : p.last + 1])
                    if self.packet_count[pi] is None:
                        self._learn(pi, n)
                    for j, c in enumerate(got):
                        acc[p.first + j] += c
                if pi % 8 == 0:
                    yield Progress(pi, total)
        finally:
            for sc in scanners:
                if sc is not None:
                    sc.close()

    def statistics(self) -> Iterator[Progress | Statistics]:
        """Counts per name, CPU and channel over every item; yields progress, then the result."""
        st = Statistics()
        total = len(self.packets)
        scanners = self._scanners()
        try:
            for pi in range(total):
                sc = scanners[self.packets[pi].stream]
                if sc is None:
                    self._python_statistics(pi, st)
                else:
                    self._native_statistics(pi, sc, st)
                if pi % 8 == 0:
                    yield Progress(pi, total)
        finally:
            for sc in scanners:
                if sc is not None:
                    sc.close()
        yield Progress(total, total)
        yield st

    def _scanners(self) -> list[Any]:
        """Per stream, its C scanner (core/trace/native.py) or None (decoded in Python)."""
        out: list[Any] = [None] * len(self.streams)
        if self.native:
            from tracetui.core.trace import native

            out = [
                native.stream_scanner(self.source, s, self._stream_infos[si])
                for si, s in enumerate(self.streams)
            ]
        self.native_streams = [si for si, sc in enumerate(out) if sc is not None]
        return out

    def _native_statistics(self, pi: int, sc: Any, st: Statistics) -> None:
        """One packet's counts, walked in C: the same sums as ``_python_statistics``."""
        p = self.packets[pi]
        s = self.streams[p.stream]
        losses, counts, n, first, last = sc.stats(p.info)
        if self.packet_count[pi] is None:
            self._learn(pi, len(losses) + n)
        classes = sc.classes
        for mid, c in counts.items():
            st.by_name[classes[mid].name] += c
        if losses:
            label = stream_label(s)
            for _, lost, unit in losses:
                if unit == "packets":
                    st.lost_packets[label] += lost
                else:
                    st.lost_events[label] += lost
        if n:
            st.events += n
            st.by_cpu[s.cpu] += n
            st.by_channel[s.channel] += n
            ts = s.clock.mono_ns(first)
            if st.first_ns is None or ts < st.first_ns:
                st.first_ns = ts
            ts = s.clock.mono_ns(last)
            if st.last_ns is None or ts > st.last_ns:
                st.last_ns = ts

    def _python_statistics(self, pi: int, st: Statistics) -> None:
        p = self.packets[pi]
        items = self.source.packet_items(self.streams[p.stream], p.info)
        if self.packet_count[pi] is None:
            self._learn(pi, len(items))
        by_cls = Counter(getattr(it, "cls", None) for it in items)
        s = self.streams[p.stream]
        n = 0
        for cls, c in by_cls.items():
            if cls is None:  # losses, and other producers' events (no event class)
                for it in items:
                    if getattr(it, "cls", None) is None and not isinstance(it, Loss):
                        st.by_name[it.name] += 1
                        n += 1
                continue
            st.by_name[cls.name] += c
            n += c
        for it in items:
            if isinstance(it, Loss):
                label = stream_label(s)
                if it.unit == "packets":
                    st.lost_packets[label] += it.lost
                else:
                    st.lost_events[label] += it.lost
            else:
                break  # losses come first in a packet
        if n:
            st.events += n
            st.by_cpu[s.cpu] += n
            st.by_channel[s.channel] += n
            first = next((it for it in items if not isinstance(it, Loss)), None)
            if first is not None:
                ts = first.ts_ns
                if st.first_ns is None or ts < st.first_ns:
                    st.first_ns = ts
                ts = items[-1].ts_ns
                if st.last_ns is None or ts > st.last_ns:
                    st.last_ns = ts

    def filter_windows(self, flt: EventFilter) -> Iterator[Progress | list[int]]:
        """Matching items per window for FLT; yields progress, then the list of counts."""
        counts: list[int] = []
        tests: dict[object, Any] = {}
        total = len(self.cuts)
        scanners = self._scanners()
        if any(sc is not None for sc in scanners):
            yield from self._native_filter(flt, scanners, tests)
            return
        for k in range(total):
            n = 0
            for part in self.window_parts(k):
                n += count_matches(part, flt, tests)
            counts.append(n)
            if k % 16 == 0:
                yield Progress(k, total)
        yield Progress(total, total)
        yield counts

    def _native_filter(
        self, flt: EventFilter, scanners: list[Any], tests: dict[object, Any]
    ) -> Iterator[Progress | list[int]]:
        """``filter_windows`` packet by packet: streams C walks count their matches per window
        in C, the others (and filters C cannot evaluate exactly) as ``count_matches`` does."""
        from tracetui.core.trace import native

        compiled = [None if sc is None else native.compile_filter(flt, sc) for sc in scanners]
        self.native_streams = [si for si, c in enumerate(compiled) if c is not None]
        counts = [0] * len(self.cuts)
        yield from self._window_pass(
            scanners, compiled, counts, lambda pi, k: count_matches(self._split(pi, k), flt, tests)
        )
        yield Progress(len(self.packets), len(self.packets))
        yield counts


def find(
    view: Any, start: int, match: Callable[[Item], bool], *, backwards: bool = False
) -> Iterator[Progress | int | None]:
    """The next row of VIEW after START (before, backwards) whose item MATCH accepts.

    VIEW is a TraceIndex or a FilteredRows (``locate``, ``window``, ``window_start``,
    ``window_total``).  Yields progress (windows searched), then the row or None.
    """
    total = view.window_total
    if not total or view.row_count == 0:
        yield None
        return
    k, off = view.locate(start)
    step = -1 if backwards else 1
    done = 0
    first = True
    while 0 <= k < total:
        items = view.window(k)
        if first:
            rng = range(off - 1, -1, -1) if backwards else range(off + 1, len(items))
            first = False
        else:
            rng = range(len(items) - 1, -1, -1) if backwards else range(len(items))
        for j in rng:
            if match(items[j]):
                yield view.window_start(k) + j
                return
        k += step
        done += 1
        if done % 8 == 0:
            yield Progress(done, total)
    yield None


def count_matches(items: Sequence[Item], flt: EventFilter, tests: dict[object, Any]) -> int:
    """How many of ITEMS pass FLT (losses always do); TESTS caches the per-class test."""
    n = 0
    for cls, group in itertools.groupby(items, key=_cls):
        if cls is None:  # losses, and other producers' events (no event class)
            n += sum(1 for it in group if _foreign_passes(it, flt, tests))
            continue
        t = tests.get(cls)
        if t is None:
            t = tests[cls] = flt.bind(cls.name, cls.cpu, cls.channel, cls.names)
        if t is True:
            n += sum(1 for _ in group)
        elif t is not False:
            n += sum(1 for e in group if t(e.values))
    return n


def _cls(item: Item) -> Any:
    return getattr(item, "cls", None)


def _foreign_passes(it: Any, flt: EventFilter, tests: dict[object, Any]) -> bool:
    """A loss (always passes) or an event without an event class (LTTng's: name, cpu,
    channel and a fields dict), tested by FLT bound per (name, cpu, channel, field names)."""
    if isinstance(it, Loss):
        return True
    fields = it.fields
    key = (it.name, it.cpu, it.channel, tuple(fields))
    t = tests.get(key)
    if t is None:
        t = tests[key] = flt.bind(it.name, it.cpu, it.channel, key[3])
    return t is True or (t is not False and bool(t(tuple(fields.values()))))


def filter_items(items: Sequence[Item], flt: EventFilter, tests: dict[object, Any]) -> list[Item]:
    """The items of ITEMS that pass FLT, in order (losses always do)."""
    out: list[Item] = []
    for it in items:
        cls = getattr(it, "cls", None)
        if cls is None:
            if _foreign_passes(it, flt, tests):
                out.append(it)
            continue
        t = tests.get(cls)
        if t is None:
            t = tests[cls] = flt.bind(cls.name, cls.cpu, cls.channel, cls.names)
        if t is True or (t is not False and t(it.values)):
            out.append(it)
    return out



def _spread(
    row: list[float], b: int, e: int, count: float, t0: int, width: float, at: float | None
) -> None:
    """Add a packet's COUNT items, over ``[b, e]``, to the buckets of ROW it overlaps in
    proportion (or all of them to the bucket of time AT)."""
    n = len(row)
    if at is not None or e == b:
        i = int(((b if at is None else at) - t0) / width)
        if 0 <= i < n:
            row[i] += count
        return
    dens = count / (e - b)
    for i in range(max(0, int((b - t0) / width)), min(n - 1, int((e - t0) / width)) + 1):
        lo = max(b, t0 + i * width)
        hi = min(e, t0 + (i + 1) * width)
        if hi > lo:
            row[i] += dens * (hi - lo)

class FilteredRows(WindowedRows):
    """A filtered view of a TraceIndex: rows are the matching items, counted per window."""

    def __init__(self, index: TraceIndex, flt: EventFilter, counts: list[int]) -> None:
        self.index = index
        self.filter = flt
        self.counts = counts
        self._cum = [0, *itertools.accumulate(counts)]
        self._tests: dict[object, Any] = {}
        self._windows: OrderedDict[int, list[Item]] = OrderedDict()

    @property
    def cuts(self) -> list[int]:  # type: ignore[override]
        return self.index.cuts

    def window(self, k: int) -> list[Item]:
        items = self._windows.get(k)
        if items is None:
            items = filter_items(self.index.window(k), self.filter, self._tests)
            self._windows[k] = items
            while len(self._windows) > 32:
                self._windows.popitem(last=False)
        return items

