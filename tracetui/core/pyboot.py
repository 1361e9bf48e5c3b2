"""`tracetui run` inside the traced program: set up tracing before its first line.

``tracetui run`` (tracetui/run.py) starts the program with ``TRACETUI_RUN`` (JSON, below) in
its environment and tracetui/_boot first on PYTHONPATH; that directory's sitecustomize.py,
which the interpreter imports at startup, calls :func:`boot`.  Because the variable and the
path are inherited, every Python process the program starts (multiprocessing's spawn and
forkserver children, subprocesses) is traced the same way; forked children keep tracing and
wait here until their own link to the daemon is up.

    {"functions": true, "include": [GLOB...], "exclude": [GLOB...], "c_calls": false,
     "hook": "auto", "logging": LEVEL or null, "ready_s": 3.0}

:func:`boot` defines the markers, waits (at most ``ready_s``) until the daemon has told this
process where their events go, so the program's first calls are recorded, then installs the
hook.  It never stops the program: any failure is one line on stderr and the program runs
untraced.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
import warnings
from typing import Any

ENV = "TRACETUI_RUN"
READY_S = 3.0

_ready_s = READY_S


def boot(text: str) -> None:
    """Set up what the JSON config TEXT asks for (see the module docstring)."""
    global _ready_s
    cfg: dict[str, Any] = json.loads(text)
    from tracetui import probe
    from tracetui.core import pytrace

    _ready_s = float(cfg.get("ready_s", READY_S))
    functions = bool(cfg.get("functions", True))
    if functions:
        pytrace.markers()
    level = cfg.get("logging")
    if level is not None:
        from tracetui.core.logbridge import install, level_of

        install(level_of(level))
    wait_ready()
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )  # fmt: skip
    if functions:
        from tracetui.core import cmarker

        if cmarker._ttpy is not None:
            cmarker._ttpy.pause_after_fork(True)
        pytrace.install(cfg.get("include", ()), cfg.get("exclude", ()),
                        bool(cfg.get("c_calls")), str(cfg.get("hook", "auto")))  # fmt: skip
    del probe


def wait_ready(timeout: float | None = None) -> bool:
    """Wait until the daemon has sent this process its targets for every marker it defined.

    The daemon answers each registration with a targets table, so this process is ready once
    it has applied as many tables as it has markers.  False after TIMEOUT (default: the
    config's ready_s): the program then starts, and early events may be missing.
    """
    from tracetui import probe

    deadline = time.monotonic() + (_ready_s if timeout is None else timeout)
    rt = probe._runtime()
    want = len(probe.markers())
    while rt.targets_applied < want:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


# CPython 3.12+ warns at fork when the process has other threads; the probe's link to the
# daemon is one, which the program did not start: while it is the only one, that warning
# (which the program would not have had) is filtered out for this fork.
_FORK_WARNING = (
    "ignore", re.compile(r"This process \(pid=\d+\) is multi-threaded"), DeprecationWarning,
    None, 0,
)  # fmt: skip


# 3.13 warns after the at-fork hooks of the parent have run (3.12 before them): there the
# filter stays until the next fork's _before_fork decides again (only a fork warns).
_WARNS_AFTER_HOOKS = sys.version_info >= (3, 13)


def _remove_fork_filter() -> None:
    with contextlib.suppress(ValueError):
        warnings.filters.remove(_FORK_WARNING)  # type: ignore[attr-defined]


def _before_fork() -> None:
    _remove_fork_filter()
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    if others and all(t.name.startswith("tracetui-") for t in others):
        warnings.filters.insert(0, _FORK_WARNING)  # type: ignore[attr-defined]


def _after_fork_in_parent() -> None:
    if not _WARNS_AFTER_HOOKS:
        _remove_fork_filter()


def _after_fork_in_child() -> None:
    _remove_fork_filter()
    # The probe reconnects in the child (tracetui.probe's own fork hook, which runs before
    # this one); its work is not the program's, so the child starts with tracing paused
    # (pause_after_fork, set in boot) and resumes here once its markers have targets.
    from tracetui.core import cmarker

    try:
        wait_ready()
    finally:
        if cmarker._ttpy is not None:
            cmarker._ttpy.pause(False)


def main_from_site() -> None:
    """The entry point of tracetui/_boot/sitecustomize.py."""
    text = os.environ.get(ENV)
    if not text:
        return
    try:
        boot(text)
    except Exception as e:  # never the program's problem
        print(f"tracetui run: tracing is off in pid {os.getpid()}: {e}", file=sys.stderr)
