"""Live per-channel event views: a line-API scroll view over a capped deque of events.

The design follows toolong's ``LogLines``: the view keeps event objects, never rendered text, and
renders only the rows on screen in :meth:`LiveView.render_line`, caching the resulting ``Strip``s.
Appending is therefore a ``deque.extend`` (no formatting, no widget per line), which is what lets
one view keep up with 100,000+ events per second.

Events arrive in batches (:meth:`LiveView.append_batch`): whoever receives them (the client's
``watch`` iterator, a fixture, a benchmark) hands over whole batches; a UI timer of about 50 ms
drains them into the view, so the screen is refreshed at most 20 times a second no matter the
event rate. Batches the view could not take (its queue full because the UI fell behind) and
batches the daemon reports as dropped are counted and shown, never hidden.

| Key     | Action                                  |
|---------|-----------------------------------------|
| `t`     | relative / absolute timestamps          |
| `u`     | show / hide the CPU column              |
| `k`     | function events as a call tree per thread (tracetui.widgets.call_tree) |
| `enter` | (search bar) next match; `escape` closes |
| `end`   | jump to the newest event and follow     |

Pause/follow (`space`), search (`/`) and the event-name filter (`e`) are bound on the main screen
so they also show in the footer and the command palette.

| Component class        | What it styles                 |
|------------------------|--------------------------------|
| `live-view--time`      | the timestamp column           |
| `live-view--cpu`       | the CPU column                 |
| `live-view--name`      | the event name                 |
| `live-view--fields`    | decoded fields                 |
| `live-view--match`     | the current search match line  |
| `live-view--loss`      | a "lost here" line             |
"""

from __future__ import annotations

import bisect
import fnmatch
import itertools
import re
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static

from tracetui.core.model.clock import TraceClock, relative, time_of_day
from tracetui.core.model.formats import MarkerFormat
from tracetui.core.model.layout import DEFAULT_HISTORY
from tracetui.core.trace.packets import Item, Loss
from tracetui.widgets.call_tree import LOG_EVENT, TREE_EVENTS, CallTreeState, log_text, tree_text
from tracetui.widgets.wrap import lines_per_row, row_part

DRAIN_INTERVAL_S = 0.05
# Batches waiting for the next drain; more than this means the UI is not keeping up.
MAX_PENDING_BATCHES = 512
NAME_WIDTH = 22
NARROW = 100  # under this width the name column is not padded (rows wrap anyway)

# What the view stores per event: (raw tsc, kind index, decoded values). A kind is one event
# class (marker x stream) or one stream's losses; names, CPU, format and clock live there once.
Row = tuple[int, int, tuple[Any, ...]]
# Render cache key: (absolute row index, render settings generation).
LineCacheKey = tuple[int, int]


@dataclass(frozen=True)
class Kind:
    """What rows of one event class (or one stream's losses) share."""

    name: str
    cpu: int
    clock: TraceClock
    format: MarkerFormat | None  # None: a loss row, values = (count,)
    unit: str = "events"

    def fields_text(self, values: tuple[Any, ...]) -> str:
        if self.format is None:
            return f"{values[0]:,} {self.unit} lost here"
        return self.format.format_values(values)


def compile_name_filter(text: str) -> re.Pattern[str] | None:
    """Comma- or space-separated globs of event names (``sched_*, proc_exec``); None = all."""
    globs = [g for g in re.split(r"[,\s]+", text.strip()) if g]
    if not globs:
        return None
    return re.compile("|".join(fnmatch.translate(g) for g in globs))


class _LineStyles(NamedTuple):
    base: Style
    time: Style
    cpu: Style
    name: Style
    fields: Style
    match: Style
    loss: Style


