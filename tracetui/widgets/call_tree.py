"""The live view's call-tree mode: function events as an indented tree per thread.

Function events (tracetui.core.pytrace) carry a thread id and a function id; this module follows
each thread's stack as rows arrive (tracetui.core.pyfuncs.CallTracker) and stores, with each
row, what the tree shows: the depth of the call, the function's qualified name, and at a return
the call's duration.  :func:`tree_text` renders such a row::

    [4242] ├ __main__.main
    [4242] │ ├ __main__.leaf
    [4242] │ └ __main__.leaf  1.2 µs
    [4242] └ __main__.main  31.0 µs
    [4242] ✗ __main__.failing  raised ValueError  0.8 µs

Log records (``py_log``) show their level and message in every mode (:func:`log_text`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from tracetui.core.pyfuncs import FUNCTION_EVENTS, CallTracker

TREE_EVENTS = FUNCTION_EVENTS | {"py_func"}
LOG_EVENT = "py_log"
# What annotate() appends to a function event's values: (depth, duration ns or -1, name).
EXTRA = 3


def format_duration(ns: int) -> str:
    if ns < 1_000:
        return f"{ns} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.1f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.1f} ms"
    return f"{ns / 1e9:.2f} s"


class CallTreeState:
    """Per-view state: the stacks of every thread seen, and the function names."""

    def __init__(self) -> None:
        self.tracker = CallTracker()

    def annotate(self, rows: list[Any], kinds: Sequence[Any], mono_ns: Any) -> list[Any]:
        """ROWS with each function event's values extended by (depth, duration, name)."""
        out = []
        feed = self.tracker.feed
        for row in rows:
            kind = kinds[row[1]]
            if kind.name in TREE_EVENTS and kind.format is not None:
                values = row[2]
                step = feed(kind.name, dict(zip(kind.format.names, values, strict=False)),
                            mono_ns(row))  # fmt: skip
                if step is not None:
                    dur = -1 if step.duration_ns is None else step.duration_ns
                    row = (row[0], row[1], (*values, step.depth, dur, step.func))
            out.append(row)
        return out


def tree_text(name: str, values: tuple[Any, ...]) -> str | None:
    """The call-tree line of a function event (None: not an annotated function event)."""
    if name not in FUNCTION_EVENTS or len(values) < EXTRA + 2:
        return None
    tid = values[0]
    depth, dur, func = values[-3], values[-2], values[-1]
    bars = "│ " * depth
    if name in ("py_call", "py_c_call"):
        return f"[{tid}] {bars}├ {func}"
    took = f"  {format_duration(dur)}" if dur >= 0 else "  (call not seen)"
    if name == "py_raise":
        exc = values[2] or "an exception"
        return f"[{tid}] {bars}✗ {func}  raised {exc}{took}"
    return f"[{tid}] {bars}└ {func}{took}"


def log_text(values: tuple[Any, ...]) -> str:
    """A py_log record: level, logger and message first (tid level line logger msg file)."""
    tid, level, line, logger, msg, file = values[:6]
    return f"{logging.getLevelName(level)} {logger}: {msg}  ({file}:{line}, tid {tid})"
