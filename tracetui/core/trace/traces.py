"""Opening a recorded trace with the reader its metadata calls for (core/trace/source.py)."""

from __future__ import annotations

import os

from tracetui.core.trace.reader import TraceDirectory
from tracetui.core.trace.source import TraceSource

__all__ = ["open_trace"]


def open_trace(path: str | os.PathLike[str]) -> TraceSource:
    """Open a trace directory; raises TraceFormatError (one sentence) for what it cannot read."""
    return TraceDirectory(path)
