"""Starting and stopping a daemon process, and waiting until it answers.

Apart from core/rendezvous.py (the rendezvous) because waiting needs a client: the rendezvous is
what the client is built on, and spawning is built on both, so no import goes in a circle.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from pathlib import Path

from tracetui.core.client import Client, rendezvous
from tracetui.core.client.rendezvous import LOG_FILE, ensure_runtime_dir, read_port_file
from tracetui.core.errors import TraceError

__all__ = ["daemon_command", "last_log_line", "spawn_daemon", "stop_daemon", "wait_until_answers"]


def daemon_command(directory: Path) -> list[str]:
    return rendezvous.python_command("-m", "tracetui", "daemon", "--runtime-dir", str(directory))


def spawn_daemon(
    runtime_dir: str | os.PathLike[str] | None = None,
    *,
    wait: bool = True,
    timeout: float = 10.0,
    detach: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``python -m tracetui daemon --runtime-dir D``; with WAIT, return once it answers.

    Its output goes to ``D/daemon.log``. DETACH puts it in a session of its own so it outlives
    the caller's terminal. ENV replaces the environment it inherits. Raises TraceError (with
    the daemon's last words) if it exits instead.
    """
    directory = ensure_runtime_dir(rendezvous.runtime_dir(runtime_dir))
    log_path = directory / LOG_FILE
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        proc = subprocess.Popen(
            daemon_command(directory),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=detach,
            close_fds=True,
            env=env,
        )
    finally:
        log.close()
    if wait:
        wait_until_answers(directory, proc, timeout)
    return proc


def wait_until_answers(
    directory: Path, proc: subprocess.Popen[bytes] | None = None, timeout: float = 10.0
) -> None:
    """Poll until a daemon answers a hello in DIRECTORY (and, with PROC, that it is PROC)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        if proc is not None and proc.poll() is not None:
            raise TraceError(
                errno.ESRCH,
                f"the daemon exited with status {proc.returncode}: {last_log_line(directory)}",
            )
        not_yet: TraceError | None = None
        try:
            info = read_port_file(directory)
            if proc is None or info.pid == proc.pid:
                with Client(str(directory), timeout=0.5):
                    return
        except TraceError as e:
            # Not up yet (no port file, an older daemon's file, not answering): poll again.
            not_yet = e
        if time.monotonic() > deadline:
            raise TraceError(
                errno.ETIMEDOUT,
                f"the daemon did not answer within {timeout:g} s "
                f"({not_yet or 'another daemon answers'}; see {directory / LOG_FILE})",
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def last_log_line(directory: Path) -> str:
    try:
        lines = (directory / LOG_FILE).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def stop_daemon(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM and wait (SIGKILL if it does not exit within TIMEOUT)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