class RowStore:
    """A capped sequence of rows, held as a deque of tuples of rows ("chunks").

    Why not ``deque(maxlen=N)`` of rows: the garbage collector traverses every element of a
    container at each full collection, touching each row's memory (100 k rows: 30-50 ms pauses).
    A tuple whose elements are all untracked is itself untracked after one young collection, so
    a chunk of rows of ints, strs and tuples costs nothing, and the deque holds a few hundred
    chunks at most. Small appends are merged into the last chunk until it holds ``CHUNK`` rows.
    """

    CHUNK = 1024

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._chunks: deque[tuple[Row, ...]] = deque()
        self._starts: deque[int] = deque()  # absolute index of each chunk's first row
        self.base = 0  # absolute index of the first live row (= rows evicted so far)
        self._end = 0  # absolute index after the last row

    def __len__(self) -> int:
        return self._end - self.base

    def extend(self, rows: Sequence[Row]) -> int:
        """Append rows; return how many rows left the front to respect the cap."""
        if not rows:
            return 0
        chunks = self._chunks
        if chunks and len(chunks[-1]) < self.CHUNK:
            chunks[-1] = chunks[-1] + tuple(rows)
        else:
            chunks.append(tuple(rows))
            self._starts.append(self._end)
        self._end += len(rows)
        first = self._end - self.cap
        if first <= self.base:
            return 0
        starts = self._starts
        while chunks and starts[0] + len(chunks[0]) <= first:
            chunks.popleft()
            starts.popleft()
        evicted = first - self.base
        self.base = first
        return evicted

    def __getitem__(self, index: int) -> Row:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        a = self.base + index
        k = bisect.bisect_right(self._starts, a) - 1
        return self._chunks[k][a - self._starts[k]]

    def __iter__(self) -> Iterator[Row]:
        return self.iter_from(0)

    def iter_from(self, index: int, *, backwards: bool = False) -> Iterator[Row]:
        """Rows from INDEX towards the newest (or the oldest, backwards)."""
        n = len(self)
        if backwards:
            for i in range(min(index, n - 1), -1, -1):
                yield self[i]
            return
        if index >= n:
            return
        a = self.base + max(0, index)
        k = bisect.bisect_right(self._starts, a) - 1
        offset = a - self._starts[k]
        for chunk in itertools.islice(self._chunks, k, None):
            yield from itertools.islice(chunk, offset, None)
            offset = 0


