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
import sys
from collections.abc import Mapping
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
    stderr when no handler exists) would fall silent.  So the bridge sits in ``Logger._log``,
    which every call a logger accepts (``isEnabledFor``) reaches once: it records the event
    there (the caller's file and line found as ``findCaller`` finds them, the message
    formatted as ``LogRecord.getMessage`` formats it) and builds a LogRecord only when some
    handler will see it.  Records of loggers with filters of their own take the ordinary
    path, and are recorded in ``Logger.callHandlers`` once the filters have passed them.
    """
    global _installed
    if _installed is not None:
        _installed.setLevel(level)
        return _installed
    handler = TraceHandler(level)
    marker = handler._marker
    tid = handler._tid
    orig_log = logging.Logger._log
    orig_call_handlers = logging.Logger.callHandlers
    srcfile = logging._srcfile

    # Compiled as if it were logging's own code: logging's findCaller skips frames of its own
    # source file, so the records the program's handlers see keep their real caller.  One
    # function, no call of ours on the way: this is the whole cost of a recorded log call.
    src = """
def _log(self, level, msg, args, exc_info=None, extra=None, stack_info=False, stacklevel=1):
    if self.filters or level < handler.level:
        return orig_log(self, level, msg, args, exc_info, extra, stack_info, stacklevel)
    if marker.enabled:
        try:
            # The caller as findCaller finds it: the STACKLEVELth frame outside logging.
            f = _getframe(1)
            n = stacklevel
            while True:
                fn = f.f_code.co_filename
                if normcase is not None:
                    fn = normcase(fn)
                if fn != srcfile and not ("importlib" in fn and "_bootstrap" in fn):
                    n -= 1
                    if n <= 0:
                        break
                b = f.f_back
                if b is None:
                    break
                f = b
            file, line = f.f_code.co_filename, f.f_lineno or 0
            a = args
            if a:
                # As LogRecord does: "%(key)s" % {"key": ...}; the ABC check (the slowest
                # step here) only for what is not one of the usual scalars.
                if len(a) == 1 and a[0].__class__ not in _scalars and isinstance(a[0], Mapping) \\
                        and a[0]:
                    a = a[0]
                text = (msg if msg.__class__ is str else str(msg)) % a
            else:
                text = msg if msg.__class__ is str else str(msg)
        except Exception:  # the program's bad arguments: keep what it wrote
            text, file, line = str(msg), "(unknown file)", 0
        marker(tid(), level, line, self.name, text, file)
    # A LogRecord only when some handler will see it: logging's last resort (or its
    # no-handler warning), or the hierarchy's handlers, walked as hasHandlers does.
    last = logging.lastResort
    if last is None or level >= last.level:
        return orig_log(self, level, msg, args, exc_info, extra, stack_info, stacklevel)
    c = self
    while c is not None:
        if c.handlers:
            return orig_log(self, level, msg, args, exc_info, extra, stack_info, stacklevel)
        if not c.propagate:
            return
        c = c.parent
"""
    ns: dict[str, Any] = {
        "__name__": __name__, "handler": handler, "marker": marker, "orig_log": orig_log,
        "logging": logging, "_getframe": sys._getframe, "srcfile": srcfile, "tid": tid,
        "Mapping": Mapping, "normcase": os.path.normcase if os.name == "nt" else None,
        "_scalars": frozenset((int, float, str, bytes, bool, tuple, list)),
    }  # fmt: skip
    exec(compile(src, logging.addLevelName.__code__.co_filename, "exec"), ns)

    def callHandlers(self: logging.Logger, record: logging.LogRecord) -> None:
        # Only loggers with filters come here with a record we have not recorded yet.
        if self.filters and record.levelno >= handler.level:
            handler.handle(record)
        orig_call_handlers(self, record)

    log_fn: Any = ns["_log"]
    from tracetui.core import cmarker

    mod = cmarker._ttpy
    if mod is not None and isinstance(marker, mod.Marker):
        # The same _log in C (native/ttpy.c, LogFast) for the usual call, falling back
        # on the Python one above for keywords, filters and anything unusual.
        log_fn = mod.LogFast(handler, marker, log_fn, orig_log, srcfile, Mapping, logging)
    logging.Logger._log = log_fn  # type: ignore[method-assign]
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
