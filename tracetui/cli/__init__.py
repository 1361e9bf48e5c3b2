"""The ``tracetui`` command line (see :mod:`tracetui.cli.verbs`)."""

from __future__ import annotations

from tracetui.cli.verbs import main

__all__ = ["main"]
