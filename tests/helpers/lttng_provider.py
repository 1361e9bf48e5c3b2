"""The LTTng-UST tracepoint provider the tests build (tests/lttng/prov.c), with the system gcc
and Debian's liblttng-ust-dev: one place for the command, skipped with a reason when it fails."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SOURCE_DIR = Path(__file__).resolve().parent.parent / "lttng"


def build_provider(dest: Path) -> Path:
    """Compile prov.c into DEST (an executable) or skip the test saying why."""
    r = subprocess.run(
        [
            "gcc",
            "-O1",
            f"-I{SOURCE_DIR}",
            "-o",
            str(dest),
            str(SOURCE_DIR / "prov.c"),
            "-llttng-ust",
            "-ldl",
            "-lpthread",
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        pytest.skip(f"cannot build an lttng-ust provider: {r.stderr.strip().splitlines()[-1:]}")
    return dest
