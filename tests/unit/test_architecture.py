"""The rooms' one-way arrows (pyproject.toml [tool.importlinter], docs/ARCHITECTURE.md) hold."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.fail("lint-imports is missing: install the test extras (pip install -e '.[test]')")
    r = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_only_the_ring_imports_the_compiled_module() -> None:
    # import-linter cannot see an extension module, so this one arrow is checked by reading.
    allowed = {ROOT / "tracetui" / "core" / "ring" / n for n in ("channels.py", "markers.py")}
    importers = {
        path
        for path in (ROOT / "tracetui").rglob("*.py")
        if re.search(r"^\s*(from|import)\s+tracetui\.core\._ttrb\b", path.read_text(), re.M)
    }
    assert importers == allowed


def test_only_the_trace_glue_imports_the_packet_decoder() -> None:
    # tracetui.core.trace._ttdec (native/ttdec.c) is loaded by core/trace/native.py alone.
    pattern = (
        r"^\s*(from\s+tracetui\.core\.trace\s+import\s+[^\n]*\b_ttdec\b"
        r"|(from|import)\s+tracetui\.core\.trace\._ttdec\b)"
    )
    importers = {
        path
        for path in (ROOT / "tracetui").rglob("*.py")
        if re.search(pattern, path.read_text(), re.M)
    }
    assert importers == {ROOT / "tracetui" / "core" / "trace" / "native.py"}
