"""The console's controller: everything the main screen asks of the daemon, and the polling.

It holds the async client, re-reads the namespace when the daemon reports a change (whoever
made it: the CLI too), at most every 0.2 s; reads the selected channel's statistics once a
second and every allocated channel's every five seconds (for the losses in the tree); runs the
namespace verbs and the layout operations; feeds live views from the daemon's subscriptions.
Every refusal becomes a notification carrying the daemon's sentence.

It draws nothing: what it learns goes to its :class:`Host` (the main screen), which composes
widgets and routes keys, palette entries and pane requests to it.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tracetui.core.client.state import ChannelStats, NamespaceState, read_state, read_stats
from tracetui.core.errors import TraceError

if TYPE_CHECKING:
    from tracetui.core import layout as layouts
    from tracetui.core.client import AsyncClient
    from tracetui.widgets.live_view import LiveView

REFRESH_S = 0.2
STATS_S = 1.0
TREE_STATS_S = 5.0


class Host(Protocol):
    """What the controller needs of the screen it serves."""

    state: NamespaceState

    def notify(self, message: str, *, title: str = "", severity: Any = "information",
               timeout: float | None = None, markup: bool = True) -> None: ...  # fmt: skip
    def show_state(self, state: NamespaceState) -> None: ...
    def show_tree(self, state: NamespaceState) -> None: ...
    def show_stats(self, path: str, stats: ChannelStats, rate: float | None = None) -> None: ...
    def set_connection(self, text: str) -> None: ...
    @property
    def selected_path(self) -> str | None: ...


def sentence(e: BaseException) -> str:
    """An error as one sentence: capitalised, ending with a full stop.

    A sentence opening with a name (``demo/procs is allocated...``, ``bad.toml is not...``)
    keeps it as it is: names are case-sensitive.
    """
    text = str(e).strip()
    if not text:
        return type(e).__name__
    if text.split(maxsplit=1)[0].isalpha():
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


class Controller:
    """The main screen's daemon side (see the module docstring)."""

    def __init__(self, host: Host, client: AsyncClient | None = None) -> None:
        self.host = host
        self.client = client
        self.dirty = client is not None
        self._refreshing = False
        self._daemon_lost = False  # said once, not at every poll while the daemon is gone
        self.last_stats: tuple[str, float, int] | None = None  # path, time, recorded
        self.layout_dir: Path | None = None

    def connected(self) -> AsyncClient | None:
        """The client, or None after saying that there is none (the one guard)."""
        if self.client is None:
            self.host.notify("Not connected to a daemon.", severity="error")
        return self.client

    # ------------------------------------------------------------------ polling

    async def watch_changes(self) -> None:
        """Mark the state dirty at every change the daemon reports; say the ones that matter."""
        if self.client is None:
            return
        try:
            async for change in self.client.changes():
                if change.op == "state" and change.value == "shutdown":
                    self.host.notify("The daemon is stopping.", severity="error", timeout=10)
                elif change.op == "state" and change.path.endswith("/output"):
                    # The recorder could not write a trace (disk full...): never silent.
                    self.host.notify(f"{change.path}: {change.value}", severity="error", timeout=10)
                self.dirty = True
        except TraceError as e:
            self.host.notify(f"Lost the daemon's change feed: {e}", severity="error")

    async def refresh_if_dirty(self) -> None:
        if self.dirty and not self._refreshing:
            await self.refresh_state()

    async def refresh_state(self) -> bool:
        """Read the namespace again and show it; False if the read failed (retried later)."""
        if self.client is None:
            self.host.show_state(self.host.state)
            return True
        self.dirty = False
        self._refreshing = True
        try:
            state = await read_state(self.client)
        except TraceError as e:
            # A trace removed between ls and read (ENOENT) settles on the next change.
            self.dirty = e.errno != errno.ECONNREFUSED  # else the daemon is gone
            if not self.dirty and not self._daemon_lost:
                self._daemon_lost = True
                self.host.set_connection("daemon not answering")
                self.host.notify(sentence(e), title="Daemon lost", severity="error", timeout=30)
            return False
        finally:
            self._refreshing = False
        if self._daemon_lost:
            self._daemon_lost = False
            self.host.set_connection("connected")
            self.host.notify("The daemon answers again.")
        self.host.show_state(state)
        return True

    async def poll_selected_stats(self) -> None:
        path = self.host.selected_path
        chan = self.host.state.channel(path) if path and "/" in path else None
        if self.client is None or chan is None or not chan.allocated or path is None:
            return
        try:
            stats = await read_stats(self.client, path)
        except TraceError:
            self.dirty = True  # removed or freed meanwhile: the refresh will tell
            return
        self.host.show_stats(path, stats)

    def rate(self, path: str, stats: ChannelStats) -> float | None:
        """Records/s of PATH since its previous statistics read (None for a first read)."""
        now = time.monotonic()
        rate = None
        if self.last_stats is not None and self.last_stats[0] == path:
            _, t0, n0 = self.last_stats
            if now > t0:
                rate = max(0.0, (stats.total.recorded - n0) / (now - t0))
        self.last_stats = (path, now, stats.total.recorded)
        return rate

    async def poll_tree_stats(self) -> None:
        if self.client is None:
            return
        totals = {}
        for t in self.host.state.traces:
            for c in t.channels:
                if not c.allocated:
                    continue
                path = f"{t.name}/{c.name}"
                try:
                    totals[path] = (await read_stats(self.client, path)).total
                except TraceError:
                    self.dirty = True  # removed or freed meanwhile: the refresh will tell
                    return
        # Applied to the state as it is now: a refresh may have landed during the reads.
        state = self.host.state
        for path, total in totals.items():
            state = state.with_stats(path, total)
        self.host.show_tree(state)

    # ------------------------------------------------------------------ verbs

    async def run_verb(self, verb: str, path: str, value: str = "") -> bool:
        """Run one namespace verb; a refusal becomes a notification. Returns success."""
        client = self.connected()
        if client is None:
            return False
        try:
            if verb == "write":
                await client.write(path, value)
            elif verb == "mkdir":
                await client.mkdir(path)
            elif verb == "rmdir":
                await client.rmdir(path)
            else:
                raise ValueError(f"unknown verb {verb}")
        except TraceError as e:
            self.host.notify(sentence(e), title=f"{verb} {path}", severity="error", timeout=8)
            await self.refresh_state()  # show what the daemon really has
            return False
        await self.refresh_state()
        return True

    async def feed(self, path: str, view: LiveView) -> None:
        """Hand the daemon's live batches to the view (it drains them on its own timer)."""
        from tracetui.core.client.live import watch

        if self.client is None:
            return
        seen_dropped = 0  # LiveBatch.dropped_batches counts since the subscription began
        try:
            async for batch in watch(path, self.client.runtime_dir):
                dropped = max(0, batch.dropped_batches - seen_dropped)
                seen_dropped = max(seen_dropped, batch.dropped_batches)
                view.append_batch(batch.items, dropped)
                for error in batch.errors:
                    self.host.notify(f"Live view of {path}: {error}", severity="warning")
        except TraceError as e:
            self.host.notify(f"Live view of {path} stopped: {sentence(e)}", severity="error")

    # ------------------------------------------------------------------ layouts

    async def save_layout(
        self,
        name_or_path: str,
        views: Sequence[layouts.ViewLayout],
        *,
        selected: str | None,
        focus: str,
        history: int,
        explorers: Sequence[layouts.ExplorerLayout] = (),
        relays: Sequence[str] = (),
    ) -> Path | None:
        from tracetui.core import layout as layouts

        client = self.connected()
        if client is None:
            return None
        try:
            path = layouts.resolve(name_or_path, self.layout_dir)
            layout = await layouts.capture(
                client,
                views,
                selected=selected,
                focus=focus,
                history=history,
                explorers=explorers,
                relays=relays,
            )
            layouts.save(layout, path)
        except (layouts.LayoutError, TraceError) as e:
            self.host.notify(sentence(e), title="Layout not saved", severity="error", timeout=8)
            return None
        self.host.notify(f"Layout saved to {path}.")
        return path

    async def plan_layout(self, name_or_path: str) -> tuple[Path, layouts.Plan] | None:
        """Validate the whole file and compare it with the daemon; None after saying why not."""
        from tracetui.core import layout as layouts

        client = self.connected()
        if client is None:
            return None
        try:
            path = layouts.resolve(name_or_path, self.layout_dir)
            layout = layouts.load(path)
            plan = await layouts.plan(client, layout)
        except (layouts.LayoutError, TraceError) as e:
            self.host.notify(sentence(e), title="Layout not loaded", severity="error", timeout=10)
            return None
        return path, plan

    async def apply_layout(
        self, plan: layouts.Plan, resolutions: dict[str, layouts.Resolution]
    ) -> list[str] | None:
        """Create the layout's traces; None (after saying why) if the daemon refused."""
        from tracetui.core import layout as layouts

        client = self.connected()
        if client is None:
            return None
        try:
            done = await layouts.apply(client, plan, resolutions)
        except TraceError as e:
            self.host.notify(sentence(e), title="Layout not loaded", severity="error", timeout=10)
            await self.refresh_state()
            return None
        await self.refresh_state()
        return done
