"""Messages by which panes and dialogs ask the main screen to act on the daemon.

Widgets never hold the client: they post a :class:`PaneRequest` and the screen carries it out,
so every refusal of the daemon is turned into a notification in one place.
"""

from __future__ import annotations

from textual.message import Message


class PaneRequest(Message):
    """Do VERB on PATH (``write`` with VALUE, ``mkdir``, ``rmdir``) or a named screen ACTION.

    ``verb`` is one of the namespace verbs, or "action" to run a screen action by name
    (e.g. "edit_filter", "open_live") with PATH as its subject.
    """

    def __init__(self, verb: str, path: str, value: str = "") -> None:
        super().__init__()
        self.verb = verb
        self.path = path
        self.value = value
