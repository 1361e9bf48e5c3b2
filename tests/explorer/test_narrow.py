"""80x24: the live view and the explorer list wrap rows onto continuation lines
(tracetui/widgets/wrap.py) so that every field stays visible instead of being cut off."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracetui.app import TraceConsole
from tracetui.core.trace.index import TraceIndex
from tracetui.core.trace.packets import Event
from tracetui.core.trace.traces import open_trace
from tracetui.screens.explorer import EventList, ExplorerApp
from tracetui.widgets.explorer_fixtures import write_demo_trace
from tracetui.widgets.fixtures import demo_events, demo_state
from tracetui.widgets.live_view import LiveView
from tracetui.widgets.wrap import INDENT, line_starts, lines_per_row

SIZE = (80, 24)


def joined(lines: list[str], text: str) -> str:
    """A wrapped row's TEXT as its LINES show it: the first line, then each continuation
    without its indent, each taken up to where the next line starts in TEXT."""
    width = len(lines[0])
    starts = [*line_starts(text, width, len(lines)), len(text)]
    out = []
    for k, line in enumerate(lines[: len(starts) - 1]):
        body = line if k == 0 else line[INDENT:]
        assert body[starts[k + 1] - starts[k] :].strip() == ""  # past the cut: padding only
        out.append(body[: starts[k + 1] - starts[k]])
    return "".join(out)


def test_lines_per_row() -> None:
    assert lines_per_row(80, 80) == 1
    assert lines_per_row(81, 80) == 2
    assert lines_per_row(80 + 76, 80) == 2 and lines_per_row(80 + 77, 80) == 3
    assert lines_per_row(10_000, 80) == 4  # at most MOST lines


def test_lines_break_after_a_field_not_inside_one() -> None:
    row = "12.000001 [0] sched_switch " + " ".join(f"field{i}=value{i}" for i in range(8))
    # 138 cells: 4 lines when cut where full; a row with room to spare (the longest row sets
    # the lines every row gets) breaks after a field.
    assert lines_per_row(len(row), 40) == 4
    starts = line_starts(row, 40, 5)
    assert len(starts) == 5
    for a, b in zip(starts, starts[1:]):
        assert row[b - 1] == " " and b - a <= (40 if a == 0 else 40 - INDENT)
    # No space in a line's second half: cut where the line is full.
    assert line_starts("x" * 100, 40, 3) == [0, 40, 76]
    # Words: every line ends after one.
    assert line_starts(" ".join(["abcdefghij" * 3] * 4), 40, 4) == [0, 31, 62, 93]
    # A line breaks at a space only while the rest of the row still fits its lines.
    assert line_starts("a" * 35 + " " + "b" * 100, 40, 4) == [0, 36, 72, 108]
    assert line_starts("a" * 35 + " " + "b" * 111, 40, 4) == [0, 40, 76, 112]
    # Not ASCII: cells and characters may differ, so cut where full.
    assert line_starts("é " * 50, 40, 3) == [0, 40, 76]


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_trace(tmp_path_factory.mktemp("narrow") / "demo")


async def test_explorer_list_shows_every_field_at_80_columns(trace: Path) -> None:
    async with ExplorerApp([(str(trace), TraceIndex(open_trace(trace)))]).run_test(
        size=SIZE
    ) as pilot:
        await pilot.pause()
        lst = pilot.app.query_one(EventList)
        for _ in range(6):
            await pilot.press("down")
        await pilot.pause()
        lpr = lst._lpr
        assert lpr >= 2
        checked = 0
        for first in range(0, lst.scrollable_content_region.height - lpr + 1, lpr):
            row = (lst.scroll_offset.y + first) // lpr
            item = lst.rows.item(row)
            line = lst._line(item, lst.scrollable_content_region.width)
            text = joined([lst.render_line(first + j).text for j in range(lpr)], line)
            assert text == line
            if isinstance(item, Event):
                for k in item.fields:
                    assert f"{k}=" in text
                checked += 1
        assert checked >= 3


async def test_live_view_shows_every_field_at_80_columns() -> None:
    app = TraceConsole(state=demo_state(), select="demo/flight",
                       live={"demo/flight": demo_events(500)})  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.pause(0.3)
        view = app.main_screen.query_one(LiveView)
        lpr = view._lpr
        assert lpr >= 2 and view.size.width < 60  # beside the tree
        height = view.scrollable_content_region.height
        start = view.scroll_offset.y
        first = (-start) % lpr  # the first line of a whole row on screen
        rows = 0
        for y in range(first, height - lpr + 1, lpr):
            index = (start + y) // lpr
            row = view._view[index]
            kind = view._kinds[row[1]]
            full = view._strip(index).text
            text = joined([view.render_line(y + j).text for j in range(lpr)], full)
            assert text == full
            assert view._fields_text(kind, row[2]) in text
            rows += 1
        assert rows >= 3
