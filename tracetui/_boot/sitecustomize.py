"""Imported by the interpreter at startup under `tracetui run` (see tracetui.core.pyboot).

Starts tracing, takes its own directory and tracetui's off sys.path again (the program sees
the path it would have had; children inherit PYTHONPATH and boot the same way), then imports
the sitecustomize this one shadows, if there is one.
"""

from __future__ import annotations

import os
import sys


def _boot() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    if here in sys.path:
        sys.path.remove(here)
    # The sitecustomize this one shadows (a distribution's or a virtualenv's), if any; first,
    # so that its work is not traced.
    me = sys.modules.pop("sitecustomize")
    try:  # noqa: SIM105 - contextlib is one more import in every traced process
        import sitecustomize  # noqa: F401
    except ImportError:
        pass
    sys.modules["sitecustomize"] = me  # the import system expects this module here
    try:
        from tracetui.core import pyboot
    except Exception as e:
        print(f"tracetui run: tracing is off in pid {os.getpid()}: {e}", file=sys.stderr)
    else:
        pyboot.main_from_site()
    for p in os.environ.get("TRACETUI_RUN_PATH", "").split(os.pathsep):
        if p and p in sys.path:
            sys.path.remove(p)  # once: the program may have it on its path for itself


_boot()