class LiveView(ScrollView, can_focus=True):
    """Scrolling view of one channel's live events, capped at ``history`` events."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "toggle_time", "Time", show=False, tooltip="Relative or absolute timestamps"),
        Binding("u", "toggle_cpu", "CPU col", show=False, tooltip="Show or hide the CPU column"),
        Binding("k", "toggle_calls", "Call tree", tooltip="Function events as a call tree"),
        Binding("end", "follow", "Follow", show=False),
        Binding("up", "scroll_up", "Up", show=False),
        Binding("down", "scroll_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_home", "Oldest", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "live-view--time",
        "live-view--cpu",
        "live-view--name",
        "live-view--fields",
        "live-view--match",
        "live-view--loss",
    }

    DEFAULT_CSS = """
    LiveView { height: 1fr; }
    """

    follow: reactive[bool] = reactive(True)
    """Keep the newest event in view; scrolling up pauses, `end` or space resumes."""
    show_cpu: reactive[bool] = reactive(True)
    """Show the CPU column."""
    absolute_time: reactive[bool] = reactive(False)
    """Wall-clock timestamps instead of seconds since the view's first event."""
    call_tree: reactive[bool] = reactive(False)
    """Function events (py_call, py_return, ...) as an indented call tree per thread."""

    class Drained(Message):
        """Posted (at most once per drain tick) when new events were taken into the view."""

        def __init__(self, view: LiveView) -> None:
            super().__init__()
            self.view = view

    def __init__(
        self,
        channel: str,
        *,
        history: int = DEFAULT_HISTORY,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.channel = channel
        self.history = history
        self._pending: deque[Sequence[Item]] = deque()
        self._kinds: list[Kind] = []
        self._kind_of: dict[object, int] = {}  # EventClass or (Stream, unit) -> kind index
        self._shown: list[bool] = []  # per kind: passes the name filter
        self._events = RowStore(history)
        # The displayed sequence: _events itself, or the events matching the name filter.
        # Its `base` (rows ever evicted) keeps cache keys and a paused position stable.
        self._view = self._events
        self._name_re: re.Pattern[str] | None = None
        self.name_filter = ""
        self.search_text = ""
        self._match_abs: int | None = None
        self._t0: int | None = None
        self.received = 0  # events ever received (before the filter)
        self.dropped_batches = 0
        self._generation = 0
        self._cache: LRUCache[LineCacheKey, Strip] = LRUCache(2048)
        self._max_width = 0
        self._lpr = 1  # lines per row: more than 1 when the view is narrower than its rows
        self._name_pad = NAME_WIDTH
        self._dirty = False
        self._rate_window: deque[tuple[float, int]] = deque(maxlen=40)
        self._styles: _LineStyles | None = None
        self._calls: CallTreeState | None = None  # from the first function event on

    # ------------------------------------------------------------------ feeding

    def append_batch(self, batch: Sequence[Item], dropped: int = 0) -> None:
        """Queue a batch for the next drain tick; ``dropped`` counts batches lost upstream.

        Cheap and safe to call at any rate from the event loop: nothing is formatted here.
        """
        self.dropped_batches += dropped
        if len(self._pending) >= MAX_PENDING_BATCHES:
            self._pending.popleft()
            self.dropped_batches += 1
        if batch:
            self._pending.append(batch)
        elif dropped:
            self._dirty = True

    def on_mount(self) -> None:
        self.set_interval(DRAIN_INTERVAL_S, self.drain)

    def _rows(self, batch: Sequence[Item]) -> list[Row]:
        """Compact rows for a batch: one tuple per event, no formatting."""
        kind_of = self._kind_of
        try:
            # The common case: events of classes already seen.
            return [(e.tsc, kind_of[e.cls], e.values) for e in batch]  # type: ignore[union-attr]
        except (KeyError, AttributeError):
            pass
        rows: list[Row] = []
        for item in batch:
            if isinstance(item, Loss):
                key: object = (item.stream, item.unit)
                k = kind_of.get(key)
                if k is None:
                    s = item.stream
                    k = self._add_kind(key, Kind("LOST", s.cpu, s.clock, None, item.unit))
                rows.append((item.tsc, k, (item.lost,)))
            else:
                cls = item.cls
                k = kind_of.get(cls)
                if k is None:
                    k = self._add_kind(cls, Kind(cls.name, cls.cpu, cls.clock, cls.format))
                rows.append((item.tsc, k, item.values))
        return rows

    def _add_kind(self, key: object, kind: Kind) -> int:
        if self._calls is None and kind.name in TREE_EVENTS:
            self._calls = CallTreeState()
            self.refresh_bindings()  # `k` now shows in the footer
        self._kinds.append(kind)
        self._shown.append(self._passes(kind))
        self._kind_of[key] = len(self._kinds) - 1
        return len(self._kinds) - 1

    def _passes(self, kind: Kind) -> bool:
        # Losses are always shown: a view never hides what it could not show.
        return self._name_re is None or kind.format is None or bool(self._name_re.match(kind.name))

    def drain(self) -> int:
        """Move queued batches into the view and refresh once; return how many events moved."""
        if not self._pending:
            if self._dirty:
                self._dirty = False
                self.post_message(self.Drained(self))
            return 0
        view = self._view
        moved = 0
        evicted = 0
        name_re = self._name_re
        pending = self._pending
        events_ = self._events
        while pending:
            batch = pending.popleft()
            moved += len(batch)
            # Tuples holding only ints, strs and tuples of them drop out of the garbage
            # collector's lists after one young collection, so a full history costs nothing at
            # each full collection (event objects, or tuples holding a dict, are scanned every
            # time: 40-90 ms pauses with 100 k events held).
            rows = self._rows(batch)
            if self._calls is not None:
                rows = self._calls.annotate(rows, self._kinds, self._mono_ns)
            if self._t0 is None:
                self._t0 = self._mono_ns(rows[0])
            if name_re is None:
                evicted += events_.extend(rows)
            else:
                events_.extend(rows)
                shown = self._shown
                evicted += view.extend([r for r in rows if shown[r[1]]])
        self.received += moved
        self._rate_window.append((time.monotonic(), self.received))
        self._update_size()
        if self.follow:
            self._to_end()
        elif evicted:
            y = max(0, self.scroll_y - evicted * self._lpr)
            self.scroll_to(y=y, animate=False, immediate=True)
        self.refresh()
        self._dirty = False
        self.post_message(self.Drained(self))
        return moved

    def _to_end(self) -> None:
        # scroll_end() would wait for a layout pass to show the scrollbar (allow_vertical_scroll);
        # max_scroll_y is already right from the virtual size, so force it.
        self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True, force=True)

    def _update_size(self) -> None:
        # The width only grows (a changing virtual size costs a layout pass).
        if self._view:
            self._max_width = max(self._max_width, len(self._plain(self._view[-1])))
        # Narrower than the widest row: every row wraps onto the same number of lines
        # (tracetui/widgets/wrap.py), so fields stay visible on an 80-column terminal.
        width = self.scrollable_content_region.width
        self._lpr = lines_per_row(self._max_width, width) if width else 1
        wide = self._max_width if self._lpr == 1 else width
        size = Size(wide, len(self._view) * self._lpr)
        if size != self.virtual_size:
            self.virtual_size = size

    def on_resize(self) -> None:
        pad = NAME_WIDTH if self.scrollable_content_region.width >= NARROW else 0
        if pad != self._name_pad:
            self._name_pad = pad
            self._invalidate()
        self._update_size()
        if self.follow:
            self._to_end()

    # ------------------------------------------------------------------ status

    @property
    def event_count(self) -> int:
        """Events currently held (after the name filter)."""
        return len(self._view)

    @property
    def rate(self) -> float:
        """Events per second received over the last couple of seconds."""
        w = self._rate_window
        if len(w) < 2:
            return 0.0
        (t0, n0), (t1, n1) = w[0], w[-1]
        if time.monotonic() - t1 > 1.0:
            return 0.0
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    # ------------------------------------------------------------------ settings

    def set_name_filter(self, text: str) -> None:
        """Show only events whose name matches these globs (empty: all)."""
        self.name_filter = text.strip()
        self._name_re = compile_name_filter(text)
        if self._name_re is None:
            self._view = self._events
        else:
            self._shown = [self._passes(k) for k in self._kinds]
            shown = self._shown
            self._view = RowStore(self.history)
            self._view.extend([r for r in self._events if shown[r[1]]])
        self._match_abs = None
        self._invalidate()
        if self.follow:
            self._to_end()

    def _invalidate(self) -> None:
        self._generation += 1
        self._cache.clear()
        self._max_width = 0
        self._update_size()
        self.refresh()
        self._dirty = True

    def watch_show_cpu(self) -> None:
        self._invalidate()

    def watch_absolute_time(self) -> None:
        self._invalidate()

    def watch_call_tree(self) -> None:
        self._invalidate()

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self._match_abs = None
            self._to_end()
            self._invalidate()
        self._dirty = True

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None
        self._cache.clear()

    # ------------------------------------------------------------------ search

    def search(self, text: str, *, backwards: bool = False) -> bool:
        """Find the next (or previous) event whose line contains TEXT; pause and show it."""
        self.search_text = text
        needle = text.casefold()
        if not needle or not self._view:
            self._match_abs = None
            self._invalidate()
            return False
        view = self._view
        n = len(view)
        if self._match_abs is not None and 0 <= self._match_abs - view.base < n:
            start = self._match_abs - view.base + (-1 if backwards else 1)
        else:
            start = int(self.scroll_y) // self._lpr + (-1 if backwards else 0)
            if self.follow:
                start = n - 1 if backwards else 0
        step = -1 if backwards else 1
        for i, row in enumerate(view.iter_from(start, backwards=backwards)):
            if needle in self._plain(row).casefold():
                i = start + step * i
                self._match_abs = view.base + i
                self.follow = False
                self._invalidate()
                height = self.scrollable_content_region.height or 1
                y = max(0, i * self._lpr - height // 2)
                self.scroll_to(y=y, animate=False, immediate=True)
                return True
        self._invalidate()
        return False

    # ------------------------------------------------------------------ actions

    def action_toggle_time(self) -> None:
        self.absolute_time = not self.absolute_time

    def action_toggle_cpu(self) -> None:
        self.show_cpu = not self.show_cpu

    def action_toggle_calls(self) -> None:
        self.call_tree = not self.call_tree

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The call tree key takes footer room only in views that carry function events.
        if action == "toggle_calls":
            return self._calls is not None
        return True

    def action_follow(self) -> None:
        self.follow = True

    def toggle_follow(self) -> None:
        self.follow = not self.follow

    def action_scroll_up(self) -> None:
        self.follow = False
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.follow = False
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self.follow = False
        super().action_scroll_home()

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.follow = False

    # ------------------------------------------------------------------ rendering

    def _mono_ns(self, row: Row) -> int:
        return self._kinds[row[1]].clock.mono_ns(row[0])

    def _time_text(self, row: Row) -> str:
        clock = self._kinds[row[1]].clock
        if self.absolute_time:
            return time_of_day(clock.wall_ns(row[0]))
        ts = clock.mono_ns(row[0])
        return relative(ts - (ts if self._t0 is None else self._t0))

    def _plain(self, row: Row) -> str:
        kind = self._kinds[row[1]]
        cpu = f" {kind.cpu:>3}" if self.show_cpu else ""
        name = f"{kind.name:<{self._name_pad}}"
        return f"{self._time_text(row)}{cpu} {name} {self._fields_text(kind, row[2])}"

    def _fields_text(self, kind: Kind, values: tuple[Any, ...]) -> str:
        if kind.format is not None and len(values) > len(kind.format.names):
            if self.call_tree:
                text = tree_text(kind.name, values)
                if text is not None:
                    return text
            values = values[: len(kind.format.names)]  # without the call tree's annotations
        if kind.name == LOG_EVENT and kind.format is not None and len(values) == 6:
            return log_text(values)
        return kind.fields_text(values)

    def _line_styles(self) -> _LineStyles:
        """Styles of each column, resolved once per style change.

        ``rich_style`` walks the DOM and costs tens of microseconds: never per line.
        """
        if self._styles is None:
            base = self.rich_style
            get = self.get_component_rich_style
            self._styles = _LineStyles(
                base,
                base + get("live-view--time"),
                base + get("live-view--cpu"),
                base + get("live-view--name"),
                base + get("live-view--fields"),
                base + get("live-view--match"),
                base + get("live-view--loss"),
            )
        return self._styles

    def _strip(self, index: int) -> Strip:
        key = (self._view.base + index, self._generation)
        strip = self._cache.get(key)
        if strip is not None:
            return strip
        row = self._view[index]
        kind = self._kinds[row[1]]
        st = self._line_styles()
        s_time, s_cpu, s_name, s_fields = st.time, st.cpu, st.name, st.fields
        if kind.format is None:
            s_name = s_fields = st.loss
        if self._match_abs == key[0]:
            s_time, s_cpu, s_name, s_fields = (
                s + st.match for s in (s_time, s_cpu, s_name, s_fields)
            )
        segs = [Segment(self._time_text(row), s_time)]
        if self.show_cpu:
            segs.append(Segment(f" {kind.cpu:>3}", s_cpu))
        segs.append(Segment(f" {kind.name:<{self._name_pad}} ", s_name))
        segs.append(Segment(self._fields_text(kind, row[2]), s_fields))
        strip = Strip(segs)
        if strip.cell_length > self._max_width:
            self._max_width = strip.cell_length
            self.call_later(self._update_size)  # it may need another line per row
        self._cache[key] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index, part = divmod(scroll_y + y, self._lpr)
        width = self.scrollable_content_region.width
        st = self._line_styles()
        if index >= len(self._view):
            return Strip.blank(width, st.base)
        strip = self._strip(index)
        fill = st.base + st.match if self._match_abs == self._view.base + index else st.base
        if self._lpr > 1:
            return row_part(strip, width, part, fill, self._lpr)
        return strip.crop_extend(scroll_x, scroll_x + width, fill)


class LiveViewPane(Vertical):
    """A live view with its status line and search bar; one per open channel view."""

    DEFAULT_CSS = """
    LiveViewPane { height: 1fr; }
    """

    def __init__(
        self,
        channel: str,
        *,
        history: int = DEFAULT_HISTORY,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id, classes="live-pane")
        self.channel = channel
        self.view = LiveView(channel, history=history, classes="live-view")
        self._status = Static("", classes="live-status")
        self._search = Input(placeholder="search (enter: next, escape: close)", classes="search")
        self._last_status = ""

    def compose(self) -> Any:
        yield self._status
        yield self.view
        yield self._search

    def on_mount(self) -> None:
        self._search.display = False
        self.update_status()
        # The rate decays to 0 when events stop: refresh the status line now and then anyway.
        self.set_interval(1.0, self.update_status)

    def on_live_view_drained(self, message: LiveView.Drained) -> None:
        message.stop()
        self.update_status()

    def update_status(self) -> None:
        v = self.view
        parts = [
            f"[b]{self.channel}[/b]",
            "[$success]▶ following[/]" if v.follow else "[$warning]■ paused[/]",
            f"{v.event_count:,} events",
            f"{v.rate:,.0f}/s",
        ]
        if v.dropped_batches:
            parts.append(f"[$error]dropped batches: {v.dropped_batches:,}[/]")
        else:
            parts.append("dropped batches: 0")
        if v.name_filter:
            parts.append(f"filter: {v.name_filter}")
        if v.search_text:
            parts.append(f"search: {v.search_text}")
        parts.append("abs time" if v.absolute_time else "rel time")
        text = "  ".join(parts)
        if text != self._last_status:
            self._last_status = text
            self._status.update(text, layout=False)

    # ------------------------------------------------------------------ search bar

    def open_search(self) -> None:
        self._search.display = True
        self._search.value = self.view.search_text
        self._search.focus()

    def close_search(self) -> None:
        self._search.display = False
        self.view.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        found = self.view.search(event.value)
        if not found and event.value:
            self.notify(f"No more events matching {event.value!r}.", severity="warning")
        self.update_status()

    def on_key(self, event: events.Key) -> None:
        if event.key == "escape" and self._search.has_focus:
            event.stop()
            self.close_search()
