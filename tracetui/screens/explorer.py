"""The trace explorer: a recorded trace (any TraceSource) browsed, filtered and counted.

Opened by ``tracetui open DIR [DIR...]`` (one tab per trace).  The event list draws rows from
core/trace/index.py's TraceIndex (packet headers only at open; packets decoded as rows are
drawn, in a bounded cache), so the first screen of a large trace costs its packet index, not
its events.  Filters and statistics scan every event in a worker thread with a progress bar;
Escape cancels.  The details pane follows the cursor, so every field stays visible on an
80-column terminal.

Keys: arrows/PgUp/PgDn/Home/End move, ``/`` filter (``NAMES`` globs, ``where PREDICATE``, or
both: ``sched_* where pid == 42``; empty clears), ``s`` statistics, ``l``/``L`` next/previous
loss, ``g`` jump to a time (seconds from the trace's start), ``k`` the call tree of the
function events of a ``tracetui run`` trace (calls and total time per call path and thread),
``q`` quits.  The overview strip
(tracetui/widgets/overview.py): ``+``/``-`` zoom, ``<``/``>`` pan, ``[``/``]`` pick a bucket,
Enter jumps the list to the picked bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Size
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, Input, ProgressBar, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from tracetui.core.model.clock import time_of_day
from tracetui.core.model.predicate import EventFilter, PredicateError
from tracetui.core.trace.index import FilteredRows, Progress, Statistics, TraceIndex
from tracetui.core.trace.lines import item_line, loss_text
from tracetui.core.trace.packets import Event, Loss
from tracetui.widgets.call_summary import CallNode, has_function_events, summarize, tree_lines
from tracetui.widgets.overview import Overview
from tracetui.widgets.wrap import lines_per_row, row_part

__all__ = [
    "ExplorerApp",
    "ExplorerPane",
    "ExplorerScreen",
    "OpenError",
    "open_index",
    "parse_filter",
]

_LOSS = Style(color="red", bold=True)
NARROW = 100  # columns under which the list draws compact, wrapped rows
_CURSOR = Style(reverse=True)
_LOSSES = Binding.Group("loss", compact=True)
_ZOOM = Binding.Group("zoom", compact=True)
_PAN = Binding.Group("pan", compact=True)
_PICK = Binding.Group("pick", compact=True)


class OpenError(Exception):
    """A directory that cannot be explored; ``str()`` is one line naming it."""


def open_index(path: str) -> TraceIndex:
    """The packet index of trace directory PATH (``~`` expanded), or OpenError (one line)."""
    import os
    import struct

    from tracetui.core.trace.traces import open_trace

    full = os.path.expanduser(path)
    if not os.path.exists(full):
        raise OpenError(f"{path}: no such directory.")
    if not os.path.isdir(full):
        raise OpenError(f"{path} is not a directory (a trace is a directory holding 'metadata').")
    try:
        return TraceIndex(open_trace(full))
    except (ValueError, OSError, KeyError, IndexError, struct.error) as e:
        # TraceFormatError (a ValueError) says what the reader does not support in one sentence.
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OpenError(f"{path} is not a readable trace: {text}") from None


def parse_filter(text: str) -> EventFilter:
    """``NAMES``, ``where PREDICATE`` or ``NAMES where PREDICATE``; PredicateError if bad."""
    text = text.strip()
    if text.startswith("where "):
        return EventFilter("", text[6:])
    if " where " in text:
        names, pred = text.split(" where ", 1)
        return EventFilter(names, pred)
    return EventFilter(text, "")


class EventList(ScrollView, can_focus=True):
    """Every row of the trace (or of a filter) through the line API."""

    BINDINGS = [
        Binding("up", "move(-1)", show=False),
        Binding("down", "move(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "edge(0)", show=False),
        Binding("end", "edge(1)", show=False),
    ]

    def __init__(self, index: TraceIndex, **kw: Any) -> None:
        super().__init__(**kw)
        self.index = index
        self.rows: TraceIndex | FilteredRows = index
        # The cursor is anchored to (window, offset): row numbers move while window counts go
        # from estimates to exact, the item under the cursor must not.
        self._anchor = (0, 0)
        self._longest = 0  # the widest row drawn so far
        self._lpr = 1  # lines per row (widgets/wrap.py): 2 or 3 when rows are wider

    @property
    def cursor(self) -> int:
        k, off = self._anchor
        return self.rows.window_start(k) + off if self.rows.row_count else 0

    @cursor.setter
    def cursor(self, row: int) -> None:
        self._anchor = self.rows.locate(row) if self.rows.row_count else (0, 0)

    def on_mount(self) -> None:
        self.refresh_size()

    def refresh_size(self) -> None:
        width = self.scrollable_content_region.width
        self._lpr = lines_per_row(self._longest, width, most=3) if width else 1
        self.virtual_size = Size(width, max(1, self.rows.row_count) * self._lpr)
        self.refresh()

    def on_resize(self) -> None:
        self.refresh_size()
        self._show_cursor()

    def _line(self, item: Any, width: int) -> str:
        """The row's text: item_line, or at under NARROW columns a compact line (no brackets,
        no "cpu", no channel: the details pane names them) that wraps onto a second line."""
        if width >= NARROW:
            return item_line(item)
        head = f"{time_of_day(item.wall_ns)} {item.cpu} "
        if isinstance(item, Loss):
            return head + loss_text(item.lost, item.unit)
        fmt = item.cls.format
        return head + (f"{item.name} {fmt.format_values(item.values)}" if fmt.fields else item.name)

    def set_rows(self, rows: TraceIndex | FilteredRows) -> None:
        self.rows = rows
        self.cursor = 0
        self.scroll_to(y=0, animate=False)
        self.refresh_size()
        self.post_cursor()

    def current(self) -> Any:
        got = self.rows.rows(self.cursor, 1) if self.rows.row_count else []
        return got[0][1] if got else None

    def post_cursor(self) -> None:
        pane = self.parent
        while pane is not None and not isinstance(pane, ExplorerPane):
            pane = pane.parent
        if pane is not None:
            pane.show_details(self.current(), self.cursor)

    def go(self, row: int) -> None:
        n = self.rows.row_count
        self.cursor = max(0, min(row, n - 1)) if n else 0
        self._show_cursor()
        self.refresh_size()
        self.post_cursor()

    def _show_cursor(self) -> None:
        """Scroll so that every line of the cursor's row shows."""
        h = max(1, self.scrollable_content_region.height)
        top, bottom = self.cursor * self._lpr, (self.cursor + 1) * self._lpr
        if top < self.scroll_offset.y:
            self.scroll_to(y=top, animate=False)
        elif bottom > self.scroll_offset.y + h:
            # Whole rows at the top: the first line shown is a row's first line.
            self.scroll_to(y=-(-(bottom - h) // self._lpr) * self._lpr, animate=False)

    def action_move(self, d: int) -> None:
        self.go(self.cursor + d)

    def action_page(self, d: int) -> None:
        rows = self.scrollable_content_region.height // self._lpr
        self.go(self.cursor + d * max(1, rows - 1))

    def action_edge(self, end: int) -> None:
        self.go(self.rows.row_count - 1 if end else 0)

    def render_line(self, y: int) -> Strip:
        row, part = divmod(self.scroll_offset.y + y, self._lpr)
        width = self.scrollable_content_region.width
        got = self.rows.rows(row, 1) if 0 <= row < self.rows.row_count else []
        if not got:
            return Strip.blank(width)
        item = got[0][1]
        text = self._line(item, width)
        style = _LOSS if isinstance(item, Loss) else Style()
        if row == self.cursor:
            style = style + _CURSOR
        if len(text) > self._longest:
            # Wider rows than seen so far: maybe another line per row (widgets/wrap.py).
            self._longest = len(text)
            if lines_per_row(self._longest, width, most=3) != self._lpr:
                self.call_later(self.on_resize)
        if self.rows.row_count * self._lpr != self.virtual_size.height:
            self.call_later(self.refresh_size)  # estimates became exact
        return row_part(Strip([Segment(text, style)]), width, part, style, self._lpr)


class ExplorerPane(Vertical):
    """One trace: status line, event list, details, the filter input and a progress bar."""

    BINDINGS = [
        Binding("slash", "filter", "filter"),
        Binding("s", "statistics", "stats"),
        Binding("k", "calls", "calls"),
        Binding("l", "loss(0)", "next", group=_LOSSES),
        Binding("L", "loss(1)", "prev", group=_LOSSES),
        Binding("g", "goto", "time"),
        Binding("plus", "zoom(0.5)", "in", key_display="+", group=_ZOOM),
        Binding("minus", "zoom(2)", "out", key_display="-", group=_ZOOM),
        Binding("less_than_sign", "pan(-1)", "left", key_display="<", group=_PAN),
        Binding("greater_than_sign", "pan(1)", "right", key_display=">", group=_PAN),
        Binding("left_square_bracket", "pick(-1)", "prev", key_display="[", group=_PICK),
        Binding("right_square_bracket", "pick(1)", "next", key_display="]", group=_PICK),
        Binding("enter", "jump", "go"),
        Binding("escape", "cancel", "cancel", show=False),
    ]

    DEFAULT_CSS = """
    ExplorerPane .explorer-status { height: 1; background: $boost; }
    ExplorerPane .explorer-list { height: 1fr; overflow-x: hidden; }
    ExplorerPane .explorer-details {
        height: auto; max-height: 12; border-top: solid $accent; padding: 0; overflow-y: auto;
    }
    ExplorerPane .explorer-progress { height: 1; }
    """

    def __init__(
        self,
        path: str,
        index: TraceIndex,
        *,
        position_ns: int | None = None,
        filter_text: str = "",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.path = path
        self.index = index
        self.filter_text = ""
        self._mode = ""
        self._has_calls = has_function_events(index)
        # Restored from a layout: the filter is applied, then the list goes to the time.
        self._restore = (position_ns, filter_text)
        if filter_text:
            self.filter_text = filter_text

    def compose(self) -> ComposeResult:
        yield Static(self._status(), classes="explorer-status")
        yield Overview(self.index, classes="explorer-overview")
        yield EventList(self.index, classes="explorer-list")
        yield Static("", classes="explorer-details")
        yield Input(placeholder="", classes="explorer-input")
        yield ProgressBar(total=1.0, show_eta=False, classes="explorer-progress")

    def on_mount(self) -> None:
        self.query_one(Input).display = False
        self.query_one(ProgressBar).display = False
        self.query_one(EventList).focus()
        self.query_one(EventList).post_cursor()
        position_ns, text = self._restore
        if text:
            self.run_filter(parse_filter(text))  # checked by whoever restores it
        else:
            self._restore = (None, "")
            if position_ns is not None:
                self.go_to_position(position_ns)

    @property
    def position_ns(self) -> int:
        """The list's current time, in ns from the trace's first packet (saved in layouts)."""
        if not self.is_mounted or self._restore[0] is not None:
            return self._restore[0] or 0  # not shown yet, or its filter still running
        item = self.query_one(EventList).current()
        return max(0, item.ts_ns - self.index.first_ns) if item is not None else 0

    def go_to_position(self, position_ns: int) -> None:
        lst = self.query_one(EventList)
        lst.go(lst.rows.row_at_time(self.index.first_ns + position_ns))

    def _status(self, extra: str = "") -> str:
        rows = self.query_one(EventList).rows if self.is_mounted else self.index
        exact = "" if getattr(rows, "exact_count", True) else "~"
        flt = f"  filter: {self.filter_text}" if self.filter_text else ""
        return f"{self.path}  {exact}{rows.row_count:,} rows{flt}{extra}"

    def set_status(self, extra: str = "") -> None:
        self.query_one(".explorer-status", Static).update(self._status(extra))

    def show_details(self, item: Any, row: int) -> None:
        details = self.query_one(".explorer-details", Static)
        if item is None:
            details.update("(no rows)")
            return
        where = f"cpu {item.cpu}  channel {item.channel}  row {row:,}"
        if isinstance(item, Event):
            fields = "  ".join(f"{k}={v!r}" for k, v in item.fields.items())
            details.update(f"{item.name}  ts {item.ts_ns} ns  {where}\n{fields or '(no fields)'}")
        else:
            details.update(f"LOST {item.lost} {item.unit}  ts {item.ts_ns} ns  {where}")
        self.query_one(Overview).show_cursor(item.ts_ns)
        self.set_status()

    # -- the overview strip -----------------------------------------------------------------------

    def action_zoom(self, factor: float) -> None:
        self.query_one(Overview).zoom_by(factor)

    def action_pan(self, direction: int) -> None:
        self.query_one(Overview).pan(direction)

    def action_pick(self, d: int) -> None:
        self.query_one(Overview).move_pick(d)

    def action_jump(self) -> None:
        """The list to the first row of the overview's picked bucket."""
        at = self.query_one(Overview).picked_ns()
        if at is None:
            return
        lst = self.query_one(EventList)
        lst.go(lst.rows.row_at_time(at))

    # -- input ------------------------------------------------------------------------------------

    def _ask(self, mode: str, placeholder: str, value: str = "") -> None:
        self._mode = mode
        inp = self.query_one(Input)
        inp.placeholder = placeholder
        inp.value = value
        inp.display = True
        inp.focus()

    def action_filter(self) -> None:
        self._ask("filter", "NAMES, where PREDICATE, or both (empty clears)", self.filter_text)

    def action_goto(self) -> None:
        self._ask("goto", "seconds from the trace's start, e.g. 1.25")

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()
        text = message.value.strip()
        mode = self._mode
        if mode == "filter":
            try:
                flt = parse_filter(text)
            except PredicateError as e:
                self.set_status(f"  error: {e}")
                return
            self._close_input()
            self.filter_text = text
            if not flt:
                self.query_one(EventList).set_rows(self.index)
                self.set_status()
            else:
                self.run_filter(flt)
        elif mode == "goto":
            try:
                seconds = float(text)
            except ValueError:
                self.set_status(f"  error: {text!r} is not a number of seconds")
                return
            self._close_input()
            lst = self.query_one(EventList)
            first = self.index.row_time(0) or 0
            lst.go(lst.rows.row_at_time(first + int(seconds * 1e9)))

    def _close_input(self) -> None:
        self.query_one(Input).display = False
        self.query_one(EventList).focus()

    def action_loss(self, backwards: int) -> None:
        lst = self.query_one(EventList)
        item = lst.current()
        ts = getattr(item, "ts_ns", 0)
        mark = self.index.loss_near(ts + (-1 if backwards else 1), backwards=bool(backwards))
        if mark is None:
            self.set_status("  no further loss")
            return
        if lst.rows is not self.index:
            lst.set_rows(self.index)
            self.filter_text = ""
        lst.go(self.index.row_of_loss(mark))

    def action_cancel(self) -> None:
        if self.query_one(Input).display:
            self._close_input()
            self.set_status()
            return
        self.workers.cancel_all()
        self.query_one(ProgressBar).display = False
        self.set_status("  cancelled")

    # -- scans in a worker ------------------------------------------------------------------------

    def _progress(self, p: Progress) -> None:
        bar = self.query_one(ProgressBar)
        bar.display = True
        bar.update(progress=p.fraction)

    @work(thread=True, exclusive=True, group="scan")
    def run_filter(self, flt: EventFilter) -> None:
        worker = get_current_worker()
        counts = None
        for step in self.index.filter_windows(flt):
            if worker.is_cancelled:
                return
            if isinstance(step, Progress):
                self.app.call_from_thread(self._progress, step)
            else:
                counts = step
        if counts is not None:
            self.app.call_from_thread(self._filtered, FilteredRows(self.index, flt, counts))

    def _filtered(self, rows: FilteredRows) -> None:
        self.query_one(ProgressBar).display = False
        self.query_one(Overview).recount()
        self.query_one(EventList).set_rows(rows)
        self.set_status()
        position_ns, _ = self._restore
        self._restore = (None, "")
        if position_ns is not None:
            self.go_to_position(position_ns)

    def action_statistics(self) -> None:
        self.run_statistics()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The call tree key takes footer room only for traces with function events.
        if action == "calls":
            return self._has_calls
        return True

    def action_calls(self) -> None:
        self.run_calls()

    @work(thread=True, exclusive=True, group="scan")
    def run_calls(self) -> None:
        worker = get_current_worker()
        for step in summarize(self.index):
            if worker.is_cancelled:
                return
            if isinstance(step, Progress):
                self.app.call_from_thread(self._progress, step)
            else:
                self.app.call_from_thread(self._show_calls, step)

    def _show_calls(self, roots: dict[int, CallNode]) -> None:
        self.query_one(ProgressBar).display = False
        self.query_one(".explorer-details", Static).update("\n".join(tree_lines(roots)))

    @work(thread=True, exclusive=True, group="scan")
    def run_statistics(self) -> None:
        worker = get_current_worker()
        for step in self.index.statistics():
            if worker.is_cancelled:
                return
            if isinstance(step, Progress):
                self.app.call_from_thread(self._progress, step)
            elif isinstance(step, Statistics):
                self.app.call_from_thread(self._show_statistics, step)

    def _show_statistics(self, st: Statistics) -> None:
        self.query_one(ProgressBar).display = False
        self.query_one(Overview).recount()
        lines = [f"{st.events:,} events over {st.duration_s:.3f} s"]
        for title, table in (("name", st.by_name), ("cpu", st.by_cpu), ("channel", st.by_channel)):
            lines.append(f"per {title}:")
            for key, n in sorted(table.items(), key=lambda kv: -kv[1]):
                lines.append(f"  {key!s:24} {n:>12,}  {st.rate(n):>12,.0f}/s")
        if st.lost_events or st.lost_packets:
            lines.append("losses per stream:")
            for key, n in sorted(st.lost_events.items()):
                lines.append(f"  {key:24} {n:>12,} events")
            for key, n in sorted(st.lost_packets.items()):
                lines.append(f"  {key:24} {n:>12,} packets")
        else:
            lines.append("no losses")
        self.query_one(".explorer-details", Static).update("\n".join(lines))


def tab_title(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1] or path


class ExplorerScreen(Screen[None]):
    """Explorers in tabs: the whole of ``tracetui open``, and the console's (``o``) screen.

    In the console it is installed once and pushed again whenever a trace is opened; ``q``
    ("back" in the footer) goes back to the console (the explorers stay open and are saved
    with layouts), ``w`` closes the active tab.
    """

    BINDINGS = [
        Binding("q", "back", "quit"),
        Binding("q", "back_to_console", "back"),
        Binding("w", "close_tab", "close tab", show=False),
    ]

    def __init__(
        self, traces: Sequence[tuple[str, TraceIndex]] = (), *, standalone: bool = True
    ) -> None:
        super().__init__()
        self.standalone = standalone
        self._next = 0
        self._pending = [ExplorerPane(path, index) for path, index in traces]

    def compose(self) -> ComposeResult:
        with TabbedContent(id="explorer-tabs"):
            for pane in self._pending:
                yield TabPane(tab_title(pane.path), pane, id=self._tab_id())
        self._pending = []
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # In the console q goes back to it (bound as "back"), standalone it quits.
        if action in ("back", "back_to_console"):
            return (action == "back") == self.standalone
        return True

    def _tab_id(self) -> str:
        self._next += 1
        return f"trace{self._next - 1}"

    @property
    def panes(self) -> list[ExplorerPane]:
        """The open explorers, in tab order (those not shown yet included)."""
        return [*self.query(ExplorerPane), *self._pending] if self.is_mounted else self._pending

    async def add_trace(
        self, path: str, index: TraceIndex, *, position_ns: int | None = None, filter_text: str = ""
    ) -> ExplorerPane:
        """Open INDEX in a new tab (made active), at POSITION_NS with FILTER_TEXT applied."""
        pane = ExplorerPane(path, index, position_ns=position_ns, filter_text=filter_text)
        if not self.is_mounted:
            self._pending.append(pane)
            return pane
        tab = TabPane(tab_title(path), pane, id=self._tab_id())
        tabs = self.query_one("#explorer-tabs", TabbedContent)
        await tabs.add_pane(tab)
        tabs.active = tab.id or ""
        return pane

    def action_back(self) -> None:
        self.app.exit()

    def action_back_to_console(self) -> None:
        self.app.pop_screen()

    async def action_close_tab(self) -> None:
        tabs = self.query_one("#explorer-tabs", TabbedContent)
        if tabs.active:
            await tabs.remove_pane(tabs.active)
        if not self.panes and not self.standalone:
            self.app.pop_screen()


class ExplorerApp(App[None]):
    """``tracetui open``: one tab per trace, no daemon needed."""

    def __init__(self, traces: list[tuple[str, TraceIndex]]) -> None:
        super().__init__()
        self.traces = traces

    def get_default_screen(self) -> Screen[Any]:
        return ExplorerScreen(self.traces)
