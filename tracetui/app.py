"""The tracetui console: the Textual application, and ``main`` (``tracetui`` with no verb).

This module only wires things together: it finds or starts the daemon (and the demo workload),
connects the async client inside the app's event loop, hands it to the main screen, restores a
layout if asked, and adds the console's commands to the command palette. Drawing and daemon
actions live in :mod:`tracetui.screens.main` and the widgets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App, SystemCommand
from textual.screen import Screen

from tracetui.core.errors import TraceError
from tracetui.core.model.layout import DEFAULT_HISTORY
from tracetui.screens.main import MainScreen

if TYPE_CHECKING:
    from tracetui.core.client import AsyncClient
    from tracetui.core.client.state import ChannelStats, NamespaceState


class TraceConsole(App[int]):
    """The console. With ``runtime_dir`` it connects to that daemon; with ``state`` it draws
    fixtures (no daemon): snapshot tests, screenshots and benchmarks use that."""

    # Absolute, so subclasses defined elsewhere (tests, benchmarks) find the stylesheet.
    CSS_PATH = str(Path(__file__).with_name("tracetui.tcss"))
    TITLE = "tracetui"
    SUB_TITLE = "connecting…"

    def __init__(
        self,
        *,
        runtime_dir: str | os.PathLike[str] | None = None,
        state: NamespaceState | None = None,
        layout: str | None = None,
        demo: bool = False,
        history: int = DEFAULT_HISTORY,
        select: str | None = None,
        live: dict[str, list[Any]] | None = None,
        rates: list[float] | None = None,
        stats: ChannelStats | None = None,
        relays: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.runtime_dir = runtime_dir
        self.offline = state is not None
        self.initial_state = state
        self.layout_arg = layout
        self.demo = demo
        self.history = history
        self.select = select
        self.live_fixture = live or {}
        self.rates_fixture = rates
        self.stats_fixture = stats
        self.client: AsyncClient | None = None
        self.main_screen = MainScreen(state=state, history=history, relays=relays)

    def on_mount(self) -> None:
        self.push_screen(self.main_screen)
        if self.offline:
            self.sub_title = "fixture"
            self.call_after_refresh(self._show_fixture)
        else:
            self.run_worker(self._connect(), name="connect", exclusive=True)

    def _show_fixture(self) -> None:
        """Offline: select a node, fill live views from fixture events."""
        screen = self.main_screen
        if not screen.panes_ready:
            self.call_after_refresh(self._show_fixture)
            return
        screen.show_state(screen.state)
        if self.select:
            screen.trace_tree.select_path(self.select)
            screen._show_selected()
        if self.rates_fixture is not None:
            screen.channel_pane.set_rates(self.rates_fixture)
        if self.stats_fixture is not None and self.select:
            screen.show_stats(
                self.select,
                self.stats_fixture,
                rate=self.rates_fixture[-1] if self.rates_fixture else None,
            )
        for path, events in self.live_fixture.items():
            pane = screen.open_live(path)
            pane.view.append_batch(events)
            pane.view.drain()

    async def _connect(self) -> None:
        from tracetui.core.client import AsyncClient, rendezvous

        rd = rendezvous.runtime_dir(self.runtime_dir)
        try:
            self.client = await AsyncClient.connect(rd)
        except TraceError as e:
            self.sub_title = "not connected"
            self.notify(str(e), title="No daemon", severity="error", timeout=30)
            return
        self.sub_title = f"daemon pid {self.client.daemon_pid}"
        screen = self.main_screen
        screen.set_client(self.client)
        if self.demo:
            from tracetui.demo import create_demo_trace

            try:
                if await create_demo_trace(self.client):
                    self.notify("Demo trace started: its channels fill as the workload runs.")
            except TraceError as e:
                self.notify(f"Demo trace not created: {e}", severity="error", timeout=10)
        for _ in range(5):
            # A read can fail while the daemon is busy; the screen retries on its own later,
            # but the selection and layout below need the state now.
            if await screen.refresh_state():
                break
            await asyncio.sleep(0.1)
        if self.layout_arg:
            await screen.load_layout(self.layout_arg)
        elif self.demo:
            screen.trace_tree.select_path("demo/flight")
            screen.open_live("demo/flight")
        elif self.select:
            screen.trace_tree.select_path(self.select)

    async def on_unmount(self) -> None:
        if self.client is not None:
            await self.client.close()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        if isinstance(screen, MainScreen):
            for title, help_text, callback in screen.palette_commands():
                yield SystemCommand(title, help_text, callback)
        yield from super().get_system_commands(screen)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tracetui",
        description="Open the tracetui console (connects to your daemon, or starts one).",
    )
    p.add_argument("--runtime-dir", help="the daemon's runtime directory (TRACETUI_RUNTIME_DIR)")
    p.add_argument(
        "--keep-daemon",
        action="store_true",
        help="leave a daemon this console started running after it exits",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="also start a demo workload and a demo trace recording it",
    )
    p.add_argument("--layout", metavar="NAME|PATH", help="restore a saved session layout")
    p.add_argument(
        "--relay",
        action="append",
        default=[],
        metavar="net://HOST[:PORT]",
        help="list this lttng-relayd's live sessions in the tree (repeatable)",
    )
    p.add_argument(
        "--history",
        type=int,
        default=DEFAULT_HISTORY,
        help=f"events kept per live view (default {DEFAULT_HISTORY:,})",
    )
    return p


def main(args: Sequence[str] | None = None) -> int:
    """Run the console; the exit status (0, or 1 with one sentence on stderr)."""
    from tracetui.core import layout as layouts
    from tracetui.core.client import Client, rendezvous, spawn

    opts = _parser().parse_args(list(args) if args is not None else None)
    if not layouts.MIN_HISTORY <= opts.history <= layouts.MAX_HISTORY:
        print(
            f"tracetui: --history must be between {layouts.MIN_HISTORY} and {layouts.MAX_HISTORY}.",
            file=sys.stderr,
        )
        return 2
    for url in opts.relay:
        from tracetui.core.wire.lttng_live import LiveError, parse_live_url

        try:
            parse_live_url(url)
        except LiveError as e:
            print(f"tracetui: --relay: {e}", file=sys.stderr)
            return 1
    if opts.layout:
        # Validate the whole file before anything starts: a bad layout changes nothing.
        try:
            layouts.load(layouts.resolve(opts.layout))
        except layouts.LayoutError as e:
            print(f"tracetui: {e}", file=sys.stderr)
            return 1
    rd = rendezvous.runtime_dir(opts.runtime_dir)
    daemon: subprocess.Popen[bytes] | None = None
    workload: subprocess.Popen[bytes] | None = None
    try:
        try:
            Client(rd).close()
        except TraceError:
            # Nobody answers: start a daemon of our own (stopped on exit unless --keep-daemon).
            daemon = spawn.spawn_daemon(rd, detach=opts.keep_daemon)
        if opts.demo:
            env = dict(os.environ, TRACETUI_RUNTIME_DIR=str(rd))
            workload = subprocess.Popen(
                rendezvous.python_command("-m", "tracetui.demo"),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(Path(rd) / "demo.log", "ab"),  # noqa: SIM115 - owned by the child
            )
        app = TraceConsole(
            runtime_dir=rd,
            layout=opts.layout,
            demo=opts.demo,
            history=opts.history,
            relays=opts.relay,
        )
        app.run()
        return app.return_code or 0
    except TraceError as e:
        print(f"tracetui: {e}", file=sys.stderr)
        return 1
    finally:
        if workload is not None:
            workload.terminate()
            try:
                workload.wait(5)
            except subprocess.TimeoutExpired:
                workload.kill()
                workload.wait()
        if daemon is not None and not opts.keep_daemon:
            spawn.stop_daemon(daemon)


if __name__ == "__main__":
    sys.exit(main())
