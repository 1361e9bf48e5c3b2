"""The pane of a selected channel: buffer geometry, modes, routing, allocation, live statistics.

Sizes accept the namespace's syntax (``256K``, ``1M``); each field is written when submitted
(enter) and each switch when flipped, through :class:`~tracetui.widgets.requests.PaneRequest`
messages. What the pane shows always comes back from the daemon (:meth:`ChannelPane.show`):
a refused write snaps the field back and the screen shows the refusal's sentence.

Statistics come from the screen's once-a-second read of ``<channel>/stats``
(:meth:`ChannelPane.show_stats`), with a sparkline of the recorded rate.
"""

from __future__ import annotations

from collections import deque

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Sparkline, Static, Switch

from tracetui.core.client.state import ChannelState, ChannelStats
from tracetui.core.model.stats import Stats
from tracetui.widgets.requests import PaneRequest
from tracetui.widgets.trace_pane import rules_text
from tracetui.widgets.trace_tree import human_size

RATE_HISTORY = 60  # seconds of rate shown by the sparkline


def stats_table(stats: ChannelStats) -> str:
    """Per-buffer and total counters as aligned text."""
    cols = ("recorded", "discarded", "overwritten", "too_big", "bytes", "packets")
    head = f"{'buffer':<8} " + " ".join(f"{c:>12}" for c in cols)
    rows = [head]
    items: list[tuple[str, Stats]] = [*stats.buffers.items(), ("total", stats.total)]
    for label, st in items:
        rows.append(f"{label:<8} " + " ".join(f"{getattr(st, c):>12,}" for c in cols))
    return "\n".join(rows)


_NO_BUFFERS = "no buffers yet: counters start once the channel is allocated (a) or started"


class ChannelPane(Vertical):
    """Shows one channel and asks for changes to it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="pane")
        self.path: str | None = None
        self.channel: ChannelState | None = None
        self._rates: deque[float] = deque(maxlen=RATE_HISTORY)
        # Fields just submitted: the next show() puts the daemon's value back even if the field
        # still has the focus (a refused size must not stay on screen as if applied).
        self._resync: set[str] = set()

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label("sub-buffers", classes="label")
            yield Input(id="subbuf_size", placeholder="size: 256K, 1M")
            yield Label("x", classes="times")
            yield Input(id="n_subbuf", placeholder="count: 8", type="integer")
            yield Static("", id="geometry", classes="value")
        with Horizontal(classes="row"):
            yield Label("flight", classes="label")
            yield Switch(id="flight")
            yield Label("global", classes="label")
            yield Switch(id="global")
        with Horizontal(classes="row"):
            yield Label("buffers", classes="label")
            yield Static("", id="alloc-state", classes="value")
            yield Button("Allocate", id="allocate", variant="primary")
            yield Button("Live view", id="live")
        yield Static("routing filter", classes="section")
        yield Static("", id="channel-rules", classes="rules")
        with Horizontal(classes="row"):
            yield Button("Edit routing…", id="edit-filter", variant="primary")
            yield Button("Clear routing", id="clear-filter")
        yield Static("statistics", classes="section")
        yield Static("", id="rate", classes="value")
        yield Sparkline([], id="sparkline")
        yield Static("", id="stats", classes="stats")

    # ------------------------------------------------------------------ showing

    def show(self, path: str, channel: ChannelState) -> None:
        """Display CHANNEL (at PATH) as the daemon reported it."""
        if path != self.path:
            self._rates.clear()
            self.query_one("#sparkline", Sparkline).data = []
            self.query_one("#stats", Static).update("")
            self.query_one("#rate", Static).update("")
        self.path = path
        self.channel = channel
        self.border_title = f"channel {path}"
        for field, value in (
            ("subbuf_size", human_size(channel.subbuf_size)),
            ("n_subbuf", str(channel.n_subbuf)),
        ):
            widget = self.query_one(f"#{field}", Input)
            if not widget.has_focus or field in self._resync:
                widget.value = value
            self._resync.discard(field)
            # Fixed once allocated: the daemon would refuse (EBUSY); say so by disabling.
            widget.disabled = channel.allocated
        per_buffer = channel.subbuf_size * channel.n_subbuf
        self.query_one("#geometry", Static).update(
            f"= {human_size(per_buffer)}B per buffer"
            + (" (one buffer)" if channel.is_global else " (one per CPU)")
        )
        for name, on_ in (("flight", channel.flight), ("global", channel.is_global)):
            switch = self.query_one(f"#{name}", Switch)
            with switch.prevent(Switch.Changed):
                switch.value = on_
        self.query_one("#global", Switch).disabled = channel.allocated
        state = self.query_one("#alloc-state", Static)
        state.update("allocated" if channel.allocated else "not allocated")
        state.set_classes("value " + ("state-on" if channel.allocated else "state-off"))
        self.query_one("#allocate", Button).label = "Free" if channel.allocated else "Allocate"
        if not channel.allocated:
            self.query_one("#rate", Static).update(_NO_BUFFERS)
            self.query_one("#stats", Static).update("")
        self.query_one("#channel-rules", Static).update(rules_text(channel.filter, routing=True))
        self.query_one("#clear-filter", Button).disabled = path.endswith("/main")
        self.query_one("#edit-filter", Button).disabled = path.endswith("/main")

    def show_stats(self, stats: ChannelStats, rate: float | None) -> None:
        """Display one statistics read; RATE is records/s since the previous read."""
        if rate is not None:
            self._rates.append(rate)
            self.query_one("#sparkline", Sparkline).data = list(self._rates)
        t = stats.total
        # Overwrites are a flight recorder doing its job (muted in the tree too): not losses.
        lost = t.dropped
        text = (
            f"{rate or 0:,.0f} records/s · recorded {t.recorded:,} · discarded {t.discarded:,}"
            f" · overwritten {t.overwritten:,}"
        )
        if self.channel is not None and not self.channel.allocated:
            text = _NO_BUFFERS
        rate_w = self.query_one("#rate", Static)
        rate_w.update(text)
        rate_w.set_class(lost > 0, "loss")
        self.query_one("#stats", Static).update(stats_table(stats))

    def set_rates(self, rates: list[float]) -> None:
        """Preload the sparkline (fixtures)."""
        self._rates.extend(rates)
        self.query_one("#sparkline", Sparkline).data = list(self._rates)

    # ------------------------------------------------------------------ edits

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.path is not None and event.input.id in ("subbuf_size", "n_subbuf"):
            self._resync.add(event.input.id)
            self.post_message(PaneRequest("write", f"{self.path}/{event.input.id}", event.value))

    @on(Switch.Changed)
    def _switched(self, event: Switch.Changed) -> None:
        event.stop()
        if self.path is not None and event.switch.id in ("flight", "global"):
            value = "1" if event.value else "0"
            self.post_message(PaneRequest("write", f"{self.path}/{event.switch.id}", value))

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        event.stop()
        if self.path is None or self.channel is None:
            return
        match event.button.id:
            case "allocate":
                value = "0" if self.channel.allocated else "1"
                self.post_message(PaneRequest("write", f"{self.path}/allocate", value))
            case "live":
                self.post_message(PaneRequest("action", self.path, "open_live"))
            case "edit-filter":
                self.post_message(PaneRequest("action", self.path, "edit_filter"))
            case "clear-filter":
                self.post_message(PaneRequest("write", f"{self.path}/filter", "0"))
