"""Errors a user of the control namespace can meet, shared by the daemon, clients and the CLI.

Every refusal carries an errno (so programs can branch on it) and one sentence (so people can act
on it). The daemon raises :class:`TraceError` from the namespace; the wire carries the pair back;
the client raises the same class again; the CLI prints the sentence and the console shows it.
"""

from __future__ import annotations

import errno as _errno


class TraceError(Exception):
    """An operation that cannot be done: ``errno`` says which kind, ``str()`` one sentence."""

    errno: int
    message: str

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(errno, message)
        self.errno = errno
        self.message = message

    def __str__(self) -> str:
        return self.message

    @property
    def code(self) -> str:
        """The symbolic errno name ("EBUSY"), or the number when it has no name."""
        return _errno.errorcode.get(self.errno, str(self.errno))


class DaemonNotRunning(TraceError):
    """No daemon answers in the runtime directory (no port file, or nobody on its port)."""

    def __init__(self, runtime_dir: str, message: str | None = None) -> None:
        super().__init__(
            _errno.ECONNREFUSED,
            message
            or f"no tracetui daemon answers in {runtime_dir}; "
            "start one with `tracetui daemon --detach`",
        )
        self.runtime_dir = runtime_dir


class DaemonUnreachable(TraceError):
    """A daemon is there but cannot be used: it timed out, speaks another protocol version, or
    the process answering on its port is not who the port file says (a squatted port)."""
