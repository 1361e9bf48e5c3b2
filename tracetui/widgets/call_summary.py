"""The explorer's call tree: function events of a recorded trace (``tracetui run``) summed.

:func:`summarize` walks the trace's rows in time order (a worker drives it; it yields progress
between windows), pairs calls and returns per thread with the live view's tracker
(tracetui.core.pyfuncs.CallTracker) and adds each call to a tree per thread keyed by call path:
calls and total duration per path, like a profiler's call tree.  :func:`tree_lines` renders it,
children by total time::

    thread 4242  (3 calls)
    ├ __main__.main  1 call  31.0 µs
    │ ├ __main__.leaf  2 calls  2.4 µs
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from tracetui.core.pyfuncs import FUNCTION_EVENTS, CallTracker
from tracetui.core.trace.index import Progress, TraceIndex
from tracetui.widgets.call_tree import format_duration

__all__ = ["CallNode", "has_function_events", "summarize", "tree_lines"]

_EVENTS = FUNCTION_EVENTS | {"py_func"}


@dataclass
class CallNode:
    """One call path: how many calls, their total duration, and the calls made inside them."""

    name: str
    calls: int = 0
    total_ns: int = 0
    unfinished: int = 0  # calls whose return the trace does not hold
    children: dict[str, CallNode] = field(default_factory=dict)


def has_function_events(index: TraceIndex) -> bool:
    """Whether the trace defines Python functions (``py_func``: a `tracetui run` trace)."""
    markers = getattr(index.source, "markers", None)
    names = {m.name for m in markers.values()} if isinstance(markers, dict) else set()
    return "py_func" in names


def summarize(index: TraceIndex) -> Iterator[Progress | dict[int, CallNode]]:
    """Progress while walking the trace, then the call tree of every thread (tid -> root)."""
    tracker = CallTracker()
    roots: dict[int, CallNode] = {}
    stacks: dict[int, list[CallNode]] = {}
    total = len(index.cuts)
    for k in range(total):
        for item in index.window(k):
            cls = getattr(item, "cls", None)
            if cls is None or cls.name not in _EVENTS:
                continue
            step = tracker.feed(cls.name, item.fields, item.ts_ns)
            if step is None:
                continue
            root = roots.get(step.tid)
            if root is None:
                root = roots[step.tid] = CallNode(f"thread {step.tid}")
                stacks[step.tid] = [root]
            stack = stacks[step.tid]
            if step.kind == "call":
                parent = stack[-1]
                node = parent.children.get(step.func)
                if node is None:
                    node = parent.children[step.func] = CallNode(step.func)
                node.calls += 1
                root.calls += 1
                stack.append(node)
            elif not step.unpaired and len(stack) > 1:
                stack.pop().total_ns += step.duration_ns or 0
        if k % 16 == 0:
            yield Progress(k, total)
    for stack in stacks.values():
        for node in stack[1:]:
            node.unfinished += 1
    yield Progress(total, total)
    yield roots


def _plural(n: int, what: str) -> str:
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def tree_lines(roots: dict[int, CallNode], limit: int = 500) -> list[str]:
    """The trees as text lines (at most LIMIT, then a line saying how many were left out)."""
    out: list[str] = []
    left = 0

    def walk(node: CallNode, prefix: str) -> None:
        nonlocal left
        kids = sorted(node.children.values(), key=lambda c: (-c.total_ns, c.name))
        for i, child in enumerate(kids):
            if len(out) >= limit:
                left += 1
                continue
            last = i == len(kids) - 1
            extra = f", {child.unfinished} unfinished" if child.unfinished else ""
            out.append(
                f"{prefix}{'└' if last else '├'} {child.name}  {_plural(child.calls, 'call')}"
                f"  {format_duration(child.total_ns)}{extra}"
            )
            walk(child, prefix + ("  " if last else "│ "))

    for tid in sorted(roots):
        out.append(f"{roots[tid].name}  ({_plural(roots[tid].calls, 'call')})")
        walk(roots[tid], "")
    if left:
        out.append(f"... {left:,} more call paths")
    if not out:
        out.append("no function events")
    return out
