"""A live view of a real overloaded channel shows loss rows where the records were lost.

A real daemon, a discard channel far too small for a flooding traced process: the ring refuses
records, the packets' headers count them, and the console's live view, which reads each whole
packet with the same packet reader as trace files, shows a LOST row between the events."""

from __future__ import annotations

import asyncio
import json
import sys

from test_console import SIZE, connected, until

from tracetui.app import TraceConsole
from tracetui.screens.main import live_tab_id
from tracetui.widgets.live_view import LiveViewPane

FLOOD = """
import sys, time
from tracetui import probe
m = probe.marker("flood_ev", "i %d pad %s")
end = time.monotonic() + 10
while not m.enabled and time.monotonic() < end:
    time.sleep(0.01)
pad = "x" * 200
for i in range(int(sys.argv[1])):
    m(i, pad)
print("done", flush=True)
"""


async def test_live_view_of_an_overloaded_channel_shows_loss_rows(daemon) -> None:
    c = daemon.client
    c.mkdir("ov")
    c.write("ov/main/subbuf_size", "4K")
    c.write("ov/main/n_subbuf", "2")
    c.write("ov/main/global", "1")
    c.write("ov/main/allocate", "1")
    c.write("ov/start", "1")
    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await connected(pilot)
        screen.open_live("ov/main")
        await until(pilot, lambda: json.loads(c.read("recording"))["live_subscribers"] == 1)
        # The console keeps running while the program floods, as it would for a user.
        flood = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            FLOOD,
            "200000",
            env=daemon.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _out, err = await asyncio.wait_for(flood.communicate(), 60)
        assert flood.returncode == 0, err.decode()
        pane = screen.query_one(f"#{live_tab_id('ov/main')}-pane", LiveViewPane)
        view = pane.view

        def loss_rows() -> list[int]:
            return [r[2][0] for r in view._view if view._kinds[r[1]].format is None]

        await until(pilot, lambda: loss_rows() and view.received > 0, timeout=15)
        lost_on_screen = sum(loss_rows())
        stats = c.read("ov/main/stats").splitlines()[-1]
        discarded = int(stats.split("discarded=")[1].split()[0])
        assert 0 < lost_on_screen <= discarded
        # Rows of events stand on both sides of a loss row: the loss shows where it happened.
        kinds = [view._kinds[r[1]].format is None for r in view._view]
        first_loss = kinds.index(True)
        assert not all(kinds[first_loss:])
