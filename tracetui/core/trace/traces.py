"""Opening a recorded trace with the reader its metadata calls for (core/trace/source.py)."""

from __future__ import annotations

import os
import re

from tracetui.core.trace.ctf import CTFTrace
from tracetui.core.trace.reader import TraceDirectory
from tracetui.core.trace.source import TraceSource

__all__ = ["open_trace"]

_TRACETUI = re.compile(rb'tracer_name\s*=\s*"tracetui"\s*;')


def _is_tracetui(path: str) -> bool:
    """tracetui's own traces say ``tracer_name = "tracetui"`` in their plain-text metadata env."""
    try:
        with open(os.path.join(path, "metadata"), "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return _TRACETUI.search(head) is not None


def _has_metadata(path: str) -> bool:
    return any("metadata" in files for _, _, files in os.walk(path))


def open_trace(path: str | os.PathLike[str]) -> TraceSource:
    """Open a trace directory; raises TraceFormatError (one sentence) for what it cannot read."""
    p = os.fspath(path)
    if _is_tracetui(p) or not _has_metadata(p):
        return TraceDirectory(p)  # (also for its one-sentence errors about a missing metadata)
    return CTFTrace(p)
