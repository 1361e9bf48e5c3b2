"""The explorer's time overview strip: events per time bucket, one row per stream (channel, CPU).

Drawn from a TraceIndex's packet headers (``TraceIndex.stream_buckets``: a packet's item count,
exact once decoded and estimated from its size before, spread over its time range), never by
decoding events, so it costs the packets of the range shown.  Each row is scaled to its own
maximum with block characters; a bucket where a packet header reports discarded events or a
sequence gap is drawn as a red mark (``!`` when nothing else is there).  The column of the
list's current time is white on blue; a picked bucket (moved with ``[``/``]``) is
magenta until the list jumps there (Enter) or the list moves.

The last line is the time axis: the range's start and end (seconds from the trace's first
packet), the zoom factor and the picked bucket's time.  Zoom halves or doubles the range around
the picked bucket (or the list's time); pan moves it by a quarter.
"""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from tracetui.core.trace.index import TraceIndex, stream_label

__all__ = ["BLOCKS", "Overview"]

BLOCKS = " ▁▂▃▄▅▆▇█"
LABEL_MAX = 10
MIN_SPAN_NS = 1_000  # zooming in stops at 1 µs for the whole strip

_BAR = Style(color="green")
_LOSS = Style(color="red", bold=True)
_LABEL = Style(dim=True)
_CURSOR = Style(color="bright_white", bgcolor="blue", bold=True)
_PICK = Style(color="bright_yellow", bgcolor="magenta", underline=True)
_AXIS = Style(dim=True)


def _seconds(ns: int) -> str:
    return f"{ns / 1e9:.6f}s" if abs(ns) < 10 * 10**9 else f"{ns / 1e9:.3f}s"


class Overview(Widget):
    """Events per bucket per stream over a zoomable, pannable time range of a TraceIndex."""

    DEFAULT_CSS = """
    Overview { height: auto; background: $surface; }
    """

    def __init__(self, index: TraceIndex, **kw: Any) -> None:
        super().__init__(**kw)
        self.index = index
        self.first = index.first_ns
        self.last = max(index.last_ns, index.first_ns + 1)
        self.t0, self.t1 = self.first, self.last + 1
        self.cursor_ns = self.first  # the list's current time
        self.pick: int | None = None  # a bucket picked with [ / ], else None
        self._key: tuple[int, int, int] | None = None
        self._data: tuple[list[list[float]], list[list[int]]] = ([], [])
        self._labels = [stream_label(s)[:LABEL_MAX] for s in index.streams]
        self._label_w = max((len(label) for label in self._labels), default=0) + 1
        self.styles.height = len(index.streams) + 1

    # -- geometry --------------------------------------------------------------------

    @property
    def buckets(self) -> int:
        return max(1, self.size.width - self._label_w)

    @property
    def zoom(self) -> float:
        return (self.last + 1 - self.first) / max(1, self.t1 - self.t0)

    def bucket_of(self, ts_ns: int) -> int | None:
        if not self.t0 <= ts_ns < self.t1:
            return None
        return min(self.buckets - 1, int((ts_ns - self.t0) * self.buckets / (self.t1 - self.t0)))

    def bucket_start(self, i: int) -> int:
        return self.t0 + (self.t1 - self.t0) * i // self.buckets

    def data(self) -> tuple[list[list[float]], list[list[int]]]:
        key = (self.t0, self.t1, self.buckets)
        if key != self._key:
            self._data = self.index.stream_buckets(self.t0, self.t1, self.buckets)
            self._key = key
        return self._data

    def recount(self) -> None:
        """Draw again from the index (counts became exact: a scan decoded packets)."""
        self._key = None
        self.refresh()

    # -- moving -------------------------------------------------------------------------

    def _set_range(self, t0: int, span: int) -> None:
        full = self.last + 1 - self.first
        span = max(min(span, full), min(MIN_SPAN_NS, full))
        t0 = max(self.first, min(t0, self.last + 1 - span))
        pick_ns = None if self.pick is None else self.bucket_start(self.pick)
        self.t0, self.t1 = t0, t0 + span
        if pick_ns is not None:
            self.pick = self.bucket_of(pick_ns)
        self.refresh()

    def _focus_ns(self) -> int:
        return self.bucket_start(self.pick) if self.pick is not None else self.cursor_ns

    def zoom_by(self, factor: float) -> None:
        """Zoom in (factor < 1) or out around the picked bucket or the list's time."""
        span = self.t1 - self.t0
        new = max(1, int(span * factor))
        at = self._focus_ns()
        frac = (at - self.t0) / span if span else 0.5
        self._set_range(int(at - new * frac), new)

    def pan(self, direction: int) -> None:
        span = self.t1 - self.t0
        self._set_range(self.t0 + direction * max(1, span // 4), span)

    def move_pick(self, d: int) -> None:
        """Move the picked bucket by D buckets, panning when it leaves the range."""
        n = self.buckets
        start = self.pick if self.pick is not None else self.bucket_of(self.cursor_ns)
        i = (0 if start is None else start) + d
        if not 0 <= i < n:
            shift = i if i < 0 else i - n + 1
            span = self.t1 - self.t0
            self.pick = None
            self._set_range(self.t0 + int(shift * span / n), span)
            i = max(0, min(i, n - 1))
        self.pick = i
        self.refresh()

    def picked_ns(self) -> int | None:
        """The start time of the picked bucket (None when nothing is picked)."""
        return None if self.pick is None else self.bucket_start(self.pick)

    def show_cursor(self, ts_ns: int) -> None:
        """The list is at TS_NS: mark it (panning there if it is outside the range)."""
        self.cursor_ns = ts_ns
        self.pick = None
        if not self.t0 <= ts_ns < self.t1:
            span = self.t1 - self.t0
            self._set_range(ts_ns - span // 2, span)
        self.refresh()

    # -- drawing ---------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        n = self.buckets
        if y >= len(self.index.streams):
            return self._axis(width)
        counts, lost = self.data()
        if y >= len(counts):
            return Strip.blank(width)
        row, losses = counts[y], lost[y]
        top = max(row, default=0.0)
        cur = self.bucket_of(self.cursor_ns)
        segs = [Segment(self._labels[y].ljust(self._label_w), _LABEL)]
        for i in range(n):
            c = row[i] if i < len(row) else 0.0
            level = 0 if c <= 0 or top <= 0 else max(1, round(c / top * 8))
            ch = BLOCKS[level]
            style = _BAR
            if i < len(losses) and losses[i]:
                style = _LOSS
                ch = "!" if level == 0 else ch
            if i == self.pick:
                style = style + _PICK
            elif i == cur:
                style = style + _CURSOR
            segs.append(Segment(ch, style))
        return Strip(segs, width).simplify()

    def _axis(self, width: int) -> Strip:
        left = _seconds(self.t0 - self.first)
        right = _seconds(self.t1 - self.first)
        at = self.picked_ns()
        mid = f"x{self.zoom:,.0f}"
        mid += f"  [{_seconds(at - self.first)}]" if at is not None else ""
        inner = width - self._label_w
        text = left + mid.center(max(0, inner - len(left) - len(right))) + right
        line = " " * self._label_w + text
        return Strip([Segment(line[:width].ljust(width), _AXIS)], width)
