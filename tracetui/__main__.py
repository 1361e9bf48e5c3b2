"""``python -m tracetui``: the same as the ``tracetui`` command."""

from __future__ import annotations

import sys

from tracetui.cli import main

if __name__ == "__main__":
    sys.exit(main())
