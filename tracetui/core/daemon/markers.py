"""The marker registry: each (name, format) pair gets a stable 16-bit event id.

This module owns id assignment only (the recording work owns formats' meaning, registration over
netlink and the metadata). Ids are handed out from 0 upwards in registration order; registering
the same name and format again returns the same id, so a process that restarts, or several
processes using one marker, all agree. Id 0xFFFF is reserved (core/model/markers.py).
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from dataclasses import dataclass

from tracetui.core.errors import TraceError
from tracetui.core.model.markers import MAX_MARKERS, marker_line

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_FORMAT = 1024


@dataclass(frozen=True)
class Registration:
    """One registered (name, format) pair and its id; the format is kept as registered text
    (the recorder parses it into a model Marker when it validates a registration)."""

    id: int
    name: str
    format: str

    def line(self) -> str:
        return marker_line(self.id, self.name, self.format)


class MarkerRegistry:
    """name + format -> id, and back."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Registration] = {}
        self._by_id: list[Registration] = []

    def register(self, name: str, fmt: str) -> int:
        """The id of (NAME, FMT), assigned on first registration. TraceError if invalid or full."""
        key = (name, fmt)
        m = self._by_key.get(key)
        if m is not None:
            return m.id
        if not _NAME_RE.match(name):
            raise TraceError(
                errno.EINVAL,
                f"'{name}' is not a marker name: use letters, digits and '_' (subsystem_event)",
            )
        if len(fmt) > MAX_FORMAT or "\n" in fmt or "\0" in fmt:
            raise TraceError(
                errno.EINVAL, f"the format of marker {name} must be one line of <= {MAX_FORMAT}"
            )
        if len(self._by_id) >= MAX_MARKERS:
            raise TraceError(errno.ENOSPC, f"all {MAX_MARKERS} marker ids are in use")
        m = Registration(len(self._by_id), name, fmt)
        self._by_id.append(m)
        self._by_key[key] = m
        return m.id

    def get(self, marker_id: int) -> Registration | None:
        return self._by_id[marker_id] if 0 <= marker_id < len(self._by_id) else None

    def lookup(self, name: str, fmt: str) -> Registration | None:
        return self._by_key.get((name, fmt))

    def by_name(self, name: str) -> list[Registration]:
        return [m for m in self._by_id if m.name == name]

    def lines(self) -> str:
        """What a read of ``markers`` returns: one "id name format" line per marker."""
        return "\n".join(m.line() for m in self._by_id)

    def __iter__(self) -> Iterator[Registration]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)
