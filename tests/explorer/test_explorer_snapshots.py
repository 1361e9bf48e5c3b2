"""SVG snapshots of the explorer (tracetui open) on the fixture trace, at 80x24.

The same screens as scripts/screenshots.py writes to screenshots/explorer*.svg.  Regenerate
after an intended change with ``pytest tests/explorer/test_explorer_snapshots.py
--snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tracetui.core.trace.index import TraceIndex
from tracetui.core.trace.traces import open_trace
from tracetui.screens.explorer import ExplorerApp, ExplorerPane
from tracetui.widgets.explorer_fixtures import write_demo_trace

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def fixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(tmp_path)  # the explorer shows the path it was given
    write_demo_trace("demo_trace")
    yield
    monkeypatch.undo()
    time.tzset()


def explorer() -> ExplorerApp:
    return ExplorerApp([("demo_trace", TraceIndex(open_trace(os.path.abspath("demo_trace"))))])


def pressing(*keys: str):  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.pause()
        pane = pilot.app.query_one(ExplorerPane)
        for key in keys:
            if key.startswith("="):
                pane.query_one("Input").value = key[1:]  # type: ignore[attr-defined]
            else:
                await pilot.press(key)
            for _ in range(200):
                await pilot.pause(0.02)
                if not pane.workers:
                    break
        await pilot.pause(0.1)

    return run_before


def test_explorer_list_and_details(snap_compare) -> None:
    assert snap_compare(explorer(), terminal_size=SIZE, run_before=pressing("down", "down"))


def test_explorer_filter(snap_compare) -> None:
    keys = ("slash", "=sched_switch where prev_pid < 110", "enter", "down")
    assert snap_compare(explorer(), terminal_size=SIZE, run_before=pressing(*keys))


def test_explorer_bad_filter_is_one_line(snap_compare) -> None:
    keys = ("slash", "=where pid == ", "enter")
    assert snap_compare(explorer(), terminal_size=SIZE, run_before=pressing(*keys))


def test_explorer_statistics(snap_compare) -> None:
    assert snap_compare(explorer(), terminal_size=SIZE, run_before=pressing("s"))


def test_explorer_overview_zoomed_and_picked(snap_compare) -> None:
    # Zoomed x4 around the second third (the CPU 1 loss), a bucket picked, then jumped to.
    keys = ("g", "=0.0195", "enter", "plus", "plus", *["right_square_bracket"] * 6)
    assert snap_compare(explorer(), terminal_size=SIZE, run_before=pressing(*keys))


def test_explorer_overview_jump(snap_compare) -> None:
    keys = ("plus", *["right_square_bracket"] * 20, "enter")
    assert snap_compare(explorer(), terminal_size=SIZE, run_before=pressing(*keys))


def live_view_80():  # type: ignore[no-untyped-def]
    from tracetui.app import TraceConsole
    from tracetui.widgets.fixtures import demo_events, demo_state

    return TraceConsole(
        state=demo_state(), select="demo/flight", live={"demo/flight": demo_events(3_000)}
    )


def test_live_view_at_80_columns_wraps_fields(snap_compare) -> None:
    async def settle(pilot: Pilot[None]) -> None:
        await pilot.pause()
        await pilot.pause(0.2)

    assert snap_compare(live_view_80(), terminal_size=SIZE, run_before=settle)
