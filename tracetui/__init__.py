"""tracetui: a user-space tracer for Linux with a keyboard-driven terminal console.

``tracetui.core`` holds everything that is not drawing (namespace, protocol, daemon, clients,
buffers); ``tracetui.cli`` is the command line; the console lives in ``tracetui.app`` and
``tracetui.screens``.
"""

from __future__ import annotations

__version__ = "0.1.0"
