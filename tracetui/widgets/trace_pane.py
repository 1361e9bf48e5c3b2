"""The pane of a selected trace: recording state, output directory, event filter rules.

Edits are posted as :class:`~tracetui.widgets.requests.PaneRequest` messages; the pane only shows
what the daemon says (:meth:`TracePane.show`), so a refused edit never looks applied.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from tracetui.core.client.state import TraceState
from tracetui.widgets.requests import PaneRequest


def rules_text(rules: tuple[str, ...], *, routing: bool = False) -> str:
    """Filter rules for display, with what an empty filter means."""
    if not rules:
        return "no rule: events stay on main" if routing else "no rule (0): every event refused"
    return "\n".join(rules)


class TracePane(Vertical):
    """Shows one trace and asks for changes to it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="pane")
        self.trace: TraceState | None = None
        self._resync = False  # the output was just submitted: show the daemon's value again

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label("state", classes="label")
            yield Static("", id="trace-state", classes="value")
            yield Button("Start", id="start", variant="success")
            yield Button("Snapshot", id="snapshot")
        with Horizontal(classes="row"):
            yield Label("output", classes="label")
            yield Input(id="output", classes="wide", placeholder="/absolute/directory")
        yield Static("event filter", classes="section")
        yield Static("", id="trace-rules", classes="rules")
        with Horizontal(classes="row"):
            yield Button("Edit filter…", id="edit-filter", variant="primary")
            yield Button("Disable all", id="disable-all", variant="error")
            yield Button("Accept all", id="accept-all")
        yield Static(
            "s start/stop · e edit filter · c new channel · a allocate all · d delete",
            classes="hint",
        )

    def show(self, trace: TraceState) -> None:
        """Display TRACE as the daemon reported it."""
        self.trace = trace
        self.border_title = f"trace {trace.name}"
        state = self.query_one("#trace-state", Static)
        if trace.recording:
            state.update("● recording")
            state.set_classes("value state-on")
        else:
            state.update("○ stopped")
            state.set_classes("value state-off")
        start = self.query_one("#start", Button)
        start.label = "Stop" if trace.recording else "Start"
        start.variant = "warning" if trace.recording else "success"
        output = self.query_one("#output", Input)
        if not output.has_focus or self._resync:
            output.value = trace.output
        self._resync = False
        self.query_one("#trace-rules", Static).update(rules_text(trace.filter))

    @on(Input.Submitted, "#output")
    def _output(self, event: Input.Submitted) -> None:
        event.stop()
        if self.trace is not None:
            self._resync = True
            self.post_message(PaneRequest("write", f"{self.trace.name}/output", event.value))

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        event.stop()
        if self.trace is None:
            return
        name = self.trace.name
        match event.button.id:
            case "start":
                self.post_message(
                    PaneRequest("write", f"{name}/start", "0" if self.trace.recording else "1")
                )
            case "snapshot":
                self.post_message(PaneRequest("write", f"{name}/snapshot", "1"))
            case "edit-filter":
                self.post_message(PaneRequest("action", name, "edit_filter"))
            case "disable-all":
                self.post_message(PaneRequest("write", f"{name}/filter", "0"))
            case "accept-all":
                self.post_message(PaneRequest("write", f"{name}/filter", "*"))
