"""Function tracing of a Python program: the markers, the filters and the C hook.

The hook itself is C (native/ttpy.c): a profile function installed with PyEval_SetProfile on
CPython 3.11 (per thread: new threads install it through ``threading.setprofile``), or
``sys.monitoring`` callbacks on 3.12+ (global; filtered-out code objects get DISABLE).  It
emits ordinary markers:

    py_call      tid %d func %lu          a Python function is entered (or a generator resumed)
    py_return    tid %d func %lu          ... returns (or yields)
    py_raise     tid %d func %lu exc %s   ... is left by an exception (exc: its type's name on
                                          3.12+; "" on 3.11, whose profile hook hides it)
    py_c_call    tid %d func %lu          with c_calls: a C function is called
    py_c_return  tid %d func %lu          ... returns or raises
    py_func      func %lu line %d name %s file %s
                                          the definition of a function id: "module.qualname",
                                          first line and file; written before the first event
                                          of that function after every change of targets

A function id is ``pid << 32 | n`` (n counts the code objects the process has seen), unique
across the processes of a trace.  Each code object is resolved once (cached in co_extra):
name, id and the filters' decision, so a filtered-out call costs a lookup and nothing else.
Filters are fnmatch globs on ``module.qualname``: a function is traced when it matches an
include (or there are none) and no exclude; ``tracetui.*`` is always excluded.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from typing import Any

from tracetui import probe
from tracetui.core import cmarker

CALL_FORMAT = "tid %d func %lu"
RAISE_FORMAT = "tid %d func %lu exc %s"
FUNC_FORMAT = "func %lu line %d name %s file %s"
EVENTS = {
    "py_call": CALL_FORMAT,
    "py_return": CALL_FORMAT,
    "py_raise": RAISE_FORMAT,
    "py_c_call": CALL_FORMAT,
    "py_c_return": CALL_FORMAT,
    "py_func": FUNC_FORMAT,
}
ALWAYS_EXCLUDED = ("tracetui.*",)
# sys.monitoring tool id (3.12+): the profiler's, as cProfile would take it.
_TOOL = 2

_installed = False


def backend() -> str:
    """The hook in use: "setprofile" (3.11), "monitoring" (3.12+), "" without the extension."""
    mod = cmarker._ttpy
    return str(mod.BACKEND) if mod is not None else ""


def markers() -> dict[str, Any]:
    """The function-tracing markers, defined (registered with the daemon) on first use."""
    return {name: probe.marker(name, fmt) for name, fmt in EVENTS.items()}


HOOKS = ("auto", "profile", "evalframe", "monitoring")


def install(
    functions: Iterable[str] = (),
    exclude: Iterable[str] = (),
    c_calls: bool = False,
    hook: str = "auto",
) -> None:
    """Trace function calls from now on, in this thread and in threads started later.

    HOOK: "auto" (the profile function on 3.11, sys.monitoring on 3.12+), "profile",
    "monitoring", or "evalframe" (3.11 and 3.12, opt-in: a PEP 523 frame evaluation function,
    cheaper per call, no C calls; see native/ttpy.c).  Raises RuntimeError when the C
    extension is missing or tracing is installed already, ValueError for a hook this
    interpreter does not have.
    """
    global _installed
    mod = cmarker._ttpy
    if mod is None:
        raise RuntimeError("function tracing needs tracetui.core._ttpy, which is not built")
    if _installed:
        raise RuntimeError("function tracing is already installed")
    native = "monitoring" if mod.BACKEND == "monitoring" else "profile"
    if hook == "auto":
        hook = native
    if hook not in (native, "evalframe") or (hook == "evalframe" and not mod.HAVE_EVALFRAME):
        raise ValueError(f"the {hook!r} hook is not available on Python {sys.version.split()[0]}")
    ms = markers()
    inc = tuple(g.encode() for g in functions)
    exc = tuple(g.encode() for g in (*ALWAYS_EXCLUDED, *exclude))
    disable = None
    if mod.BACKEND == "monitoring":
        disable = sys.monitoring.DISABLE  # type: ignore[attr-defined]
    mod.configure(
        ms["py_call"], ms["py_return"], ms["py_raise"], ms["py_func"],
        ms["py_c_call"], ms["py_c_return"], inc, exc, c_calls, disable,
    )  # fmt: skip
    for m in ms.values():
        # New targets (a trace started, a daemon came back): definitions go out again.
        m.native.on_targets = mod.bump_definitions
    mod.bump_definitions()
    _installed = True
    if hook == "monitoring":
        _install_monitoring(mod, c_calls)
    elif hook == "profile":
        threading.setprofile(mod.thread_hook)
    mod.start(hook == "evalframe")


def _install_monitoring(mod: Any, c_calls: bool) -> None:
    mon = sys.monitoring  # type: ignore[attr-defined]
    ev = mon.events
    mon.use_tool_id(_TOOL, "tracetui")
    callbacks = {
        ev.PY_START: mod.mon_start,
        ev.PY_RESUME: mod.mon_start,
        ev.PY_THROW: mod.mon_throw,
        ev.PY_RETURN: mod.mon_return,
        ev.PY_YIELD: mod.mon_return,
        ev.PY_UNWIND: mod.mon_unwind,
    }
    if c_calls:
        callbacks |= {ev.CALL: mod.mon_c_call, ev.C_RETURN: mod.mon_c_return,
                      ev.C_RAISE: mod.mon_c_return}  # fmt: skip
    mask = 0
    for event, fn in callbacks.items():
        mon.register_callback(_TOOL, event, fn)
        mask |= event
    mon.set_events(_TOOL, mask)
