"""The help screen: every key of the console, and what the tree's badges mean."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Markdown

HELP = """\
# tracetui console

| Key | Action |
|-----|--------|
| `n` | new trace |
| `c` | new channel on the selected trace |
| `d` | delete the selected trace or channel (or close the live view) |
| `a` | allocate / free the selected channel (a trace: allocate all its channels) |
| `s` | start / stop the selected trace |
| `f` | toggle flight-recorder mode of the channel |
| `g` | toggle global (one buffer for all CPUs) |
| `e` | edit the filter of the selection (trace filter, channel routing, live view names) |
| `l` | open a live view of the selected channel |
| `space` | pause / follow the live view |
| `/` | search the live view (enter: next match, escape: close) |
| `t` / `u` | live view: relative or absolute time / CPU column |
| `ctrl+s` / `ctrl+o` | save / load a session layout |
| `ctrl+p` | command palette |
| `?` | this help |
| `q` | quit |

Tree badges: **A** allocated, **F** flight recorder, **G** global buffer; `●` recording;
`✗N` records lost (discarded when full, or overwritten in flight mode).
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close"),
    ]

    def __init__(self) -> None:
        super().__init__(classes="dialog")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Markdown(HELP)
            yield Button("Close", id="close", variant="primary")

    def on_button_pressed(self) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
