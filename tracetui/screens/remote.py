"""The console's remote sessions: a live view of a session an lttng-relayd serves.

``open_remote(screen)`` asks for a live URL (``net://HOST[:PORT]`` lists the relayd's sessions
to choose from; ``net://HOST[:PORT]/host/HOSTNAME/SESSION`` opens one) and opens a live view
tab named ``remote/HOST/SESSION`` fed by core/client/remote.py (read-only; the view's keys,
filters and search work as for a local channel; closing the tab ends the viewer).

Every relayd named so (there, with ``tracetui --relay net://HOST[:PORT]``, or by a layout's
remote view) joins the tree's "remote" node (widgets/remote_tree.py), listed again every
``POLL_S`` from a worker thread (at most ``LIST_TIMEOUT_S`` each, one listing of a relayd at a
time): the console never waits for a relayd.  Enter (or ``l``) on a session there opens its
live view.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from textual.widgets import TabPane

from tracetui.core.client.remote import list_sessions
from tracetui.core.wire.lttng_live import LiveError, SessionInfo, parse_live_url
from tracetui.screens.name_dialog import NameDialog
from tracetui.widgets.live_view import LiveViewPane
from tracetui.widgets.remote_tree import PREFIX, relay_address, session_url
from tracetui.widgets.remote_view import feed_remote, view_name

if TYPE_CHECKING:
    from tracetui.screens.main import MainScreen

__all__ = ["add_relay", "delete_remote", "open_remote", "open_remote_view", "open_tree_session"]

POLL_S = 2.0  # how often the tree's relayds are listed again
LIST_TIMEOUT_S = 1.5  # a relayd that does not answer a listing within this is "unreachable"


def add_relay(screen: MainScreen, text: str) -> str:
    """Show the relayd of live URL TEXT in the tree and keep listing it; its address.

    Raises LiveError (one sentence) for a bad URL."""
    address = relay_address(text)
    remote = screen.trace_tree.remote
    if remote.add(address):
        _list(screen, address)
    if remote.timer is None:
        remote.timer = screen.set_interval(POLL_S, lambda: _list_all(screen))
    return address


def _list_all(screen: MainScreen) -> None:
    for address in screen.trace_tree.remote.addresses:
        _list(screen, address)


def _list(screen: MainScreen, address: str) -> None:
    remote = screen.trace_tree.remote
    if address in remote.listing:
        return  # the previous listing has not answered yet
    remote.listing.add(address)

    async def listing() -> None:
        try:
            answer: list[SessionInfo] | str = await asyncio.to_thread(
                list_sessions, address, LIST_TIMEOUT_S
            )
        except LiveError as e:
            answer = str(e)
        finally:
            remote.listing.discard(address)
        remote.show(address, answer)

    screen.run_worker(listing(), group="relay-list")


def delete_remote(screen: MainScreen, data: str) -> bool:
    """``d`` on the tree's remote nodes: a relayd is forgotten (no longer listed, nor saved in
    layouts); the rest is read-only.  False when DATA is not a remote node's."""
    if not data.startswith(PREFIX):
        return False
    remote = screen.trace_tree.remote
    address = data.removeprefix(PREFIX)
    if address in remote.relays:
        remote.forget(address)
        screen.notify(f"relayd {address} is no longer listed.")
    else:
        screen.notify(
            "Remote sessions are read-only: d on a relayd's node stops listing it.",
            severity="warning",
        )
    return True


def open_tree_session(screen: MainScreen, data: str | None) -> bool:
    """Open the live view of the remote session whose tree node data is DATA; False when DATA
    is not a remote session's."""
    url = session_url(data)
    if url is None:
        return False
    try:
        open_remote_view(screen, url)
    except LiveError as e:
        screen.notify(str(e), severity="error")
    return True


def open_remote(screen: MainScreen) -> None:
    async def chosen(text: str | None) -> None:
        if not text:
            return
        try:
            url = parse_live_url(text)
            add_relay(screen, text)  # the tree lists it from now on
            if url.session is None:
                sessions = await asyncio.to_thread(list_sessions, url)
                if not sessions:
                    screen.notify(f"relayd at {url.address} serves no live session.")
                    return
                choices = [f"{url.address}/host/{s.hostname}/{s.name}" for s in sessions]
                screen.app.push_screen(
                    NameDialog(
                        "Remote session",
                        message="Choose a session.",
                        value=choices[0],
                        choices=choices,
                        ok="Open",
                    ),
                    chosen,
                )
                return
        except LiveError as e:
            screen.notify(str(e), severity="error")
            return
        open_remote_view(screen, str(url))

    screen.app.push_screen(
        NameDialog(
            "Remote live session",
            message="net://HOST[:PORT] lists an lttng-relayd's sessions; "
            "net://HOST[:PORT]/host/HOSTNAME/SESSION opens one.",
            placeholder="net://relayhost",
            ok="Open",
        ),
        chosen,
    )


def open_remote_view(screen: MainScreen, url: str, *, activate: bool = True) -> LiveViewPane:
    """A live view tab of the remote session at URL (net://HOST[:PORT]/host/HOSTNAME/SESSION).

    Raises LiveError (one sentence) for a URL that names no session."""
    from tracetui.screens.main import live_tab_id

    u = parse_live_url(url)
    if u.hostname is None or u.session is None:
        raise LiveError(f"{url} names no session (net://HOST[:PORT]/host/HOSTNAME/SESSION).")
    name = view_name(u.hostname, u.session)
    add_relay(screen, url)
    tab_id = live_tab_id(name)
    if screen.query(f"#{tab_id}-pane"):
        if activate:
            screen.tabs.active = tab_id
        return screen.query_one(f"#{tab_id}-pane", LiveViewPane)
    pane = LiveViewPane(name, history=screen.history, id=f"{tab_id}-pane")
    screen.tabs.add_pane(TabPane(name, pane, id=tab_id))
    screen.remote_views[name] = str(u)
    if activate:
        screen.tabs.active = tab_id
    # Registered as the live views' workers are, so closing the tab ends the viewer.
    screen._live_workers[name] = screen.run_worker(
        feed_remote(url, pane.view, screen.notify), group="live"
    )
    return pane
