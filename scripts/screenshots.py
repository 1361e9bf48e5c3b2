"""Regenerate screenshots/*.svg: the console's main screens drawn from fixtures.

    python scripts/screenshots.py [--out screenshots]

Writes main-screen.svg (the demo trace selected), channel-pane.svg (demo/flight with statistics
and its rate sparkline) and live-view.svg (a live view of demo/flight), and the explorer's
(`tracetui open`) on a fixture trace at 80x24: explorer.svg (list and details),
explorer-filter.svg (a field predicate applied), explorer-statistics.svg, explorer-overview.svg
(the overview strip zoomed x4 on a loss, a bucket picked), and live-view-80.svg (a live view at
80x24, its rows wrapped). Fixtures only: the
output is the same on every machine and at every run (timestamps in UTC).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tracetui.app import TraceConsole
from tracetui.widgets.fixtures import demo_events, demo_rates, demo_state, demo_stats

SIZE = (140, 40)

SCREENS: dict[str, Callable[[], TraceConsole]] = {
    "main-screen": lambda: TraceConsole(state=demo_state(), select="demo"),
    "channel-pane": lambda: TraceConsole(
        state=demo_state(), select="demo/flight", rates=demo_rates(), stats=demo_stats()
    ),
    "live-view": lambda: TraceConsole(
        state=demo_state(), select="demo/flight", live={"demo/flight": demo_events(3_000)}
    ),
}


async def shoot(
    name: str, make: Callable[[], TraceConsole], out: Path, size: tuple[int, int] = SIZE
) -> Path:
    app = make()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.pause(0.1)
        path = out / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
    return path


# The explorer on a fixture trace: the keys pressed (and text typed into its input) per screen.
EXPLORER: dict[str, list[str]] = {
    "explorer": ["down", "down", "down"],
    "explorer-filter": [
        "slash",
        '=sched_switch where prev_pid < 110 and next_comm =~ "^p"',
        "enter",
        "down",
    ],
    "explorer-statistics": ["s"],
    "explorer-overview": ["g", "=0.0195", "enter", "plus", "plus", *["right_square_bracket"] * 6],
}

# 80x24: rows wider than the view wrap onto continuation lines (tracetui/widgets/wrap.py).
NARROW: dict[str, Callable[[], TraceConsole]] = {
    "live-view-80": lambda: TraceConsole(
        state=demo_state(), select="demo/flight", live={"demo/flight": demo_events(3_000)}
    ),
}


async def shoot_explorer(name: str, keys: list[str], out: Path, trace: Path) -> Path:
    from tracetui.core.trace.index import TraceIndex
    from tracetui.core.trace.traces import open_trace
    from tracetui.screens.explorer import ExplorerApp, ExplorerPane

    app = ExplorerApp([(str(trace), TraceIndex(open_trace(trace)))])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        pane = app.query_one(ExplorerPane)
        for key in keys:
            if key.startswith("="):
                pane.query_one("Input").value = key[1:]
            else:
                await pilot.press(key)
            for _ in range(200):
                await pilot.pause(0.02)
                if not pane.workers:
                    break
        await pilot.pause(0.1)
        path = out / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="screenshots", help="directory (default screenshots)")
    args = parser.parse_args(argv)
    os.environ["TZ"] = "UTC"
    time.tzset()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, make in SCREENS.items():
        print(asyncio.run(shoot(name, make, out)))
    for name, make in NARROW.items():
        print(asyncio.run(shoot(name, make, out, (80, 24))))
    import tempfile

    from tracetui.widgets.explorer_fixtures import write_demo_trace

    out = out.resolve()
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)  # the explorer shows the path it was given: the same on every run
        try:
            write_demo_trace("demo_trace")
            for name, keys in EXPLORER.items():
                print(asyncio.run(shoot_explorer(name, keys, out, Path("demo_trace"))))
        finally:
            os.chdir(here)
    return 0


if __name__ == "__main__":
    sys.exit(main())
