"""A modal dialog editing one filter: a trace's event filter, a channel's routing, or the
event-name filter of a live view.

For namespace filters it shows the current rules and returns the text to write: rules typed in
the namespace's language (``sched_*``, ``!sched_wakeup``, several separated by spaces), ``0``
(disable all), ``*`` (accept all), or ``!rule`` when a listed rule is chosen for removal. For a
live view it returns the globs to show (empty: every event).
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ListItem, ListView


class FilterDialog(ModalScreen[str | None]):
    """Returns what to write to the filter (or the live view's globs); None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("delete", "remove", "Remove rule"),
    ]

    def __init__(self, title: str, rules: tuple[str, ...], *, kind: str = "trace") -> None:
        """KIND: "trace" (event filter), "channel" (routing) or "live" (view name filter)."""
        super().__init__(classes="dialog")
        self._title = title
        self._rules = rules
        self._kind = kind

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title, classes="title")
            if self._kind == "live":
                help_text = "Event names or globs to show, e.g. sched_* proc_exec (empty: all)."
            elif self._kind == "channel":
                help_text = (
                    "Events routed to this channel instead of main: a name or glob adds, "
                    "!name removes, 0 clears. Select a rule and press delete to remove it."
                )
            else:
                help_text = (
                    "A name or glob adds (sched_*), !name removes or excludes, 0 disables all, "
                    "* accepts all. Select a rule and press delete to remove it."
                )
            yield Label(help_text, classes="message")
            if self._kind != "live":
                items = [ListItem(Label(r), name=r) for r in self._rules]
                if not items:
                    items = [ListItem(Label("(no rule)"), name="")]
                yield ListView(*items, id="rules")
            value = " ".join(self._rules) if self._kind == "live" else ""
            # A live view's filter only shows names (no "!" exclusions, unlike the namespace's).
            example = "sched_* proc_exec" if self._kind == "live" else "sched_* !sched_wakeup"
            yield Input(value, placeholder=example, id="rule")
            with Horizontal(classes="buttons"):
                if self._kind == "trace":
                    yield Button("Disable all (0)", id="none", variant="error")
                    yield Button("Accept all (*)", id="all")
                elif self._kind == "channel":
                    yield Button("Clear (0)", id="none", variant="error")
                else:
                    yield Button("Show all", id="clear")
                yield Button("Cancel", id="cancel")
                yield Button("Apply", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#rule", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _apply(self) -> None:
        value = self.query_one("#rule", Input).value.strip()
        if value or self._kind == "live":
            self.dismiss(value)
        else:
            self.notify("Type a rule first, or press escape.", severity="warning")

    @on(Button.Pressed, "#none")
    def _none(self) -> None:
        self.dismiss("0")

    @on(Button.Pressed, "#all")
    def _all(self) -> None:
        self.dismiss("*")

    @on(Button.Pressed, "#clear")
    def _clear(self) -> None:
        self.dismiss("")

    @on(ListView.Selected)
    def _selected(self, event: ListView.Selected) -> None:
        # Choosing a listed rule offers its removal in the input; enter applies it.
        if event.item.name:
            rule = event.item.name
            self.query_one("#rule", Input).value = rule[1:] if rule.startswith("!") else f"!{rule}"
            self.query_one("#rule", Input).focus()

    def action_remove(self) -> None:
        rules = self.query("#rules")
        if not rules:
            return
        view = self.query_one("#rules", ListView)
        item = view.highlighted_child
        if item is not None and item.name:
            rule = item.name
            # "!x" on rule "x" removes it; an exclusion "!x" is removed by adding "x" back.
            self.dismiss(rule[1:] if rule.startswith("!") else f"!{rule}")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
