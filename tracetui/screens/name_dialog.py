"""A modal dialog asking for one name or path: new trace, new channel, layout to save or load."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ListItem, ListView


class NameDialog(ModalScreen[str | None]):
    """Returns the text entered (stripped), or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        *,
        message: str = "",
        placeholder: str = "",
        value: str = "",
        choices: Sequence[str] = (),
        ok: str = "OK",
    ) -> None:
        super().__init__(classes="dialog")
        self._title = title
        self._message = message
        self._placeholder = placeholder
        self._value = value
        self._choices = list(choices)
        self._ok = ok

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title, classes="title")
            if self._message:
                yield Label(self._message, classes="message")
            yield Input(self._value, placeholder=self._placeholder, id="name")
            if self._choices:
                yield ListView(*(ListItem(Label(c), name=c) for c in self._choices), id="choices")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self._ok, id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok_pressed(self) -> None:
        value = self.query_one("#name", Input).value.strip()
        if value:
            self.dismiss(value)
        else:
            self.notify("Type a name first, or press escape.", severity="warning")

    @on(ListView.Selected)
    def _chosen(self, event: ListView.Selected) -> None:
        if event.item.name:
            self.dismiss(event.item.name)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
