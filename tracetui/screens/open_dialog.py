"""A modal dialog asking for a trace directory to explore (``o`` in the console).

The directory is opened (its packet index read: core/trace/index.py) before the dialog closes:
a path that is not a readable trace keeps the dialog open with one line saying why.  Returns
``(path, TraceIndex)``, or None when cancelled.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from tracetui.core.trace.index import TraceIndex
from tracetui.screens.explorer import OpenError, open_index


class OpenTraceDialog(ModalScreen[tuple[str, TraceIndex] | None]):
    """Type a trace directory; Enter opens it (or says in one line why it cannot)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, value: str = "") -> None:
        super().__init__(classes="dialog")
        self._value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Open a trace", classes="title")
            yield Label(
                "A recorded trace directory (tracetui's or LTTng's: it holds 'metadata').",
                classes="message",
            )
            yield Input(self._value, placeholder="~/traces/mytrace-20260101-120000", id="path")
            yield Label("", id="open-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Open", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    @property
    def error(self) -> str:
        return str(self.query_one("#open-error", Label).render())

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok_pressed(self) -> None:
        path = self.query_one("#path", Input).value.strip()
        label = self.query_one("#open-error", Label)
        if not path:
            label.update("Type the path of a trace directory, or press escape.")
            return
        try:
            index = open_index(path)
        except OpenError as e:
            label.update(str(e))
            return
        self.dismiss((path, index))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
