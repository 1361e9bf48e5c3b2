"""The logging bridge: each ``logging`` record as a tracetui event.

    py_log   tid %d level %d line %d logger %s msg %s file %s

A :class:`TraceHandler` is an ordinary ``logging.Handler``: logging calls it only for records
at or above its level (checked before any work of ours), and it formats a record's message
(``record.getMessage()``) only when a trace wants the event.  It never raises into the
program: a message that cannot be formatted is recorded as its unformatted template, and
emitting cannot fail (see tracetui.probe).  ``tid`` is the kernel thread id of the thread
that logged, the same as the function events' (tracetui.core.pytrace).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from tracetui import probe

LOG_EVENT = "py_log"
LOG_FORMAT = "tid %d level %d line %d logger %s msg %s file %s"


def _gettid() -> Any:
    from tracetui.core import cmarker

    if cmarker._ttpy is not None:
        return cmarker._ttpy.gettid
    import threading

    return threading.get_native_id if hasattr(threading, "get_native_id") else os.getpid


class TraceHandler(logging.Handler):
    """Records log records as ``py_log`` events; level-filtered like any handler."""

    def __init__(self, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        self._marker = probe.marker(LOG_EVENT, LOG_FORMAT)
        self._tid = _gettid()

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: the marker is thread-safe and writes each event whole.
        if self.filters and not self.filter(record):
            return False
        m = self._marker
        if m.enabled:
            try:
                msg = record.getMessage()
            except Exception:  # the program's bad arguments: keep what it wrote
                msg = str(record.msg)
            m(self._tid(), record.levelno, record.lineno or 0, record.name, msg,
              record.pathname or "")  # fmt: skip
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)


_installed: TraceHandler | None = None


def install(level: int) -> TraceHandler:
    """Record every record at LEVEL and above that the program's loggers let through, without
    adding a handler anywhere (what `tracetui run --logging` does).

    A handler on the root logger would change the program: ``logging.basicConfig()`` does
    nothing once the root has a handler, and logging's last-resort handler (WARNING and up to
    stderr when no handler exists) would fall silent.  So the bridge sits in
    ``Logger.callHandlers``, which every record a logger accepts goes through once.
    """
    global _installed
    if _installed is not None:
        _installed.setLevel(level)
        return _installed
    handler = TraceHandler(level)
    call_handlers = logging.Logger.callHandlers

    def callHandlers(self: logging.Logger, record: logging.LogRecord) -> None:
        if record.levelno >= handler.level:
            handler.handle(record)
        call_handlers(self, record)

    logging.Logger.callHandlers = callHandlers  # type: ignore[method-assign]
    _installed = handler
    return handler


def level_of(text: str | int | None) -> int:
    """A level given as a name ("INFO") or a number; ValueError with a sentence."""
    if text is None:
        return logging.NOTSET
    if isinstance(text, int):
        return text
    t = text.strip()
    if t.isdigit():
        return int(t)
    value = logging.getLevelName(t.upper())
    if not isinstance(value, int):
        raise ValueError(
            f"{text!r} is not a logging level: use DEBUG, INFO, WARNING, ERROR, CRITICAL "
            "or a number"
        )
    return value
