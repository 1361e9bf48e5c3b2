"""The main screen: the trace tree on the left, the selected node's pane or live views on the right.

It composes the widgets and routes: keys and palette entries (one table, screens/actions.py) to
its ``action_*`` methods, pane requests and dialog results to the controller
(screens/controller.py), which holds the client, the polling and every daemon call. What the
controller learns comes back through :meth:`show_state` and :meth:`show_stats`.

Without a client (``client=None`` and a fixed ``state``) the screen draws fixtures: snapshot
tests and screenshots use that.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.await_complete import AwaitComplete
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.lazy import Lazy
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header, Static, TabbedContent, TabPane
from textual.worker import Worker

from tracetui.core.client.state import (
    ChannelStats,
    NamespaceState,
)
from tracetui.core.errors import TraceError
from tracetui.core.model.layout import DEFAULT_HISTORY
from tracetui.screens.actions import BINDINGS, PALETTE
from tracetui.screens.controller import REFRESH_S, STATS_S, TREE_STATS_S, Controller, sentence
from tracetui.widgets.channel_pane import ChannelPane
from tracetui.widgets.markers_pane import MarkersPane
from tracetui.widgets.remote_tree import PREFIX as REMOTE_PREFIX
from tracetui.widgets.remote_tree import session_url
from tracetui.widgets.requests import PaneRequest
from tracetui.widgets.trace_pane import TracePane
from tracetui.widgets.trace_tree import MARKERS, TraceTree

if TYPE_CHECKING:
    from tracetui.core import layout as layouts
    from tracetui.core.client import AsyncClient
    from tracetui.core.trace.index import TraceIndex
    from tracetui.screens.explorer import ExplorerPane, ExplorerScreen
    from tracetui.widgets.live_view import LiveView, LiveViewPane

DETAILS = "details"


def _live_pane_class() -> type[LiveViewPane]:
    """LiveViewPane, imported when a live view is first needed: the live view's module (its
    client, packet reader and call tree) would otherwise cost the console's first frame."""
    from tracetui.widgets.live_view import LiveViewPane

    return LiveViewPane


def live_tab_id(path: str) -> str:
    """A widget id for the live view of channel PATH ("t/c" -> "live--t--c")."""
    return "live--" + path.replace("/", "--").replace(".", "_")


