"""Event filter rules and routing: which events a trace accepts, and which channel gets each one.

This module owns the rule language of the namespace's ``filter`` files and the routing decision:

- a trace's filter starts as ``*`` (accept all); writing ``0`` removes every rule (accept none);
  a name or a glob (``sched_switch``, ``sched_*``, ``proc_?xit``) adds a rule; ``!name`` removes
  the rule ``name`` when it exists, and otherwise adds an exclusion (so ``!sched_switch`` on the
  default filter means "everything but sched_switch");
- an event is accepted when some positive rule matches it and no exclusion does;
- a channel's filter uses the same language and starts empty: it names the events routed to it;
- routing: an event the trace accepts goes to the first channel (in creation order) whose filter
  names it, else to ``main``.

One write may hold several rules separated by spaces, commas or newlines; they apply in order and
all-or-nothing, so writing back what a read returned (after ``0``) restores a filter exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

ACCEPT_ALL = "*"
NONE = "0"
_RULE_RE = re.compile(r"^!?[A-Za-z0-9_.*?\[\]-]{1,128}$")
_SPLIT_RE = re.compile(r"[\s,]+")


class FilterRules:
    """An ordered list of rules; ``accepts`` says whether an event name passes."""

    __slots__ = ("_excl", "_pos", "_rules")

    def __init__(self, rules: Iterable[str] = (ACCEPT_ALL,)) -> None:
        self._rules: list[str] = []
        self._pos: tuple[str, ...] = ()
        self._excl: tuple[str, ...] = ()
        self.apply(" ".join(rules) if rules else NONE)

    @classmethod
    def empty(cls) -> FilterRules:
        return cls(())

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(self._rules)

    def text(self) -> str:
        """What a read of the filter file returns: one rule per line, or "0" for none."""
        return "\n".join(self._rules) if self._rules else NONE

    def apply(self, text: str) -> bool:
        """Apply the rules written as TEXT; ValueError (one sentence) leaves the rules unchanged.

        Returns whether the rules changed.
        """
        tokens = [t for t in _SPLIT_RE.split(text.strip()) if t]
        if not tokens:
            raise ValueError(
                "an empty filter rule: write 0, a name, a glob such as sched_*, or !name"
            )
        rules = list(self._rules)
        for tok in tokens:
            if tok == NONE:
                rules.clear()
                continue
            if not _RULE_RE.match(tok) or tok == "!":
                raise ValueError(
                    f"'{tok}' is not a filter rule: use 0, an event name, a glob such as sched_*, "
                    "or !name"
                )
            if tok.startswith("!"):
                name = tok[1:]
                if name in rules:
                    rules.remove(name)
                elif tok not in rules:
                    rules.append(tok)
            else:
                if f"!{tok}" in rules:
                    rules.remove(f"!{tok}")
                if tok not in rules:
                    rules.append(tok)
        changed = rules != self._rules
        self._rules = rules
        self._pos = tuple(r for r in rules if not r.startswith("!"))
        self._excl = tuple(r[1:] for r in rules if r.startswith("!"))
        return changed

    def accepts(self, name: str) -> bool:
        """True when a positive rule matches NAME and no exclusion does."""
        return any(fnmatchcase(name, p) for p in self._pos) and not any(
            fnmatchcase(name, x) for x in self._excl
        )

    names = accepts  # a channel filter "names" the events it accepts

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FilterRules) and other._rules == self._rules

    def __hash__(self) -> int:
        return hash(tuple(self._rules))

    def __repr__(self) -> str:
        return f"FilterRules({self._rules!r})"


def route(
    event: str,
    trace_filter: FilterRules,
    channels: Sequence[tuple[str, FilterRules]],
    default: str = "main",
) -> str | None:
    """The channel an event goes to in one trace, or None when the trace does not accept it.

    CHANNELS are (name, routing filter) in creation order; the first that names the event wins.
    """
    if not trace_filter.accepts(event):
        return None
    for name, rules in channels:
        if rules.names(event):
            return name
    return default
