"""The client room: rendezvous and spawning, one connection, live subscriptions, the console's
model of the namespace.

``rendezvous`` (runtime directory, port file), ``connection`` (``Client``, ``AsyncClient``: the
five verbs, stated once), ``spawn`` (start, wait for, stop a daemon), ``live`` (subscriptions),
``state`` (what the console shows, and its one reader).  The two clients are re-exported here:
``from tracetui.core.client import Client``.
"""

from __future__ import annotations

from tracetui.core.client.connection import AsyncClient, Change, Client, Entry

__all__ = ["AsyncClient", "Change", "Client", "Entry"]
