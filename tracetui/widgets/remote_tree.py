"""The trace tree's "remote" node: the lttng-relayds the user named, their hosts and sessions.

Below the daemon's traces and the markers, once a relayd is known (the palette's "remote: Open
live session" with ``net://HOST[:PORT]``, ``tracetui --relay net://HOST``, or a layout holding a
remote view)::

    remote
    └─ net://relayhost:5344  3 sessions
       ├─ web-1
       │  ├─ fleet  3 streams
       │  └─ ustlive  5 streams · 1 viewer
       └─ web-2
          └─ fleet  3 streams

A relayd that refuses or cannot be reached is one line: its address and the sentence.  Nodes
are updated in place (cursor and expansion survive the refreshes).  A session's node data is
``remote:`` + its live URL (:func:`session_url` reads it back; the remote node's is
``remote:``); selecting it opens its live
view (screens/remote.py), read-only like every remote view.  The tree never waits for a relayd:
screens/remote.py lists them from worker threads and hands the answers to :meth:`show`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text

if TYPE_CHECKING:
    from textual.timer import Timer
    from textual.widgets import Tree
    from textual.widgets.tree import TreeNode

    from tracetui.core.wire.lttng_live import SessionInfo

__all__ = ["PREFIX", "REMOTE", "RemoteNode", "relay_address", "session_url"]

# Node data: never a trace's name (names have no ':').
REMOTE = "remote:"  # the data of the "remote" node
PREFIX = "remote:"  # the data of the nodes below it: PREFIX + a live URL


def relay_address(text: str) -> str:
    """``net://HOST:PORT`` of a live URL (with or without a session); LiveError otherwise."""
    from tracetui.core.wire.lttng_live import parse_live_url

    return parse_live_url(text).address


def session_url(data: str | None) -> str | None:
    """The live URL of a remote session's node data, None for any other node."""
    if not data or not data.startswith(PREFIX):
        return None
    url = data[len(PREFIX) :]
    _, sep, rest = url.partition("/host/")
    return url if sep and rest.count("/") == 1 and not rest.endswith("/") else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class RemoteNode:
    """The remote subtree of one tree: relayd -> host -> session nodes, kept in step."""

    def __init__(self, tree: Tree[str], style: Callable[[str], Style]) -> None:
        self.tree = tree
        self._style = style  # the tree's component styles by name ("muted", "loss")
        self.node: TreeNode[str] | None = None
        self.relays: dict[str, TreeNode[str]] = {}  # address -> its node
        self._hosts: dict[tuple[str, str], TreeNode[str]] = {}
        self._sessions: dict[str, TreeNode[str]] = {}  # live URL -> its node
        self.answers: dict[str, list[SessionInfo] | str] = {}  # address -> last answer
        self.listing: set[str] = set()  # addresses being listed now (one listing at a time)
        self.timer: Timer | None = None  # the refresh (screens/remote.py)

    @property
    def addresses(self) -> list[str]:
        return list(self.relays)

    def add(self, address: str) -> bool:
        """Show relayd ADDRESS (``net://HOST:PORT``); False if it was there already."""
        if address in self.relays:
            return False
        if self.node is None:
            self.node = self.tree.root.add("remote", data=REMOTE, expand=True)
        self.relays[address] = self.node.add(
            self._relay_label(address, None), data=PREFIX + address, expand=True
        )
        return True

    def _relay_label(self, address: str, answer: list[SessionInfo] | str | None) -> Text:
        text = Text(address)
        if answer is None:
            text.append("  listing…", self._style("muted"))
        elif isinstance(answer, str):
            text.append(f"  ✗ {answer}", self._style("loss"))
        else:
            names = {(s.hostname, s.name) for s in answer}
            text.append(f"  {_plural(len(names), 'session')}", self._style("muted"))
        return text

    def show(self, address: str, answer: Sequence[SessionInfo] | str) -> None:
        """What relayd ADDRESS answered: its live sessions, or the sentence of its error."""
        relay = self.relays.get(address)
        if relay is None:
            return
        answer = answer if isinstance(answer, str) else list(answer)
        self.answers[address] = answer
        relay.set_label(self._relay_label(address, answer))
        sessions = [] if isinstance(answer, str) else answer
        seen_hosts: set[tuple[str, str]] = set()
        seen: set[str] = set()
        for s in sorted(sessions, key=lambda s: (s.hostname, s.name)):
            hkey = (address, s.hostname)
            host = self._hosts.get(hkey)
            if host is None:
                host = relay.add(
                    s.hostname, data=f"{PREFIX}{address}/host/{s.hostname}", expand=True
                )
                self._hosts[hkey] = host
            seen_hosts.add(hkey)
            url = f"{address}/host/{s.hostname}/{s.name}"
            if url in seen:
                continue  # LTTng makes one relay session per buffer domain: one view of them
            seen.add(url)
            node = self._sessions.get(url)
            if node is None:
                node = self._sessions[url] = host.add_leaf(s.name, data=PREFIX + url)
            label = Text(s.name)
            same = [x for x in sessions if (x.hostname, x.name) == (s.hostname, s.name)]
            detail = _plural(sum(x.streams for x in same), "stream")
            viewers = sum(x.clients for x in same)
            if viewers:
                detail += f" · {_plural(viewers, 'viewer')}"
            label.append(f"  {detail}", self._style("muted"))
            node.set_label(label)
        for url in [u for u in self._sessions if u.startswith(address + "/") and u not in seen]:
            self._sessions.pop(url).remove()
        for hkey in [k for k in self._hosts if k[0] == address and k not in seen_hosts]:
            self._hosts.pop(hkey).remove()

    def find(self, data: str) -> TreeNode[str] | None:
        """The node whose data is DATA ("remote", or "remote:" + an address or URL)."""
        if data == REMOTE:
            return self.node
        url = data.removeprefix(PREFIX)
        return self._sessions.get(url) or self.relays.get(url) or next(
            (n for (a, h), n in self._hosts.items() if f"{a}/host/{h}" == url), None
        )

    def forget(self, address: str) -> bool:
        """Stop showing relayd ADDRESS (and the remote node with the last one)."""
        node = self.relays.pop(address, None)
        if node is None:
            return False
        for url in [u for u in self._sessions if u.startswith(address + "/")]:
            del self._sessions[url]
        for hkey in [k for k in self._hosts if k[0] == address]:
            del self._hosts[hkey]
        self.answers.pop(address, None)
        node.remove()
        if not self.relays and self.node is not None:
            self.node.remove()
            self.node = None
        return True
