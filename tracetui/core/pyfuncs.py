"""Reading function events back: function ids to names, calls paired per thread.

The function tracer (tracetui.core.pytrace) writes ``py_func`` definitions before the first
event of each function; :class:`FunctionTable` collects them from events seen in time order,
and :class:`CallTracker` follows each thread's stack, so a reader (dump, the console's call
tree, tests) can show ``module.qualname``, the depth of a call and its duration at return.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

CALL_EVENTS = frozenset({"py_call", "py_c_call"})
RETURN_EVENTS = frozenset({"py_return", "py_raise", "py_c_return"})
FUNCTION_EVENTS = CALL_EVENTS | RETURN_EVENTS


@dataclass(frozen=True)
class Function:
    id: int
    name: str
    file: str
    line: int


class FunctionTable:
    """Function id -> Function, from the ``py_func`` events fed to :meth:`feed`."""

    def __init__(self) -> None:
        self.functions: dict[int, Function] = {}

    def feed(self, name: str, fields: dict[str, Any]) -> None:
        if name == "py_func":
            fid = int(fields["func"])
            self.functions[fid] = Function(fid, fields["name"], fields["file"], int(fields["line"]))

    def name(self, fid: int) -> str:
        f = self.functions.get(fid)
        return f.name if f is not None else f"func#{fid:x}"


@dataclass
class Step:
    """One function event placed in its thread's call tree."""

    kind: str  # "call", "return", "raise"
    tid: int
    func: str
    depth: int  # of the call (0: outermost seen)
    duration_ns: int | None = None  # at a return: since its call
    exc: str = ""
    unpaired: bool = False  # a return whose call was not seen (tracing started inside it)


@dataclass
class CallTracker:
    """Per-thread stacks of (function id, start ns): pairs calls and returns."""

    table: FunctionTable = field(default_factory=FunctionTable)
    stacks: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def feed(self, name: str, fields: dict[str, Any], ts_ns: int) -> Step | None:
        """The step for a function event (None for other events; py_func is learnt)."""
        if name == "py_func":
            self.table.feed(name, fields)
            return None
        if name not in FUNCTION_EVENTS:
            return None
        tid = int(fields["tid"])
        fid = int(fields["func"])
        stack = self.stacks.setdefault(tid, [])
        if name in CALL_EVENTS:
            stack.append((fid, ts_ns))
            return Step("call", tid, self.table.name(fid), len(stack) - 1)
        kind = "raise" if name == "py_raise" else "return"
        exc = str(fields.get("exc", ""))
        if stack and stack[-1][0] == fid:
            _, t0 = stack.pop()
            return Step(kind, tid, self.table.name(fid), len(stack), ts_ns - t0, exc)
        return Step(kind, tid, self.table.name(fid), len(stack), None, exc, unpaired=True)


# -- dumps ---------------------------------------------------------------------------------------

_DEF_TEXT = re.compile(rb' py_func: func=(\d+), line=\d+, name="((?:[^"\\]|\\.)*)"')
_USE_TEXT = re.compile(rb" py_(?:c_)?(?:call|return|raise): tid=\d+, func=(\d+)")
_DEF_JSON = re.compile(rb'"name": "py_func", "fields": \{"func": (\d+), "line": \d+, '
                       rb'"name": ("(?:[^"\\]|\\.)*")')  # fmt: skip
_USE_JSON = re.compile(rb'"name": "py_(?:c_)?(?:call|return|raise)", "fields": \{"tid": -?\d+, '
                       rb'"func": (\d+)')  # fmt: skip


def has_function_events(marker_names: Iterable[str]) -> bool:
    return "py_func" in set(marker_names)


def annotate_dump(chunks: Iterable[bytes], json_lines: bool) -> Iterator[bytes]:
    """`tracetui dump` output with each function event's qualified name added.

    Text lines get ``, function="module.qualname"`` after their fields; JSON lines a
    ``"function"`` key next to ``"fields"``.  Lines come in time order, so a function's
    ``py_func`` definition is seen before its events.
    """
    names: dict[bytes, bytes] = {}
    define, use = (_DEF_JSON, _USE_JSON) if json_lines else (_DEF_TEXT, _USE_TEXT)
    for chunk in chunks:
        out = []
        for line in chunk.split(b"\n"):
            m = use.search(line)
            if m is not None:
                name = names.get(m.group(1))
                if name is not None:
                    if json_lines:
                        line = line[:-1] + b', "function": ' + name + b"}"
                    else:
                        line = line + b", function=" + name
            else:
                d = define.search(line)
                if d is not None:
                    names[d.group(1)] = d.group(2) if json_lines else b'"' + d.group(2) + b'"'
            out.append(line)
        yield b"\n".join(out)
