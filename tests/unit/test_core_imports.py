"""tracetui.core never draws: importing all of it must not import textual or rich."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import tracetui.core


def test_core_modules_do_not_import_textual_or_rich() -> None:
    # Every module of every room, not only the top level.
    names = [m.name for m in pkgutil.walk_packages(tracetui.core.__path__, "tracetui.core.")]
    assert {
        "tracetui.core.ring.channels",
        "tracetui.core.model.fields",
        "tracetui.core.client.live",
    } <= set(names)
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}:\n"
        "    importlib.import_module(n)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
