"""Event filters for the explorer: event-name globs and a field predicate, compiled once.

A field predicate is a small expression over an event's fields::

    pid == 42 and comm == "bash"
    (prev_pid != 0 or next_pid >= 0x100) and not comm =~ "^kworker"
    name == "sched_switch" and cpu < 2 and channel != "main"

- comparisons ``==, !=, <, <=, >, >=`` between a name and a value (either side), and ``=~``
  (and ``!~``) a regular expression on strings (``re.search``);
- ``and``, ``or``, ``not``, parentheses;
- values: integers (decimal, ``0x`` hex, ``0o``, ``0b``, negative), floats, strings in double
  or single quotes (backslash escapes), ``true``/``false``;
- names: event fields, or the pseudo-fields ``name`` (the event name), ``cpu`` and
  ``channel``.  A comparison on a field the event does not have is false (so is one between
  a string and a number).

``compile_predicate(text)`` parses once and returns a :class:`Predicate`; ``bind(...)`` makes,
for one event class (name, CPU, channel and field names are fixed per class), either a
constant (True/False: the pseudo-fields fold away) or a generated function of the event's value
tuple, ``f(values) -> bool`` (Python source compiled once per class: indices, constants and
regexes baked in), which is what lets a scan run a predicate at decoding speed.

Errors are :class:`PredicateError`: one line, naming the column (1-based) and what was expected.

``NameFilter("sched_*, !sched_stat*")`` matches event names against globs (``fnmatch``;
several, comma or space separated; a leading ``!`` excludes).  :class:`EventFilter` combines
both and answers per class.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PSEUDO_FIELDS",
    "EventFilter",
    "NameFilter",
    "Predicate",
    "PredicateError",
    "compile_predicate",
]

PSEUDO_FIELDS = ("name", "cpu", "channel")
ValueTest = Callable[[tuple[Any, ...]], bool]
Bound = bool | ValueTest


class PredicateError(ValueError):
    """A bad expression: ``message`` and the 1-based ``column`` it points at."""

    def __init__(self, message: str, column: int, text: str = "") -> None:
        self.message = message
        self.column = column
        self.text = text
        super().__init__(f"column {column}: {message}")


# -- tokens ------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>-?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+
        |(?:\d[\d_]*\.\d*|\.\d+|\d[\d_]*)(?:[eE][-+]?\d+)?))
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|=~|!~|<|>|\(|\))
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "true", "false"}
_COMPARE = {"==", "!=", "<", "<=", ">", ">="}
_MATCH = {"=~", "!~"}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # num, str, op, name, kw, end
    text: str
    col: int  # 1-based
    value: Any = None


def _unquote(raw: str, col: int) -> str:
    out: list[str] = []
    i, body = 0, raw[1:-1]
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise PredicateError(f"unknown escape \\{nxt} in a string", col + i + 1)
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _tokens(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        col = pos + 1
        if m is None:
            c = text[pos]
            if c in "\"'":
                raise PredicateError(f"unterminated string (no closing {c})", col)
            if c == "=":
                raise PredicateError('unknown operator "=" (use "==")', col)
            if c == "&" or c == "|":
                raise PredicateError(f'unknown operator "{c}" (use "and" / "or")', col)
            raise PredicateError(f"unexpected character {c!r}", col)
        kind = m.lastgroup or ""
        raw = m.group()
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "num":
            # "3abc" would tokenize as 3 then a name: refuse a number glued to letters.
            if pos < len(text) and (text[pos].isalnum() or text[pos] == "_"):
                raise PredicateError(f"bad number {raw + text[pos]!r}…", col)
            try:
                clean = raw.replace("_", "")
                if re.fullmatch(r"-?0[xXoObB].*", clean):
                    value: Any = int(clean, 0)
                elif any(ch in clean for ch in ".eE"):
                    value = float(clean)
                else:
                    value = int(clean, 10)
            except ValueError:
                raise PredicateError(f"bad number {raw!r}", col) from None
            toks.append(_Tok("num", raw, col, value))
        elif kind == "str":
            toks.append(_Tok("str", raw, col, _unquote(raw, col)))
        elif kind == "name" and raw in _KEYWORDS:
            if raw in ("true", "false"):
                toks.append(_Tok("num", raw, col, raw == "true"))
            else:
                toks.append(_Tok("kw", raw, col))
        else:
            toks.append(_Tok(kind, raw, col))
    toks.append(_Tok("end", "", len(text) + 1))
    return toks


# -- syntax tree ------------------------------------------------------------------

# ("and", a, b) | ("or", a, b) | ("not", a) | ("cmp", field, op, value) | ("match", field, neg,
# pattern)
Node = tuple[Any, ...]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def _describe(self, tok: _Tok) -> str:
        return "the end of the expression" if tok.kind == "end" else f"{tok.text!r}"

    def fail(self, expected: str, tok: _Tok | None = None) -> PredicateError:
        tok = tok or self.tok
        return PredicateError(f"expected {expected}, found {self._describe(tok)}", tok.col)

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise PredicateError("empty expression", 1)
        node = self.parse_or()
        if self.tok.kind != "end":
            raise self.fail('"and", "or" or the end')
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.tok.kind == "kw" and self.tok.text == "or":
            self.i += 1
            node = ("or", node, self.parse_and())
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while self.tok.kind == "kw" and self.tok.text == "and":
            self.i += 1
            node = ("and", node, self.parse_not())
        return node

    def parse_not(self) -> Node:
        if self.tok.kind == "kw" and self.tok.text == "not":
            self.i += 1
            return ("not", self.parse_not())
        return self.parse_atom()

    def parse_atom(self) -> Node:
        tok = self.tok
        if tok.kind == "op" and tok.text == "(":
            self.i += 1
            node = self.parse_or()
            if not (self.tok.kind == "op" and self.tok.text == ")"):
                raise self.fail('")"')
            self.i += 1
            return node
        if tok.kind == "name":
            self.i += 1
            op = self.tok
            if op.kind == "op" and op.text in _MATCH:
                self.i += 1
                pat = self.tok
                if pat.kind != "str":
                    raise self.fail(f'a regular expression in quotes after "{op.text}"')
                self.i += 1
                try:
                    rx = re.compile(pat.value)
                except re.error as e:
                    raise PredicateError(f"bad regular expression: {e}", pat.col) from None
                return ("match", tok.text, op.text == "!~", rx)
            if op.kind == "op" and op.text in _COMPARE:
                self.i += 1
                val = self.tok
                if val.kind not in ("num", "str"):
                    raise self.fail(f'a number or a quoted string after "{op.text}"')
                self.i += 1
                return ("cmp", tok.text, op.text, val.value)
            raise self.fail(f"a comparison (==, !=, <, <=, >, >=, =~) after {tok.text!r}", op)
        if tok.kind in ("num", "str"):
            # A value first: "42 == pid".
            self.i += 1
            op = self.tok
            if not (op.kind == "op" and op.text in _COMPARE):
                raise self.fail("a comparison (==, !=, <, <=, >, >=)", op)
            self.i += 1
            name = self.tok
            if name.kind != "name":
                raise self.fail(f'a field name after "{op.text}"')
            self.i += 1
            return ("cmp", name.text, _FLIP[op.text], tok.value)
        if tok.kind == "kw":
            raise self.fail('a field name, a value, "not" or "("')
        raise self.fail('a field name, a value, "not" or "("')


def _fields(node: Node, out: set[str]) -> None:
    if node[0] in ("and", "or"):
        _fields(node[1], out)
        _fields(node[2], out)
    elif node[0] == "not":
        _fields(node[1], out)
    else:
        out.add(node[1])


# -- evaluation ------------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _const_test(node: Node, value: Any) -> bool:
    """A comparison whose left side is known now (a pseudo-field)."""
    if node[0] == "match":
        hit = isinstance(value, str) and node[3].search(value) is not None
        return hit != node[2]
    try:
        return bool(_OPS[node[2]](value, node[3]))
    except TypeError:
        return False


class Predicate:
    """A parsed field predicate (see the module docstring)."""

    def __init__(self, text: str, tree: Node) -> None:
        self.text = text
        self.tree = tree
        names: set[str] = set()
        _fields(tree, names)
        self.names = frozenset(names)

    def __repr__(self) -> str:
        return f"Predicate({self.text!r})"

    def fold(
        self,
        name: str,
        cpu: int,
        channel: str,
        field_names: Sequence[str],
        atom: Callable[[Node, int], Any],
    ) -> Any:
        """This predicate for one event class with what the class decides folded away: True,
        False, or a tree of ("and", a, b), ("or", a, b), ("not", a) over ATOM(test, position)
        for each test of a field the class has (the one folding, for bind and the C filter)."""
        index = {f: i for i, f in enumerate(field_names)}
        pseudo = {"name": name, "cpu": cpu, "channel": channel}

        def gen(node: Node) -> Any:
            kind = node[0]
            if kind in ("and", "or"):
                a, b = gen(node[1]), gen(node[2])
                absorbing = kind == "or"  # True absorbs an or, False an and
                if a is absorbing or b is absorbing:
                    return absorbing
                if a is (not absorbing):
                    return b
                if b is (not absorbing):
                    return a
                return (kind, a, b)
            if kind == "not":
                a = gen(node[1])
                return (not a) if isinstance(a, bool) else ("not", a)
            field = node[1]
            if field in index:  # a real field wins over a pseudo-field of the same name
                return atom(node, index[field])
            if field in pseudo:
                return _const_test(node, pseudo[field])
            return False  # the class has no such field

        return gen(self.tree)

    def bind(self, name: str, cpu: int, channel: str, field_names: Sequence[str]) -> Bound:
        """This predicate for one event class: a constant, or a function of the value tuple."""
        index = {f: i for i, f in enumerate(field_names)}
        pseudo = {"name": name, "cpu": cpu, "channel": channel}
        consts: list[Any] = []

        def atom(node: Node, pos: int) -> str:
            consts.append(node[3])
            c = f"_c{len(consts) - 1}"
            if node[0] == "match":
                hit = f"(type(v[{pos}]) is str and {c}.search(v[{pos}]) is not None)"
                return f"(not {hit})" if node[2] else hit
            # An ordering between a str and a number raises TypeError: the generated
            # function then falls back to the node-by-node evaluator (only that test fails).
            return f"(v[{pos}] {node[2]} {c})"

        def code(t: Any) -> str:
            if isinstance(t, str):
                return t
            if t[0] == "not":
                return f"(not {code(t[1])})"
            return f"({code(t[1])} {t[0]} {code(t[2])})"

        folded = self.fold(name, cpu, channel, field_names, atom)
        if isinstance(folded, bool):
            return folded
        body = code(folded)
        env: dict[str, Any] = {f"_c{i}": c for i, c in enumerate(consts)}
        src = f"def _pred(v):\n    try:\n        return bool({body})\n    except TypeError:\n"
        src += "        return _slow(v)\n"
        env["_slow"] = lambda v: _slow_eval(self.tree, v, index, pseudo)
        exec(compile(src, f"<predicate {self.text!r}>", "exec"), env)
        fn: ValueTest = env["_pred"]
        return fn

    def evaluate(
        self, fields: dict[str, Any], name: str = "", cpu: int = -1, channel: str = ""
    ) -> bool:
        """Evaluate on one event given as a dict (slow path; tests and one-offs)."""
        b = self.bind(name, cpu, channel, tuple(fields))
        return b if isinstance(b, bool) else b(tuple(fields.values()))


def _slow_eval(
    node: Node, v: tuple[Any, ...], index: dict[str, int], pseudo: dict[str, Any]
) -> bool:
    """Node-by-node evaluation, where a type mismatch makes only its comparison false."""
    kind = node[0]
    if kind == "and":
        return _slow_eval(node[1], v, index, pseudo) and _slow_eval(node[2], v, index, pseudo)
    if kind == "or":
        return _slow_eval(node[1], v, index, pseudo) or _slow_eval(node[2], v, index, pseudo)
    if kind == "not":
        return not _slow_eval(node[1], v, index, pseudo)
    field = node[1]
    if field in index:
        return _const_test(node, v[index[field]])
    if field in pseudo:
        return _const_test(node, pseudo[field])
    return False


def compile_predicate(text: str) -> Predicate | None:
    """Parse TEXT (None for an empty text: everything passes); raises PredicateError."""
    if not text.strip():
        return None
    try:
        return Predicate(text, _Parser(text).parse())
    except PredicateError as e:
        e.text = text
        raise


# -- event names ------------------------------------------------------------------


class NameFilter:
    """Event-name globs: ``"sched_*, proc_exec !sched_stat*"`` (empty: every name)."""

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        globs = [g for g in re.split(r"[,\s]+", self.text) if g]
        include = [g for g in globs if not g.startswith("!")]
        exclude = [g[1:] for g in globs if g.startswith("!")]
        for g in exclude:
            if not g:
                raise PredicateError('"!" must be followed by a glob', self.text.index("!") + 1)
        self._inc = re.compile("|".join(fnmatch.translate(g) for g in include)) if include else None
        self._exc = re.compile("|".join(fnmatch.translate(g) for g in exclude)) if exclude else None

    def __bool__(self) -> bool:
        return bool(self.text)

    def matches(self, name: str) -> bool:
        if self._inc is not None and not self._inc.match(name):
            return False
        return self._exc is None or not self._exc.match(name)


class EventFilter:
    """Name globs and a field predicate together, answered per event class."""

    def __init__(self, names: str = "", predicate: str = "") -> None:
        self.names = NameFilter(names)
        self.predicate_text = predicate.strip()
        self.predicate = compile_predicate(predicate)

    def __bool__(self) -> bool:
        return bool(self.names) or self.predicate is not None

    def describe(self) -> str:
        parts = []
        if self.names:
            parts.append(self.names.text)
        if self.predicate is not None:
            parts.append(self.predicate.text)
        return " where ".join(parts) if len(parts) == 2 else (parts[0] if parts else "")

    def bind(self, name: str, cpu: int, channel: str, field_names: Sequence[str]) -> Bound:
        """False (no event of this class passes), True (all do), or a test of the values."""
        if not self.names.matches(name):
            return False
        if self.predicate is None:
            return True
        return self.predicate.bind(name, cpu, channel, field_names)
