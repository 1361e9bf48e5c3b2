"""The daemon's log: one line per message on stderr (daemon.log when spawned)."""

from __future__ import annotations

import sys


def log(message: str) -> None:
    print(f"tracetui daemon: {message}", file=sys.stderr, flush=True)
