"""The console tree's "remote" node against a real lttng-relayd (widgets/remote_tree.py,
screens/remote.py), driven with Textual's Pilot.

A tracetui daemon (host ``treehost``) streams a trace to a relayd of the test's own; the console,
started with that relayd and a refused address (``TraceConsole(relays=...)``, what ``tracetui
--relay`` does), lists relayd -> host -> session, shows the refused one as one line, opens the
session's live view with Enter (events arrive as in a local view), and drops the session from
the tree once `start 0` ended it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DaemonHandle, finish_daemon, start_daemon
from test_live_viewer import Relayd, emit, start_relayd, start_streaming, stop_streaming
from test_relay import _free_ports

pytestmark = pytest.mark.skipif(
    shutil.which("lttng-relayd") is None, reason="lttng-relayd is not installed"
)


@pytest.fixture(scope="module")
def relayd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relayd]:
    r = start_relayd(tmp_path_factory.mktemp("relayd") / "out")
    try:
        yield r
    finally:
        r.proc.terminate()
        r.proc.wait(5)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonHandle]:
    old = os.environ.get("TRACETUI_HOSTNAME")
    os.environ["TRACETUI_HOSTNAME"] = "treehost"
    try:
        h = start_daemon(tmp_path_factory.mktemp("treehost"))
    finally:
        if old is None:
            os.environ.pop("TRACETUI_HOSTNAME", None)
        else:
            os.environ["TRACETUI_HOSTNAME"] = old
    try:
        yield h
    finally:
        finish_daemon(h)


async def _until(pilot, cond, timeout: float = 8.0) -> bool:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            return False
        await pilot.pause(0.05)
    return True


async def test_remote_node_lists_hosts_and_sessions_and_opens_them(
    relayd: Relayd, host: DaemonHandle, tmp_path: Path
) -> None:
    from tracetui.app import TraceConsole
    from tracetui.core.client.state import NamespaceState
    from tracetui.widgets.live_view import LiveViewPane
    from tracetui.widgets.remote_tree import PREFIX, REMOTE

    (refused_port,) = _free_ports(1)
    refused = f"net://127.0.0.1:{refused_port}"
    start_streaming(host, "treed", relayd, tmp_path / "local-treed")
    url = f"{relayd.live_url}/host/treehost/treed"
    app = TraceConsole(state=NamespaceState(), relays=[relayd.live_url, refused])
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.main_screen
        tree = screen.trace_tree
        remote = tree.remote
        assert remote.node is not None and remote.node.data == REMOTE
        assert remote.addresses == [relayd.live_url, refused]
        assert await _until(pilot, lambda: remote.find(PREFIX + url) is not None), remote.answers
        relay_node = remote.relays[relayd.live_url]
        (host_node,) = relay_node.children
        assert str(host_node.label) == "treehost"
        (session,) = host_node.children
        assert str(session.label).startswith("treed  ") and "stream" in str(session.label)
        assert "1 session" in str(relay_node.label)
        # The refused relayd: one line, its address and why, nothing below it.
        assert await _until(pilot, lambda: isinstance(remote.answers.get(refused), str))
        bad = remote.relays[refused]
        assert not bad.children and "refused" in str(bad.label) and "\n" not in str(bad.label)
        assert str(bad.label).startswith(refused)

        # Enter on the session opens its live view, which fills as a local one does.
        tree.focus()
        assert tree.select_path(PREFIX + url)
        assert await _until(pilot, lambda: tree.cursor_node is session)
        await pilot.press("enter")
        assert await _until(pilot, lambda: bool(screen.query(LiveViewPane)))
        (pane,) = screen.query(LiveViewPane)
        assert pane.channel == "remote/treehost/treed"
        assert screen.remote_views[pane.channel] == url
        await asyncio.to_thread(emit, host, "treehost", 120)
        assert await _until(pilot, lambda: pane.view.event_count >= 120, timeout=15)
        assert pane.view.event_count == 120
        rows = [pane.view._plain(row) for row in pane.view._events]
        assert all(" relay_ev " in r and 'host="treehost"' in r for r in rows), rows[:2]

        # `start 0` ends the relay session: the next listings drop it from the tree.
        await asyncio.to_thread(stop_streaming, host, "treed")
        assert await _until(pilot, lambda: remote.find(PREFIX + url) is None, timeout=10)
        assert not relay_node.children and "0 sessions" in str(relay_node.label)
        screen.action_close_live()
        await pilot.pause(0.2)
        # d forgets a relayd (the refused one here); the last one takes the remote node along.
        tree.focus()
        assert tree.select_path(PREFIX + refused)
        assert await _until(pilot, lambda: tree.cursor_node is bad)
        await pilot.press("d")
        assert await _until(pilot, lambda: remote.addresses == [relayd.live_url])
        screen.trace_tree.remote.forget(relayd.live_url)
        assert remote.node is None and not remote.addresses


async def test_the_palettes_relayd_joins_the_tree(relayd: Relayd) -> None:
    """A relayd named in the "remote: Open live session" dialog stays listed in the tree."""
    from tracetui.app import TraceConsole
    from tracetui.core.client.state import NamespaceState
    from tracetui.screens.name_dialog import NameDialog

    app = TraceConsole(state=NamespaceState())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.main_screen
        assert screen.trace_tree.remote.node is None  # nothing remote until a relayd is named
        screen.action_open_remote()
        await pilot.pause()
        assert isinstance(app.screen, NameDialog)
        await pilot.click("#name")
        await pilot.press(*relayd.live_url, "enter")
        remote = screen.trace_tree.remote
        assert await _until(pilot, lambda: relayd.live_url in remote.answers)
        assert remote.addresses == [relayd.live_url]
        assert isinstance(remote.answers[relayd.live_url], list)
        if isinstance(app.screen, NameDialog):
            app.screen.dismiss(None)


def test_a_layout_keeps_the_trees_relayds() -> None:
    from tracetui.core.model.layout import Layout, LayoutError, dumps, loads

    saved = Layout(relays=("net://relay-a:5344", "net://[::1]:7000"))
    text = dumps(saved)
    assert "relays = [" in text and "net://relay-a:5344" in text
    assert loads(text) == saved
    with pytest.raises(LayoutError, match="not net://HOST"):
        loads(text.replace("net://relay-a:5344", "net://relay-a/host/h/s"))
