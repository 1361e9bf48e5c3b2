"""A modal dialog for a layout whose traces already exist in the daemon with other settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from tracetui.core.layout import Conflict


class ConflictDialog(ModalScreen[str | None]):
    """Returns "keep" (leave existing traces), "replace" (recreate them), or None (cancel)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, layout_name: str, conflicts: Sequence[Conflict]) -> None:
        super().__init__(classes="dialog")
        self._name = layout_name
        self._conflicts = list(conflicts)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Layout {self._name}: conflicts", classes="title")
            for c in self._conflicts:
                yield Label(f"• {c.reason}", classes="message")
            yield Label(
                "Keep the existing traces as they are, or replace them with the layout's "
                "(a running trace cannot be replaced: stop it first).",
                classes="message",
            )
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Replace", id="replace", variant="error")
                yield Button("Keep existing", id="keep", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
