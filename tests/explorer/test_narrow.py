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
from tracetui.widgets.wrap import INDENT, lines_per_row

SIZE = (80, 24)


def joined(lines: list[str]) -> str:
    """A wrapped row's text: the first line, then each continuation without its indent."""
    return lines[0] + "".join(line[INDENT:] for line in lines[1:])


def test_lines_per_row() -> None:
    assert lines_per_row(80, 80) == 1
    assert lines_per_row(81, 80) == 2
    assert lines_per_row(80 + 76, 80) == 2 and lines_per_row(80 + 77, 80) == 3
    assert lines_per_row(10_000, 80) == 4  # at most MOST lines


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
            text = joined([lst.render_line(first + j).text for j in range(lpr)]).rstrip()
            assert text == lst._line(item, lst.scrollable_content_region.width)
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
            text = joined([view.render_line(y + j).text for j in range(lpr)])
            assert view._fields_text(kind, row[2]) in text
            rows += 1
        assert rows >= 3
