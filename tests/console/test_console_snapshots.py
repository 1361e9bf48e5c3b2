"""SVG snapshots of the console drawn from fixtures (fixed state, events and timestamps).

Regenerate after an intended change of the drawing with ``pytest tests/test_console_snapshots.py
--snapshot-update`` and look at the SVGs (``scripts/screenshots.py`` writes the same screens to
``screenshots/``).
"""

from __future__ import annotations

import time

import pytest
from textual.pilot import Pilot

from tracetui.app import TraceConsole
from tracetui.widgets.fixtures import demo_events, demo_rates, demo_state, demo_stats

SIZE = (140, 40)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch):
    # Absolute timestamps are local time: pin the zone so the snapshots do not depend on it.
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def settle(pilot: Pilot[int]) -> None:
    await pilot.pause()
    await pilot.pause(0.1)


def main_screen() -> TraceConsole:
    return TraceConsole(state=demo_state(), select="demo")


def channel_pane() -> TraceConsole:
    return TraceConsole(
        state=demo_state(), select="demo/flight", rates=demo_rates(), stats=demo_stats()
    )


def live_view() -> TraceConsole:
    return TraceConsole(
        state=demo_state(), select="demo/flight", live={"demo/flight": demo_events(3_000)}
    )


def test_main_screen(snap_compare) -> None:
    assert snap_compare(main_screen(), terminal_size=SIZE, run_before=settle)


def test_channel_pane(snap_compare) -> None:
    assert snap_compare(channel_pane(), terminal_size=SIZE, run_before=settle)


def test_live_view(snap_compare) -> None:
    assert snap_compare(live_view(), terminal_size=SIZE, run_before=settle)


def test_live_view_paused_filtered_absolute(snap_compare) -> None:
    async def run_before(pilot: Pilot[int]) -> None:
        await settle(pilot)
        await pilot.press("space", "t", "u")
        app = pilot.app
        assert isinstance(app, TraceConsole)
        pane = app.main_screen.query_one("LiveViewPane")
        pane.view.set_name_filter("proc_* sched_wakeup")  # type: ignore[attr-defined]
        await settle(pilot)

    assert snap_compare(live_view(), terminal_size=SIZE, run_before=run_before)