class MainScreen(Screen[None]):
    """Tree + panes + live views; every action on the daemon goes through here."""

    BINDINGS: ClassVar[list[BindingType]] = BINDINGS

    def __init__(
        self,
        client: AsyncClient | None = None,
        *,
        state: NamespaceState | None = None,
        history: int = DEFAULT_HISTORY,
        relays: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.state = state or NamespaceState()
        self.relays = tuple(relays)  # lttng-relayds the tree lists from the start (--relay)
        self.history = history
        self.controller = Controller(self, client)
        self._live_workers: dict[str, Worker[None]] = {}
        self._adding: list[AwaitComplete] = []  # live view tabs being mounted
        self.remote_views: dict[str, str] = {}  # view name "remote/HOST/SESSION" -> live URL
        self.trace_pane = TracePane(id="trace-pane")
        self.channel_pane = ChannelPane(id="channel-pane")
        self.markers_pane = MarkersPane(id="markers-pane")
        for pane in (self.trace_pane, self.channel_pane, self.markers_pane):
            pane.display = False  # the switcher shows one; it hid only those there at its mount
        self._explorer: ExplorerScreen | None = None  # traces opened with o

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            yield TraceTree(id="tree")
            with (
                TabbedContent(id="right"),
                TabPane("details", id=DETAILS),
                ContentSwitcher(id="panes", initial="none"),
            ):
                yield Static(
                    "Select a trace, a channel or the markers in the tree, "
                    "or press n to create a trace.",
                    id="none",
                    classes="pane hint",
                )
                # Hidden until something is selected: composed just after the first frame, so
                # the console appears sooner (their 40-odd widgets cost more than the rest).
                yield Lazy(self.trace_pane)
                yield Lazy(self.channel_pane)
                yield Lazy(self.markers_pane)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.trace_tree.show_state(self.state)
        self.trace_tree.focus()
        if self.client is not None:
            self._start_polling()
        if self.relays:
            from tracetui.screens.remote import add_relay

            for url in self.relays:
                add_relay(self, url)

    @property
    def trace_tree(self) -> TraceTree:
        return self.query_one(TraceTree)

    @property
    def tabs(self) -> TabbedContent:
        return self.query_one("#right", TabbedContent)

    # ------------------------------------------------------------------ state

    @property
    def client(self) -> AsyncClient | None:
        return self.controller.client

    @property
    def selected_path(self) -> str | None:
        return self.trace_tree.selected_path

    def set_client(self, client: AsyncClient) -> None:
        """Connect (after the app reached the daemon): start watching and refreshing."""
        self.controller.client = client
        self.controller.dirty = True
        self._start_polling()

    def _start_polling(self) -> None:
        c = self.controller
        self.set_interval(REFRESH_S, c.refresh_if_dirty)
        self.set_interval(STATS_S, c.poll_selected_stats)
        self.set_interval(TREE_STATS_S, c.poll_tree_stats)
        self.run_worker(c.watch_changes(), group="changes", exclusive=True)

    async def refresh_state(self) -> bool:
        """Read the namespace again and show it; False if the read failed (retried later)."""
        return await self.controller.refresh_state()

    def set_connection(self, text: str) -> None:
        self.app.sub_title = text

    def show_tree(self, state: NamespaceState) -> None:
        """Show STATE in the tree only (statistics totals: the panes stay as they are)."""
        self.state = state
        self.trace_tree.show_state(state)

    def show_state(self, state: NamespaceState) -> None:
        self.show_tree(state)
        self._show_selected()
        if self.client is not None:
            # A channel removed elsewhere (the CLI): its view would go on "following" nothing.
            gone = [
                p
                for p in self._live_workers
                if p not in self.remote_views and state.channel(p) is None
            ]
            for path in gone:
                self.close_live(path)
                self.notify(f"{path} was removed: its live view is closed.", severity="warning")

    def _show_selected(self) -> None:
        if not self.panes_ready:
            self.call_after_refresh(self._show_selected)  # the panes mount after the first frame
            return
        path = self.trace_tree.selected_path
        switcher = self.query_one("#panes", ContentSwitcher)
        if path == MARKERS:
            self.markers_pane.show(self.state.markers)
            switcher.current = "markers-pane"
        elif path and "/" in path and (chan := self.state.channel(path)) is not None:
            self.channel_pane.show(path, chan)
            switcher.current = "channel-pane"
        elif path and (trace := self.state.trace(path)) is not None:
            self.trace_pane.show(trace)
            switcher.current = "trace-pane"
        else:
            switcher.current = "none"

    @property
    def panes_ready(self) -> bool:
        """Whether the detail panes have mounted (they are Lazy: just after the first frame)."""
        return all(p.is_mounted for p in (self.trace_pane, self.channel_pane, self.markers_pane))

    @on(TraceTree.NodeSelected)
    def _selected(self, event: TraceTree.NodeSelected[str]) -> None:
        if session_url(event.node.data) is not None:
            from tracetui.screens.remote import open_tree_session

            open_tree_session(self, event.node.data)

    @on(TraceTree.NodeHighlighted)
    def _highlighted(self) -> None:
        self.controller.last_stats = None
        self._show_selected()
        # Moving in the tree shows the details; a programmatic selection (layouts) does not.
        if self.trace_tree.has_focus and self.tabs.active != DETAILS:
            self.tabs.active = DETAILS
        self.call_later(self.controller.poll_selected_stats)

    def show_stats(self, path: str, stats: ChannelStats, rate: float | None = None) -> None:
        """Show one statistics read of PATH; the rate comes from the previous read's count."""
        measured = self.controller.rate(path, stats)
        rate = measured if rate is None else rate
        pane = self.channel_pane
        if pane.is_mounted and pane.path == path:
            pane.show_stats(stats, rate)
        self.show_tree(self.state.with_stats(path, stats.total))

    # ------------------------------------------------------------------ doing things

    async def run_verb(self, verb: str, path: str, value: str = "") -> bool:
        """Run one namespace verb; a refusal becomes a notification. Returns success."""
        return await self.controller.run_verb(verb, path, value)

    async def on_pane_request(self, message: PaneRequest) -> None:
        message.stop()
        if message.verb == "action":
            self._action_on(message.value, message.path)
            return
        done = await self.run_verb(message.verb, message.path, message.value)
        if done and message.verb == "write" and message.path.endswith("/snapshot"):
            # As for the key: a snapshot writes files, say so (the button did not).
            self.notify(f"Snapshot of {message.path.split('/')[0]} written.")

    def _action_on(self, action: str, path: str) -> None:
        self.trace_tree.select_path(path)
        if action == "edit_filter":
            self._edit_namespace_filter(path)
        elif action == "open_live":
            self.open_live(path)

    # ------------------------------------------------------------------ subjects

    def _live_pane(self) -> LiveViewPane | None:
        """The live view pane of the active tab, if a live view is showing."""
        active = self.tabs.active
        if not active or active == DETAILS:
            return None
        try:
            return self.query_one(f"#{active}-pane", _live_pane_class())
        except NoMatches:  # a tab being removed has no pane any more
            return None

    def _require_live(self) -> LiveViewPane | None:
        """The live view showing, or None after saying that one is needed (the one guard)."""
        live = self._live_pane()
        if live is None:
            self.notify("Open a live view first (l on a channel).", severity="warning")
        return live

    def _selected_trace(self) -> str | None:
        path = self.trace_tree.selected_path
        if not path or path == MARKERS:
            self.notify("Select a trace or a channel first.", severity="warning")
            return None
        return path.split("/")[0]

    def _selected_channel(self, what: str) -> str | None:
        path = self.trace_tree.selected_path
        if not path or "/" not in path:
            self.notify(f"Select a channel to {what}.", severity="warning")
            return None
        return path

    # ------------------------------------------------------------------ actions

    def action_new_trace(self) -> None:
        from tracetui.screens.name_dialog import NameDialog

        async def done(name: str | None) -> None:
            if name and "/" in name:
                self.notify(
                    f"A trace name cannot contain '/' ({name!r}); "
                    "add channels with c on the trace.",
                    severity="error",
                )
            elif name and await self.run_verb("mkdir", name):
                self.trace_tree.select_path(name)
                self.notify(f"Trace {name} created with channel main.")

        self.app.push_screen(
            NameDialog("New trace", message="A trace name, e.g. mytrace.", placeholder="mytrace"),
            done,
        )

    def action_new_channel(self) -> None:
        from tracetui.screens.name_dialog import NameDialog

        trace = self._selected_trace()
        if trace is None:
            return

        async def done(name: str | None) -> None:
            if name and "/" in name:
                self.notify(f"A channel name cannot contain '/' ({name!r}).", severity="error")
            elif name and await self.run_verb("mkdir", f"{trace}/{name}"):
                self.trace_tree.select_path(f"{trace}/{name}")

        self.app.push_screen(
            NameDialog(
                f"New channel in {trace}",
                message="A channel name, e.g. processes.",
                placeholder="processes",
            ),
            done,
        )

    def action_delete(self) -> None:
        """The key: close the live view showing, else delete the selection."""
        live = self._live_pane()
        if live is not None:
            self.close_live(live.channel)
            return
        self.action_delete_selected()

    def action_close_live(self) -> None:
        live = self._require_live()
        if live is None:
            return
        self.close_live(live.channel)

    def action_delete_selected(self) -> None:
        from tracetui.screens.confirm_dialog import ConfirmDialog

        path = self.trace_tree.selected_path
        if not path or path == MARKERS:
            self.notify("Select a trace or a channel to delete.", severity="warning")
            return
        if path.startswith(REMOTE_PREFIX):
            from tracetui.screens.remote import delete_remote

            delete_remote(self, path)
            return
        what = f"channel {path}" if "/" in path else f"trace {path} and its channels"

        async def done(yes: bool | None) -> None:
            if yes and await self.run_verb("rmdir", path):
                for view in [
                    p for p in self._live_workers if p == path or p.startswith(path + "/")
                ]:
                    self.close_live(view)

        self.app.push_screen(ConfirmDialog(f"Delete {what}?"), done)

    async def action_allocate(self) -> None:
        path = self.trace_tree.selected_path
        if path and "/" not in path and path != MARKERS:
            trace = self.state.trace(path)
            todo = [c for c in trace.channels if not c.allocated] if trace else []
            if trace is not None and not todo:
                self.notify(
                    f"Every channel of {path} is already allocated (a on a channel frees it).",
                    severity="warning",
                )
            for c in todo:
                if not await self.run_verb("write", f"{path}/{c.name}/allocate", "1"):
                    return
            return
        path = self._selected_channel("allocate")
        chan = self.state.channel(path) if path else None
        if path and chan:
            await self.run_verb("write", f"{path}/allocate", "0" if chan.allocated else "1")

    async def action_start_stop(self) -> None:
        trace = self._selected_trace()
        t = self.state.trace(trace) if trace else None
        if t is not None:
            await self.run_verb("write", f"{t.name}/start", "0" if t.recording else "1")

    async def action_start(self) -> None:
        trace = self._selected_trace()
        if trace:
            await self.run_verb("write", f"{trace}/start", "1")

    async def action_stop(self) -> None:
        trace = self._selected_trace()
        if trace:
            await self.run_verb("write", f"{trace}/start", "0")

    async def action_snapshot(self) -> None:
        trace = self._selected_trace()
        if trace and await self.run_verb("write", f"{trace}/snapshot", "1"):
            self.notify(f"Snapshot of {trace} written.")

    async def action_toggle_flight(self) -> None:
        path = self._selected_channel("toggle flight mode")
        chan = self.state.channel(path) if path else None
        if path and chan:
            await self.run_verb("write", f"{path}/flight", "0" if chan.flight else "1")

    async def action_toggle_global(self) -> None:
        path = self._selected_channel("toggle global mode")
        chan = self.state.channel(path) if path else None
        if path and chan:
            await self.run_verb("write", f"{path}/global", "0" if chan.is_global else "1")

    def action_edit_filter(self) -> None:
        """The key: the live view's name filter if one shows, else the selection's filter."""
        if self._live_pane() is not None:
            self.action_edit_live_filter()
            return
        path = self.trace_tree.selected_path
        if not path or path == MARKERS:
            self.notify("Select a trace, a channel or a live view to filter.", severity="warning")
            return
        self._edit_namespace_filter(path)

    def action_edit_trace_filter(self) -> None:
        trace = self._selected_trace()
        if trace:
            self._edit_namespace_filter(trace)

    def action_edit_routing(self) -> None:
        path = self._selected_channel("edit its routing")
        if path:
            self._edit_namespace_filter(path)

    def action_edit_live_filter(self) -> None:
        from tracetui.screens.filter_dialog import FilterDialog

        live = self._require_live()
        if live is None:
            return
        view = live.view

        def done_live(text: str | None) -> None:
            if text is not None:
                view.set_name_filter(text)
                live.update_status()

        rules = tuple(view.name_filter.split())
        self.app.push_screen(
            FilterDialog(f"Show events of {live.channel}", rules, kind="live"), done_live
        )

    def _edit_namespace_filter(self, path: str) -> None:
        from tracetui.screens.filter_dialog import FilterDialog

        if "/" in path:
            chan = self.state.channel(path)
            if chan is None:
                return
            if path.endswith("/main"):
                self.notify(
                    "Channel main receives every event no other channel routes; "
                    "edit the trace's filter or another channel's routing.",
                    severity="warning",
                )
                return
            title, rules, kind = f"Routing filter of {path}", chan.filter, "channel"
        else:
            trace = self.state.trace(path)
            if trace is None:
                return
            title, rules, kind = f"Event filter of {path}", trace.filter, "trace"

        async def done(text: str | None) -> None:
            if text:
                await self.run_verb("write", f"{path}/filter", text)

        self.app.push_screen(FilterDialog(title, rules, kind=kind), done)

    def action_open_remote(self) -> None:
        from tracetui.screens.remote import open_remote

        open_remote(self)

    def action_open_live(self) -> None:
        if session_url(self.trace_tree.selected_path) is not None:
            from tracetui.screens.remote import open_tree_session

            open_tree_session(self, self.trace_tree.selected_path)
            return
        path = self._selected_channel("watch live")
        if path:
            self.open_live(path)

    def action_pause_follow(self) -> None:
        live = self._require_live()
        if live is None:
            return
        live.view.toggle_follow()
        live.update_status()

    def action_search(self) -> None:
        live = self._require_live()
        if live is None:
            return
        live.open_search()

    def action_toggle_time(self) -> None:
        live = self._require_live()
        if live is None:
            return
        live.view.action_toggle_time()
        live.update_status()

    def action_toggle_cpu(self) -> None:
        live = self._require_live()
        if live is None:
            return
        live.view.action_toggle_cpu()

    def action_toggle_calls(self) -> None:
        live = self._require_live()
        if live is None:
            return
        live.view.action_toggle_calls()

    def action_help(self) -> None:
        from tracetui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen())

    def action_quit(self) -> None:
        self.app.exit()

    # ------------------------------------------------------------------ live views

    @property
    def live_paths(self) -> list[str]:
        """Channels with an open live view, in tab order."""
        return [p.channel for p in self.query(_live_pane_class())]

    def open_live(self, path: str, *, activate: bool = True) -> LiveViewPane:
        """Open (or show) the live view of channel PATH."""
        tab_id = live_tab_id(path)
        existing = self.query(f"#{tab_id}-pane")
        if existing:
            if activate:
                self.tabs.active = tab_id
            return self.query_one(f"#{tab_id}-pane", _live_pane_class())
        pane = _live_pane_class()(path, history=self.history, id=f"{tab_id}-pane")
        adding = self.tabs.add_pane(TabPane(f"live {path}", pane, id=tab_id))
        self._adding.append(adding)
        if activate:
            self.tabs.active = tab_id

            async def show() -> None:
                # Again once mounted: a click on a pane's "Live view" button focuses that
                # button, and the details tab, focused, would take the active tab back.
                await adding
                self.tabs.active = tab_id
                pane.view.focus()

            self.run_worker(show(), group="show-live")
        if self.client is not None:
            self._live_workers[path] = self._feed(path, pane.view)
        return pane

    async def views_mounted(self) -> None:
        """Wait until the live views opened so far are mounted (their tabs can be activated)."""
        adding, self._adding = self._adding, []
        for pending in adding:
            await pending

    def close_live(self, path: str) -> None:
        self.remote_views.pop(path, None)
        worker = self._live_workers.pop(path, None)
        if worker is not None:
            worker.cancel()
        tab_id = live_tab_id(path)
        self.tabs.active = DETAILS
        if self.query(f"#{tab_id}"):
            removal = self.tabs.remove_pane(tab_id)

            async def removed() -> None:
                # Removing the active tab activates a neighbour: show the details again.
                await removal
                self.tabs.active = DETAILS

            self.call_next(removed)
        self.trace_tree.focus()

    @work(group="live")
    async def _feed(self, path: str, view: LiveView) -> None:
        await self.controller.feed(path, view)

    # ------------------------------------------------------------------ explorers

    @property
    def explorer(self) -> ExplorerScreen | None:
        """The screen of the traces opened with ``o`` (None before the first)."""
        return self._explorer

    def _explorer_screen(self) -> ExplorerScreen:
        # Imported on first use: the explorer's rooms cost the console's first frame otherwise.
        from tracetui.screens.explorer import ExplorerScreen

        if self._explorer is None:
            self._explorer = ExplorerScreen(standalone=False)
            self.app.install_screen(self._explorer, name="explorer")
        return self._explorer

    def action_open_trace(self) -> None:
        from tracetui.screens.open_dialog import OpenTraceDialog

        async def done(result: tuple[str, TraceIndex] | None) -> None:
            if result is not None:
                await self.open_explorer(*result)

        self.app.push_screen(OpenTraceDialog(), done)

    async def action_open_recording(self) -> None:
        trace = self._selected_trace()
        t = self.state.trace(trace) if trace else None
        if t is None:
            return
        if not t.output:
            self.notify(f"Trace {t.name} has no output directory.", severity="warning")
            return
        from tracetui.screens.explorer import OpenError, open_index

        try:
            index = open_index(t.output)
        except OpenError as e:
            self.notify(f"{t.name}: {e}", title="Not opened", severity="error", timeout=8)
            return
        await self.open_explorer(t.output, index)

    def action_show_explorer(self) -> None:
        if self._explorer is None or not self._explorer.panes:
            self.notify("No trace is open: o opens one.", severity="warning")
            return
        self.app.push_screen(self._explorer)

    async def open_explorer(
        self,
        path: str,
        index: TraceIndex,
        *,
        position_ns: int | None = None,
        filter_text: str = "",
        show: bool = True,
    ) -> ExplorerPane:
        """Open INDEX in a tab of the explorer screen (shown unless SHOW is false)."""
        screen = self._explorer_screen()
        pane = await screen.add_trace(path, index, position_ns=position_ns, filter_text=filter_text)
        if show and self.app.screen is not screen:
            self.app.push_screen(screen)
        return pane

    def _explorers(self) -> list[layouts.ExplorerLayout]:
        from tracetui.core import layout as layouts

        if self._explorer is None:
            return []
        return [
            layouts.ExplorerLayout(p.path, p.position_ns, p.filter_text)
            for p in self._explorer.panes
        ]

    # ------------------------------------------------------------------ layouts

    def _views(self) -> list[layouts.ViewLayout]:
        from tracetui.core import layout as layouts

        return [
            layouts.ViewLayout(
                channel=p.channel,
                follow=p.view.follow,
                name_filter=p.view.name_filter,
                search=p.view.search_text,
                show_cpu=p.view.show_cpu,
                absolute_time=p.view.absolute_time,
                remote=self.remote_views.get(p.channel, ""),
            )
            for p in self.query(_live_pane_class())
        ]

    def _focus_name(self) -> str:
        live = self._live_pane()
        return f"view:{live.channel}" if live is not None else "tree"

    def action_save_layout(self) -> None:
        from tracetui.core import layout as layouts
        from tracetui.screens.name_dialog import NameDialog

        async def done(name: str | None) -> None:
            if not name:
                return
            try:
                path = layouts.resolve(name, self.controller.layout_dir)
            except layouts.LayoutError as e:
                self.notify(sentence(e), title="Layout not saved", severity="error", timeout=8)
                return
            if not path.exists():
                await self.save_layout(name)
                return
            # Never replace a saved session silently.
            from tracetui.screens.confirm_dialog import ConfirmDialog

            async def replace(yes: bool | None) -> None:
                if yes:
                    await self.save_layout(name)
                else:
                    self.notify(f"Layout {path} kept as it was.")

            self.app.push_screen(
                ConfirmDialog(f"Replace the layout {path}?", yes="Replace"), replace
            )

        self.app.push_screen(
            NameDialog(
                "Save layout",
                message="A name (saved under your config directory) or a path ending in .toml.",
                placeholder="session",
                choices=layouts.list_layouts(self.controller.layout_dir),
                ok="Save",
            ),
            done,
        )

    async def save_layout(self, name_or_path: str) -> Path | None:
        return await self.controller.save_layout(
            name_or_path,
            self._views(),
            selected=self.trace_tree.selected_path,
            focus=self._focus_name(),
            history=self.history,
            explorers=self._explorers(),
            relays=self.trace_tree.remote.addresses,
        )

    def action_load_layout(self) -> None:
        from tracetui.core import layout as layouts
        from tracetui.screens.name_dialog import NameDialog

        async def done(name: str | None) -> None:
            if name:
                await self.load_layout(name)

        self.app.push_screen(
            NameDialog(
                "Load layout",
                message="A saved layout's name, or the path of a layout file.",
                choices=layouts.list_layouts(self.controller.layout_dir),
                ok="Load",
            ),
            done,
        )

    async def load_layout(self, name_or_path: str) -> bool:
        """Validate the whole file, then ask about conflicts, then recreate and reopen."""

        from tracetui.screens.conflict_dialog import ConflictDialog

        planned = await self.controller.plan_layout(name_or_path)
        if planned is None:
            return False
        path, plan = planned
        explorers = self._open_layout_explorers(plan.layout, path)
        if explorers is None:
            return False
        if plan.conflicts:

            async def resolved(choice: str | None) -> None:
                if choice is None:
                    self.notify("Layout not loaded: nothing was changed.")
                    return
                res: dict[str, layouts.Resolution] = {
                    c.trace: "replace" if choice == "replace" else "keep" for c in plan.conflicts
                }
                await self._apply_layout(plan, res, path, explorers)

            self.app.push_screen(ConflictDialog(path.stem, plan.conflicts), resolved)
            return True
        return await self._apply_layout(plan, {}, path, explorers)

    def _open_layout_explorers(
        self, layout: layouts.Layout, path: Path
    ) -> list[tuple[layouts.ExplorerLayout, TraceIndex]] | None:
        """Every explorer of LAYOUT opened (its trace read, its filter parsed) before anything
        is applied; None after one line naming the first that cannot be."""
        from tracetui.core.model.predicate import PredicateError
        from tracetui.screens.explorer import OpenError, open_index, parse_filter

        opened = []
        for i, e in enumerate(layout.explorers, 1):
            try:
                index = open_index(e.path)
                parse_filter(e.filter)
            except (OpenError, PredicateError) as err:
                self.notify(
                    f"{path} explorer #{i}: {err}; nothing was changed.",
                    title="Layout not loaded",
                    severity="error",
                    timeout=8,
                )
                return None
            opened.append((e, index))
        return opened

    async def _apply_layout(
        self,
        plan: layouts.Plan,
        resolutions: dict[str, layouts.Resolution],
        path: Path,
        explorers: Sequence[tuple[layouts.ExplorerLayout, TraceIndex]] = (),
    ) -> bool:
        done = await self.controller.apply_layout(plan, resolutions)
        if done is None:
            return False
        for e, index in explorers:
            await self.open_explorer(
                e.path, index, position_ns=e.position_ns, filter_text=e.filter, show=False
            )
        layout = plan.layout
        self.history = layout.history
        if layout.relays:
            from tracetui.screens.remote import add_relay

            for url in layout.relays:
                add_relay(self, url)
        for v in layout.views:
            if v.remote:
                from tracetui.screens.remote import open_remote_view

                try:
                    pane = open_remote_view(self, v.remote, activate=False)
                except TraceError as e:
                    self.notify(f"Remote view {v.remote} not opened: {e}", severity="error")
                    continue
            else:
                pane = self.open_live(v.channel, activate=False)
            pane.view.follow = v.follow
            pane.view.show_cpu = v.show_cpu
            pane.view.absolute_time = v.absolute_time
            if v.name_filter:
                pane.view.set_name_filter(v.name_filter)
            pane.view.search_text = v.search
        await self.views_mounted()
        for v in layout.views:
            for pane in self.query(f"#{live_tab_id(v.channel)}-pane").results(_live_pane_class()):
                pane.update_status()
        if layout.selected:
            self.trace_tree.select_path(layout.selected)
        if layout.focus and layout.focus.startswith("view:"):
            channel = layout.focus.removeprefix("view:")
            if channel in self.live_paths:
                self.tabs.active = live_tab_id(channel)
                pane = self.query_one(f"#{live_tab_id(channel)}-pane", _live_pane_class())
                self.call_after_refresh(pane.view.focus)
        else:
            self.tabs.active = DETAILS
            self.trace_tree.focus()
        kept = [c.trace for c in plan.conflicts if resolutions.get(c.trace, "keep") == "keep"]
        summary = f"Layout {path.stem} loaded"
        if done:
            summary += f": created {', '.join(done)}"
        if kept:
            summary += f"; kept existing {', '.join(kept)}"
        if explorers:
            summary += f"; {len(explorers)} trace(s) reopened in the explorer (palette: explorer)"
        self.notify(summary + ".")
        return True

    # ------------------------------------------------------------------ command palette

    def palette_commands(self) -> Iterator[tuple[str, str, Any]]:
        """(title, help, callback) for every console command."""
        for a in PALETTE:
            yield a.title or a.name, a.help, getattr(self, f"action_{a.name}")
