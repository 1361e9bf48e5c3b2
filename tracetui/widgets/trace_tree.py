"""The tree of traces, their channels and the markers node, with state and losses at a glance.

Each node's data is its namespace path: ``"t"`` for a trace, ``"t/c"`` for a channel, and
``"markers"`` for the marker list. :meth:`TraceTree.show_state` updates the tree in place from a
:class:`~tracetui.core.client.state.NamespaceState` (labels changed, nodes added or removed), so the
cursor and the expansion survive the once-a-second refreshes.

| Key     | Action                        |
|---------|-------------------------------|
| `up`    | previous node                 |
| `down`  | next node                     |
| `left`  | collapse / go to parent       |
| `right` | expand                        |
| `enter` | select the node               |

(`space` is left to the screen: pause/follow of the live view.)

Below the markers, a "remote" node lists the lttng-relayds the user named, their hosts and
live sessions (widgets/remote_tree.py; its nodes' data start with ``remote:``).

| Component class           | What it styles                   |
|---------------------------|----------------------------------|
| `trace-tree--recording`   | a recording trace's marker       |
| `trace-tree--stopped`     | a stopped trace's marker         |
| `trace-tree--flag`        | allocated / global badges        |
| `trace-tree--flight`      | the flight badge                 |
| `trace-tree--loss`        | loss counts                      |
| `trace-tree--muted`       | secondary text                   |
"""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tracetui.core.client.state import ChannelState, NamespaceState, TraceState
from tracetui.widgets.remote_tree import RemoteNode

MARKERS = "markers"


def human_count(n: int) -> str:
    """1234 -> "1.2k", 3_400_000 -> "3.4M"."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(n)


def human_size(n: int) -> str:
    """262144 -> "256K" (the syntax the namespace accepts back)."""
    for unit, div in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


class TraceTree(Tree[str], inherit_bindings=False):
    """Traces and channels of the daemon, plus its markers."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("left", "cursor_parent_or_collapse", "Collapse", show=False),
        Binding("right", "expand_cursor", "Expand", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_home", "Top", show=False),
        Binding("end", "scroll_end", "Bottom", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = Tree.COMPONENT_CLASSES | {
        "trace-tree--recording",
        "trace-tree--stopped",
        "trace-tree--flag",
        "trace-tree--flight",
        "trace-tree--loss",
        "trace-tree--muted",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("daemon", data="", id=id)
        self.show_root = False
        self.guide_depth = 3
        self._by_path: dict[str, TreeNode[str]] = {}
        self._markers_node: TreeNode[str] | None = None
        self.border_title = "traces"
        # Below the markers: the lttng-relayds named, their hosts and live sessions.
        self.remote = RemoteNode(self, self._style)

    # ------------------------------------------------------------------ labels

    def _style(self, name: str) -> Style:
        # Rich styles from component classes, so the stylesheet decides the colours.
        return self.get_component_rich_style(f"trace-tree--{name}", partial=True)

    def trace_label(self, t: TraceState) -> Text:
        text = Text()
        if t.recording:
            text.append("● ", self._style("recording"))
            text.append(t.name, self._style("recording"))
        else:
            text.append("○ ", self._style("stopped"))
            text.append(t.name)
        # Dropped records (discarded, too big) are losses; a flight channel overwriting its
        # oldest records is doing its job, so overwrites show on the channel, muted, not as the
        # trace's losses.
        lost = sum(c.dropped for c in t.channels)
        if lost:
            text.append(f"  ✗{human_count(lost)}", self._style("loss"))
        return text

    def channel_label(self, c: ChannelState) -> Text:
        text = Text(c.name)
        badges = []
        if c.allocated:
            badges.append(("A", "flag"))
        if c.flight:
            badges.append(("F", "flight"))
        if c.is_global:
            badges.append(("G", "flag"))
        if badges:
            text.append(" ")
            for badge, style in badges:
                text.append(badge, self._style(style))
        if c.allocated:
            text.append(f" {human_count(c.recorded)}", self._style("muted"))
        if c.dropped:
            text.append(f" ✗{human_count(c.dropped)}", self._style("loss"))
        if c.overwritten:
            text.append(f" ↻{human_count(c.overwritten)}", self._style("muted"))
        return text

    # ------------------------------------------------------------------ state

    def show_state(self, state: NamespaceState) -> None:
        """Make the tree show STATE, keeping the cursor and expansion where they are."""
        seen: set[str] = set()
        for t in state.traces:
            tnode = self._by_path.get(t.name)
            if tnode is None:
                tnode = self._add_before_markers(t.name)
                self._by_path[t.name] = tnode
                tnode.expand()
            tnode.set_label(self.trace_label(t))
            seen.add(t.name)
            for c in t.channels:
                path = f"{t.name}/{c.name}"
                cnode = self._by_path.get(path)
                if cnode is None:
                    cnode = tnode.add_leaf(c.name, data=path)
                    self._by_path[path] = cnode
                cnode.set_label(self.channel_label(c))
                seen.add(path)
        gone = [p for p in self._by_path if p not in seen]
        for path in gone:
            node = self._by_path.pop(path)
            if "/" in path and path.split("/")[0] in gone:
                continue  # removed with its trace (removing it again raised ValueError)
            if node.tree is self and node.parent is not None:
                node.remove()
        if self._markers_node is None:
            self._markers_node = self.root.add_leaf(MARKERS, data=MARKERS, before=self.remote.node)
        label = Text(f"markers ({len(state.markers)})", self._style("muted"))
        self._markers_node.set_label(label)

    def _add_before_markers(self, name: str) -> TreeNode[str]:
        # Traces in name order, the markers node last.
        names = sorted([*(p for p in self._by_path if "/" not in p), name])
        index = names.index(name)
        after = names[index + 1] if index + 1 < len(names) else None
        if after is not None:
            return self.root.add(name, data=name, before=self._by_path[after])
        if self._markers_node is not None:
            return self.root.add(name, data=name, before=self._markers_node)
        return self.root.add(name, data=name, before=self.remote.node)

    @property
    def selected_path(self) -> str | None:
        """The namespace path of the node under the cursor (None: nothing)."""
        node = self.cursor_node
        return node.data if node is not None else None

    def select_path(self, path: str) -> bool:
        """Move the cursor to PATH; False when there is no such node."""
        node = self._markers_node if path == MARKERS else self._by_path.get(path)
        if node is None:
            node = self.remote.find(path)
        if node is None:
            return False
        if node.parent is not None:
            node.parent.expand()
        self._move_when_laid_out(node, 10)
        return True

    def _move_when_laid_out(self, node: TreeNode[str], tries: int) -> None:
        # A node added or expanded just now gets its line when the tree next lays out its lines.
        if node.line >= 0:
            self.move_cursor(node)
        elif tries > 0 and node.tree is self:
            self.call_after_refresh(self._move_when_laid_out, node, tries - 1)

    def action_cursor_parent_or_collapse(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.allow_expand and node.is_expanded:
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)

    def action_expand_cursor(self) -> None:
        node = self.cursor_node
        if node is not None and node.allow_expand:
            node.expand()
