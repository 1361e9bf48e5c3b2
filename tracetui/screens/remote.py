"""The console's remote sessions: a live view of a session an lttng-relayd serves.

``open_remote(screen)`` asks for a live URL (``net://HOST[:PORT]`` lists the relayd's sessions
to choose from; ``net://HOST[:PORT]/host/HOSTNAME/SESSION`` opens one) and opens a live view
tab named ``remote/HOST/SESSION`` fed by core/client/remote.py (read-only; the view's keys,
filters and search work as for a local channel; closing the tab ends the viewer).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from textual.widgets import TabPane

from tracetui.core.client.remote import list_sessions
from tracetui.core.wire.lttng_live import LiveError, parse_live_url
from tracetui.screens.name_dialog import NameDialog
from tracetui.widgets.live_view import LiveViewPane
from tracetui.widgets.remote_view import feed_remote, view_name

if TYPE_CHECKING:
    from tracetui.screens.main import MainScreen

__all__ = ["open_remote", "open_remote_view"]


def open_remote(screen: MainScreen) -> None:
    async def chosen(text: str | None) -> None:
        if not text:
            return
        try:
            url = parse_live_url(text)
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
