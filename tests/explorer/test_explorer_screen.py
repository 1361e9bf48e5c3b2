"""The explorer screen (tracetui open) driven headlessly with Pilot on a fixture trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracetui.core.trace.index import FilteredRows, TraceIndex
from tracetui.core.trace.packets import Event, Loss
from tracetui.core.trace.traces import open_trace
from tracetui.screens.explorer import EventList, ExplorerApp, ExplorerPane
from tracetui.widgets.explorer_fixtures import write_demo_trace


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_trace(tmp_path_factory.mktemp("explore") / "demo")


def app_for(trace: Path) -> ExplorerApp:
    return ExplorerApp([(str(trace), TraceIndex(open_trace(trace)))])


async def wait_scan(pilot, pane: ExplorerPane) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):
        await pilot.pause(0.02)
        if not pane.workers:
            break
    await pilot.pause()


async def test_list_details_and_filter(trace: Path) -> None:
    expected = [i for i in open_trace(trace)]
    async with app_for(trace).run_test(size=(80, 24)) as pilot:
        pane = pilot.app.query_one(ExplorerPane)
        lst = pilot.app.query_one(EventList)
        assert lst.current() == expected[0]
        await pilot.press("down", "down")
        assert lst.cursor == 2 and lst.current() == expected[2]
        details = str(pane.query_one(".explorer-details").render())
        first = expected[2]
        assert first.name in details
        if isinstance(first, Event):
            for k in first.fields:
                assert f"{k}=" in details  # every field, even at 80 columns

        # A bad predicate: one line, nothing applied.
        await pilot.press("slash")
        pane.query_one("Input").value = "sched_switch where prev_pid =="
        await pilot.press("enter")
        assert "error: column" in str(pane.query_one(".explorer-status").render())
        assert lst.rows is pane.index

        pane.query_one("Input").value = "sched_switch where prev_pid < 110"
        await pilot.press("enter")
        await wait_scan(pilot, pane)
        assert isinstance(lst.rows, FilteredRows)
        want = [
            e for e in expected
            if isinstance(e, Event) and e.name == "sched_switch" and e.fields["prev_pid"] < 110
        ]
        # Losses stay visible in a filtered view: a filter never hides where events were lost.
        losses = [i for i in expected if isinstance(i, Loss)]
        assert lst.rows.row_count == len(want) + len(losses)
        got = [it for _, it in lst.rows.rows(0, lst.rows.row_count)]
        assert [i for i in got if isinstance(i, Event)] == want
        assert len([i for i in got if isinstance(i, Loss)]) == len(losses)

        # Statistics count every event.
        await pilot.press("s")
        await wait_scan(pilot, pane)
        text = str(pane.query_one(".explorer-details").render())
        n = sum(1 for e in expected if isinstance(e, Event))
        assert f"{n:,} events" in text


async def test_loss_navigation_and_goto(trace: Path) -> None:
    expected = [i for i in open_trace(trace)]
    losses = [i for i in expected if isinstance(i, Loss)]
    assert losses, "the fixture has losses"
    async with app_for(trace).run_test(size=(80, 24)) as pilot:
        lst = pilot.app.query_one(EventList)
        await pilot.press("l")
        assert isinstance(lst.current(), Loss)
        pane = pilot.app.query_one(ExplorerPane)
        await pilot.press("g")
        pane.query_one("Input").value = "nonsense"
        await pilot.press("enter")
        assert "not a number" in str(pane.query_one(".explorer-status").render())
        pane.query_one("Input").value = "0"
        await pilot.press("enter")
        assert lst.cursor == 0


def test_open_rejects_a_non_trace_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "tracetui", "open", str(tmp_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "tracetui open" in r.stderr
