"""Shared fixtures: a real ``tracetui daemon`` process on a real netlink socket.

``daemon`` (one per test) and ``shared_daemon`` (one per module, for tests that only need a
namespace and use names of their own) start ``python -m tracetui daemon --runtime-dir D`` in a
private runtime directory (with ``XDG_DATA_HOME=D/data``, so default trace outputs stay there),
wait until it answers, and yield a :class:`DaemonHandle`. The
``daemon`` fixture also sets ``TRACETUI_RUNTIME_DIR`` so code under test finds it by default.
On teardown the daemon gets SIGTERM and must exit 0, leaving no port file and no shared memory.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tracetui.core.client import Client, rendezvous, spawn


@dataclass
class DaemonHandle:
    runtime_dir: Path
    proc: subprocess.Popen[bytes]
    client: Client

    @property
    def pid(self) -> int:
        return self.proc.pid

    def env(self) -> dict[str, str]:
        return {**os.environ, rendezvous.ENV: str(self.runtime_dir)}

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``python -m tracetui ARGS`` against this daemon."""
        return subprocess.run(
            [sys.executable, "-m", "tracetui", *args],
            capture_output=True,
            text=True,
            env=self.env(),
            input=input,
            timeout=30,
        )

    def shm(self) -> list[str]:
        """Shared-memory names this daemon owns right now."""
        prefix = f"/dev/shm/tracetui-{os.getuid()}-{self.pid}-"
        return sorted("/" + os.path.basename(p) for p in glob.glob(prefix + "*"))

    def status(self) -> dict[str, str]:
        return dict(line.split(" ", 1) for line in self.client.read("status").splitlines())

    def log(self) -> str:
        try:
            return (self.runtime_dir / rendezvous.LOG_FILE).read_text()
        except OSError:
            return ""


def start_daemon(directory: Path) -> DaemonHandle:
    """Spawn a daemon for DIRECTORY; its default trace outputs go under DIRECTORY/data."""
    env = {**os.environ, rendezvous.ENV: str(directory), "XDG_DATA_HOME": str(directory / "data")}
    proc = spawn.spawn_daemon(directory, env=env)
    return DaemonHandle(directory, proc, Client(str(directory)))


def finish_daemon(handle: DaemonHandle) -> None:
    handle.client.close()
    pid = handle.proc.pid
    spawn.stop_daemon(handle.proc)
    assert handle.proc.returncode == 0, handle.log()
    assert not (handle.runtime_dir / rendezvous.PORT_FILE).exists()
    leftovers = glob.glob(f"/dev/shm/tracetui-{os.getuid()}-{pid}-*")
    assert leftovers == [], f"the daemon left shared memory behind: {leftovers}"


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DaemonHandle]:
    directory = tmp_path / "run"
    monkeypatch.setenv(rendezvous.ENV, str(directory))
    handle = start_daemon(directory)
    try:
        yield handle
    finally:
        finish_daemon(handle)


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonHandle]:
    handle = start_daemon(tmp_path_factory.mktemp("run"))
    try:
        yield handle
    finally:
        finish_daemon(handle)
