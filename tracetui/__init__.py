"""tracetui: a user-space tracer for Linux with a keyboard-driven terminal console.

``tracetui.core`` holds everything that is not drawing, in rooms by concern (``model``,
``trace``, ``wire``, ``client``, the daemon's modules and the ring façade); ``tracetui.cli`` is
the command line; the console lives in ``tracetui.app``, ``tracetui.screens`` and
``tracetui.widgets``.  docs/ARCHITECTURE.md maps the rooms and the arrows between them.
"""

from __future__ import annotations

__version__ = "0.1.0"
