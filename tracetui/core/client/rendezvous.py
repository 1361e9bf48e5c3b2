"""Where a daemon lives and how to reach it: the runtime directory and the port file.

This module owns the rendezvous between a daemon and its clients. One daemon serves one runtime
directory; by default each user has one (``$XDG_RUNTIME_DIR/tracetui``, else
``/tmp/tracetui-<uid>``), and ``TRACETUI_RUNTIME_DIR`` or ``--runtime-dir`` selects another, so
tests and several daemons never collide. The directory holds:

- ``daemon.port`` (mode 0600): JSON ``{"port": P, "pid": N, "uid": U, "protocol": V}``; the
  netlink port clients connect to, written atomically once the daemon answers;
- ``daemon.lock``: held (flock) for the daemon's life, so a second daemon refuses to start;
- ``daemon.log``: what a daemon started by ``spawn.spawn_daemon`` (this room) printed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from tracetui.core.errors import DaemonNotRunning, TraceError

ENV = "TRACETUI_RUNTIME_DIR"
PORT_FILE = "daemon.port"
LOCK_FILE = "daemon.lock"
LOG_FILE = "daemon.log"


def runtime_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The runtime directory: OVERRIDE, else $TRACETUI_RUNTIME_DIR, else per-user default."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "tracetui"
    return Path(f"/tmp/tracetui-{os.getuid()}")


def ensure_runtime_dir(path: Path) -> Path:
    """Create PATH (mode 0700) if needed; refuse one owned by another user (a squat)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError as e:
        raise TraceError(
            e.errno or errno.EACCES, f"cannot use runtime directory {path}: {e.strerror}"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise TraceError(errno.ENOTDIR, f"runtime directory {path} is not a directory")
    if st.st_uid != os.getuid():
        raise TraceError(
            errno.EPERM,
            f"runtime directory {path} belongs to uid {st.st_uid}, not to you; "
            f"choose another with --runtime-dir or {ENV}",
        )
    return path


@dataclass(frozen=True)
class PortInfo:
    port: int
    pid: int
    uid: int  # the uid that owns the port file: the uid replies must come from (or root)
    protocol: int


def read_port_file(directory: Path) -> PortInfo:
    """The daemon's address; DaemonNotRunning when there is no (readable, valid) port file."""
    path = directory / PORT_FILE
    try:
        with open(path, encoding="utf-8") as f:
            st = os.fstat(f.fileno())
            data = json.load(f)
        return PortInfo(
            int(data["port"]), int(data["pid"]), st.st_uid, int(data.get("protocol", 0))
        )
    except FileNotFoundError:
        raise DaemonNotRunning(str(directory)) from None
    except PermissionError:
        raise DaemonNotRunning(
            str(directory),
            f"cannot read {path}: it belongs to another user; start your own daemon with "
            f"`tracetui daemon --detach --runtime-dir DIR`",
        ) from None
    except (OSError, ValueError, KeyError, TypeError):
        raise DaemonNotRunning(
            str(directory),
            f"{path} is damaged; start a daemon with `tracetui daemon --detach`",
        ) from None


def write_port_file(directory: Path, port: int, protocol: int) -> None:
    """Write the port file atomically (temporary file + rename), mode 0600."""
    path = directory / PORT_FILE
    tmp = directory / f".{PORT_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"port": port, "pid": os.getpid(), "uid": os.getuid(), "protocol": protocol}, f)
    os.replace(tmp, path)


def remove_port_file(directory: Path) -> None:
    """Remove the port file if it is this process's (a newer daemon's file is left alone)."""
    path = directory / PORT_FILE
    try:
        with open(path, encoding="utf-8") as f:
            if int(json.load(f).get("pid", -1)) != os.getpid():
                return
        path.unlink()
    except (OSError, ValueError):
        return


class DaemonLock:
    """The one-daemon-per-directory lock (flock on ``daemon.lock``, released on exit)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        self.fd = -1

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise TraceError(
                errno.EBUSY,
                f"a tracetui daemon (pid {holder}) already runs in {self.path.parent}; "
                f"stop it first or choose another --runtime-dir",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = -1


def pid_alive(pid: int) -> bool:
    """Whether PID runs (a zombie, exited but not reaped yet, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # state is the field after "(comm)"; comm may hold spaces and parentheses
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def python_command(*args: str) -> list[str]:
    """Run this interpreter on ARGS with the installed tracetui, whatever the working directory.

    ``-P`` (Python 3.11+) keeps the working directory (or a script's folder) off ``sys.path``:
    started from a clone's root, ``python -m tracetui`` would otherwise import the source tree,
    which has no compiled native module after a plain ``pip install .``.
    """
    return [sys.executable, "-P", *args]
