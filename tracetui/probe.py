"""The instrumentation API that traced programs import.

    from tracetui import probe
    switch = probe.marker("sched_switch", "prev_pid %d next_pid %d comm %s")
    switch(1, 2, "bash")
    if switch.enabled:          # a plain attribute read: skip argument work when off
        switch(a, b, expensive())

A marker is a name and a format (tracetui.core.model.formats).  A bad name or
format raises ValueError when the marker is defined; a wrong number or type
of arguments raises TypeError (an integer out of its field's range raises
OverflowError from the fast integer path, TypeError elsewhere) — those are
the programmer's bugs.  Nothing else is: with no daemon, a daemon that dies,
or full buffers, an event is simply not recorded (losses are counted in the
buffers), and the program carries on.

Defining a marker while a daemon answers waits until the daemon has told this process where
the marker's events go (about a millisecond; at most TRACETUI_REGISTER_TIMEOUT seconds, 3 by
default), so every event emitted after ``marker()`` returns is recorded or counted as lost.
With no daemon it does not wait at all.  If the wait times out, the marker reads as enabled
until its targets come, and what it emits meanwhile is counted and reported as lost.

How events travel: markers register with the daemon (tracetui.core.client.probe,
a background thread), which assigns each a 16-bit id and tells the process,
whenever traces start or stop, filters change or channels are added, which
channels (shared-memory ring buffers) each marker's events go to.  Emitting
is a call into C that encodes the fields straight into each target buffer:
markers are C objects (tracetui.core.cmarker, native/ttpy.c) called through
vectorcall, which convert the arguments and emit through ttpr without running
any Python code.  Without that extension, markers of 1 to 3 integer fields are
functools.partial objects over a typed cffi function and others have a
generated __call__.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from typing import Any

from tracetui.core.cmarker import c_marker
from tracetui.core.model.formats import MarkerFormat, check_event_name, parse_format
from tracetui.core.ring import NativeMarker

__all__ = ["Marker", "logging_handler", "marker", "markers"]


class _MarkerMixin:
    """What every marker kind has: name, format, id, enabled."""

    __slots__ = ()
    name: str
    format: MarkerFormat
    native: NativeMarker
    enabled: bool

    @property
    def id(self) -> int | None:
        return self._id  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"<marker {self.name} {self.format.text!r} id={self.id} {state}>"


class _FastMarker(_MarkerMixin, functools.partial):
    """A marker of 1-3 integer fields: calling it calls the typed C emitter directly."""

    __slots__ = ("_id", "enabled", "format", "name", "native")


class _PyMarker(_MarkerMixin):
    """Markers with strings, characters, floats or many fields: a generated __call__."""

    __slots__ = ("_id", "enabled", "format", "name", "native")


Marker = _MarkerMixin

_lock = threading.Lock()
_markers: dict[str, _MarkerMixin] = {}


def marker(name: str, fmt: str = "") -> Any:
    """Define (or get again) the marker ``name`` with format ``fmt``.

    Raises ValueError for a bad name or format, or for a name this process
    already defined with another format.
    """
    check_event_name(name)
    parsed = parse_format(fmt)
    with _lock:
        old = _markers.get(name)
        if old is not None:
            if old.format.text != parsed.text:
                raise ValueError(
                    f"marker {name!r} is already defined with format {old.format.text!r}"
                )
            return old
        native = NativeMarker(0xFFFF, [t.code for t in parsed.types])
        m: Any = c_marker(name, parsed, native)
        if m is None:
            m = _python_marker(name, parsed, native)
        _markers[name] = m
    rt = _runtime()
    rt.register(m)
    # Exact from the first event: when a daemon answers, return once the marker's targets
    # are applied (bounded; on timeout its early events are counted as lost instead).
    if rt.daemon_answers():
        rt.wait_registered(m, rt.register_timeout())
    return m


def _python_marker(name: str, parsed: MarkerFormat, native: NativeMarker) -> Any:
    """A marker in Python (the fallback without tracetui.core._ttpy)."""
    m: Any = native.fast_emitter(_FastMarker)
    if m is None:
        # A class per marker: its __call__ is specialised to the fields and bound to
        # this marker's C side (see NativeMarker.specialised_call).
        params = [n if n != "self" else "self_" for n in parsed.names]
        call = native.specialised_call(params, parsed.encode)
        m = type("Marker", (_PyMarker,), {"__slots__": (), "__call__": call})()
    m.name = name
    m.format = parsed
    m.native = native
    m._id = None
    m.enabled = False
    return m


def logging_handler(level: int | str = 0) -> Any:
    """A ``logging.Handler`` recording each record at or above LEVEL as a ``py_log`` event
    (tracetui.core.logbridge): ``logging.getLogger().addHandler(probe.logging_handler())``."""
    from tracetui.core.logbridge import TraceHandler, level_of

    return TraceHandler(level_of(level))


def markers() -> list[Any]:
    """Every marker this process defined."""
    with _lock:
        return list(_markers.values())


# -- the link to the daemon ---------------------------------------------------------------------

_rt: Any = None
_rt_pid = 0


def _runtime() -> Any:
    """The process's probe client, started on first use and again after fork."""
    global _rt, _rt_pid
    pid = os.getpid()
    if _rt is None or _rt_pid != pid:
        from tracetui.core.client.probe import ProbeClient

        created = None
        with _lock:
            if _rt is None or _rt_pid != pid:
                # After fork the child is a new process to the daemon: it
                # starts its own client and registers every marker again.
                _rt = created = ProbeClient(lambda: markers())
                _rt_pid = pid
        if created is not None:
            created.start()  # outside the lock: it reads markers()
    return _rt


def _after_fork_in_child() -> None:
    global _rt, _lock
    # Another thread (the probe client's) may have held the lock at fork: it never will here.
    _lock = threading.Lock()
    if _rt is not None:
        _rt.forget_after_fork()
        _rt = None
        for m in list(_markers.values()):
            m.enabled = False  # type: ignore[misc]
            m.native.set_targets([])
        if _markers:
            # Exact from the child's first event, as for a new marker: when a daemon answers,
            # the child goes on once its markers' targets are applied (bounded; on timeout
            # what it emits meanwhile is counted as lost).
            rt = _runtime()
            if rt.daemon_answers():
                deadline = time.monotonic() + rt.register_timeout()
                for m in list(_markers.values()):
                    rt.wait_registered(m, max(0.0, deadline - time.monotonic()))


os.register_at_fork(after_in_child=_after_fork_in_child)
