"""The help screen: every key of the console, and what the tree's badges mean.

One line per key (a Markdown table draws a rule between rows and did not fit a 45-line
terminal); the dialog scrolls when the terminal is smaller still.
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

KEYS: tuple[tuple[str, str], ...] = (
    ("n", "new trace"),
    ("c", "new channel on the selected trace"),
    ("d", "delete the selected trace or channel (or close the live view)"),
    ("a", "allocate / free the selected channel (a trace: allocate all its channels)"),
    ("s", "start / stop the selected trace"),
    ("f", "toggle flight-recorder mode of the channel"),
    ("g", "toggle global (one buffer for all CPUs)"),
    ("e", "edit the filter of the selection (trace filter, channel routing, live view names)"),
    ("l", "open a live view of the selected channel"),
    ("space", "pause / follow the live view"),
    ("/", "search the live view (enter: next match, escape: close)"),
    ("t / u", "live view: relative or absolute time / CPU column"),
    ("tab", "move between the tree, the tabs and the pane"),
    ("ctrl+s / ctrl+o", "save / load a session layout"),
    ("ctrl+p", "command palette"),
    ("?", "this help"),
    ("q", "quit"),
)

BADGES = (
    "Tree: ● recording, ○ stopped; A allocated, F flight recorder, G global buffer; "
    "then records recorded, ✗N records discarded (buffers full), "
    "↻N flight-recorder overwrites (the oldest records, by design)."
)


def keys_table() -> Table:
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0), expand=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(ratio=1)
    for key, action in KEYS:
        table.add_row(key, action)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close"),
    ]

    def __init__(self) -> None:
        super().__init__(classes="dialog")

    def compose(self) -> ComposeResult:
        # The whole dialog scrolls (arrow keys) when the terminal is too small for it.
        with VerticalScroll(id="help-text"):
            yield Label("tracetui console", classes="title")
            yield Static(keys_table(), id="keys")
            yield Static(Text(BADGES), classes="message", id="badges")
            with Horizontal(classes="buttons"):
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#help-text").focus()

    def on_button_pressed(self) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
