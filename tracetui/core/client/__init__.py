"""The client room: rendezvous and spawning, one connection, live subscriptions, the console's
model of the namespace.

``rendezvous`` (runtime directory, port file), ``connection`` (``Client``, ``AsyncClient``: the
five verbs, stated once), ``spawn`` (start, wait for, stop a daemon), ``live`` (subscriptions),
``state`` (what the console shows, and its one reader).  The two clients are re-exported here:
``from tracetui.core.client import Client``.

The re-exports are resolved on first use (PEP 562): the console imports ``state`` to draw its
first frame, and importing the package must not load the connection and the wire with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracetui.core.client.connection import AsyncClient, Change, Client, Entry

__all__ = ["AsyncClient", "Change", "Client", "Entry"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tracetui.core.client import connection

        return getattr(connection, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
