"""Regenerate screenshots/*.svg: the console's main screens drawn from fixtures.

    python scripts/screenshots.py [--out screenshots]

Writes main-screen.svg (the demo trace selected), channel-pane.svg (demo/flight with statistics
and its rate sparkline) and live-view.svg (a live view of demo/flight). Fixtures only: the output
is the same on every machine and at every run (timestamps in UTC).
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


async def shoot(name: str, make: Callable[[], TraceConsole], out: Path) -> Path:
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
