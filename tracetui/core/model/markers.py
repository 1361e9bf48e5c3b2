"""Marker definitions: the one ``Marker`` type and the one "id name format" line codec.

A marker is an event class: the daemon's 16-bit id, a name (a C identifier) and a format
(:mod:`tracetui.core.model.formats`).  Id 0xFFFF (:data:`RESERVED_ID`) is never handed out:
the ring refuses it.  The daemon's ``markers`` file is one ``id name format`` line per marker;
:func:`marker_line` writes such a line and :func:`parse_marker_lines` reads the file back
(the CLI's ``--json``, the console, live subscriptions).
"""

from __future__ import annotations

from dataclasses import dataclass

from tracetui.core.model.formats import MarkerFormat, check_event_name, parse_format

__all__ = [
    "MAX_MARKERS",
    "RESERVED_ID",
    "Marker",
    "marker_line",
    "marker_table",
    "parse_marker_lines",
]

RESERVED_ID = 0xFFFF
MAX_MARKERS = RESERVED_ID  # ids 0 .. 0xFFFE


@dataclass(frozen=True)
class Marker:
    """One event class of a trace: the daemon's 16-bit id, its name and format."""

    id: int
    name: str
    format: MarkerFormat

    @classmethod
    def make(cls, id: int, name: str, fmt: str | MarkerFormat) -> Marker:
        """Validate and build; ValueError with one sentence."""
        if not isinstance(id, int) or not 0 <= id < RESERVED_ID:
            raise ValueError(f"marker id {id!r} must be an integer in 0..{RESERVED_ID - 1}")
        check_event_name(name)
        return cls(id, name, fmt if isinstance(fmt, MarkerFormat) else parse_format(fmt))

    def line(self) -> str:
        return marker_line(self.id, self.name, self.format.text)


def marker_line(id: int, name: str, fmt: str) -> str:
    """One line of the ``markers`` file (no trailing space for a format without fields)."""
    return f"{id} {name} {fmt}".rstrip()


def parse_marker_lines(text: str) -> list[tuple[int, str, str]]:
    """(id, name, format text) per line of a ``markers`` read; other lines are skipped."""
    out = []
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) >= 2 and parts[0].isdigit():
            out.append((int(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""))
    return out


def marker_table(text: str) -> dict[int, Marker]:
    """A ``markers`` read as ``{id: Marker}``; ValueError (one sentence) for a bad line."""
    return {i: Marker.make(i, name, fmt) for i, name, fmt in parse_marker_lines(text)}
