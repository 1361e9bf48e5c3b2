"""The control namespace: traces, channels and their files, and the five verbs on paths.

This module owns the model of the debugfs-style tree and every rule of it; the daemon only
carries verbs to it over netlink. Layout (``rw`` writable, ``ro`` read-only, ``w`` write-only)::

    markers                 ro  one line per registered marker: "id name format"
    status                  ro  the daemon's counters (added by the daemon)
    <trace>/                    mkdir creates it with a channel "main"
    <trace>/start           rw  1 starts (allocating what is not allocated yet), 0 stops (flushes)
    <trace>/filter          rw  event filter rules (tracetui.core.daemon.filters); default "*"
    <trace>/output          rw  CTF output directory (absolute); fixed while the trace runs
    <trace>/snapshot        rw  write 1: write the flight channels now; read: snapshots taken
    <trace>/relay           rw  net://HOST[:CTRL[:DATA]]: also stream to an lttng-relayd ("" stops)
    <trace>/<channel>/          mkdir adds a channel (also while the trace runs)
    <trace>/<channel>/subbuf_size  rw  bytes, power of two ("256K" accepted); fixed once allocated
    <trace>/<channel>/n_subbuf     rw  power of two >= 2; fixed once allocated
    <trace>/<channel>/flight       rw  0|1, may change at any time, even while tracing
    <trace>/<channel>/global       rw  0|1; fixed once allocated
    <trace>/<channel>/allocate     rw  1 allocates now; 0 frees (trace stopped); read 0|1
    <trace>/<channel>/filter       rw  routing rules: events sent here instead of "main"
    <trace>/<channel>/stats        ro  per-buffer and total counters ("cpu0 recorded=.. ...")

Every refusal is a :class:`TraceError` (errno + one sentence) raised before anything changed, so
nothing is left half-applied. Every change is reported to ``listeners`` as a :class:`Change` (the
daemon forwards them to subscribed consoles), and the recording work plugs in through
:class:`Hooks` (start, stop, filter changes, channels added, allocated or freed, snapshots).
"""

from __future__ import annotations

import errno
import os
import re
import time
import uuid as _uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tracetui.core import ring
from tracetui.core.daemon.filters import FilterRules, route
from tracetui.core.daemon.markers import MarkerRegistry
from tracetui.core.errors import TraceError
from tracetui.core.model.geometry import MIN_N_SUBBUF, MIN_SUBBUF, parse_size
from tracetui.core.model.stats import Stats, stats_line
from tracetui.core.wire.protocol import MAX_PATH, Change, Entry

MAIN = "main"
DEFAULT_SUBBUF_SIZE = 64 * 1024
DEFAULT_N_SUBBUF = 8
NAME_MAX = 64
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_SHM_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

# name -> writable, in the order ls shows them
TRACE_FILES: dict[str, bool] = {
    "start": True, "filter": True, "output": True, "snapshot": True, "relay": True
}
CHANNEL_FILES: dict[str, bool] = {
    "subbuf_size": True,
    "n_subbuf": True,
    "flight": True,
    "global": True,
    "allocate": True,
    "filter": True,
    "stats": False,
}


def default_output(trace: str, created: float) -> str:
    """``<user data dir>/traces/<trace>-<YYYYmmdd-HHMMSS>`` for a trace created at CREATED."""
    import platformdirs

    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(created))
    return str(Path(platformdirs.user_data_dir("tracetui")) / "traces" / f"{trace}-{stamp}")


@dataclass(eq=False)
class TraceChannel:
    """One channel's settings and, once allocated, its buffers."""

    name: str
    trace: str
    stream_id: int
    subbuf_size: int = DEFAULT_SUBBUF_SIZE
    n_subbuf: int = DEFAULT_N_SUBBUF
    flight: bool = False
    is_global: bool = False
    filter: FilterRules = field(default_factory=FilterRules.empty)
    buffers: ring.Channel | None = None
    shm_name: str = ""

    @property
    def allocated(self) -> bool:
        return self.buffers is not None

    @property
    def path(self) -> str:
        return f"{self.trace}/{self.name}"

    def nbuf(self) -> int:
        return 1 if self.is_global else ring.possible_cpus()

    def memory(self) -> int:
        """Bytes of sub-buffers this channel asks for when allocated."""
        return self.subbuf_size * self.n_subbuf * self.nbuf()


@dataclass(eq=False)
class Trace:
    """A trace: an event filter, an output directory, channels (``main`` first)."""

    name: str
    created: float
    output: str
    uuid: bytes = field(default_factory=lambda: _uuid.uuid4().bytes)
    filter: FilterRules = field(default_factory=FilterRules)
    channels: dict[str, TraceChannel] = field(default_factory=dict)
    running: bool = False
    snapshots: int = 0
    next_stream_id: int = 0
    relay: str = ""  # net://HOST[:CTRL[:DATA]] of an lttng-relayd, "" when not streaming

    @property
    def allocated(self) -> bool:
        """True when at least one channel has buffers."""
        return any(c.allocated for c in self.channels.values())


TraceHook = Callable[[Trace], None]
ChannelHook = Callable[[Trace, TraceChannel], None]
FilterHook = Callable[[Trace, "TraceChannel | None"], None]


@dataclass
class Hooks:
    """Callables the recording work registers; each list is called in order.

    ``allocated`` and ``starting`` may raise TraceError to refuse: the namespace then undoes what
    it did (frees the buffers it allocated) and the refusal reaches the client.
    """

    channel_added: list[ChannelHook] = field(default_factory=list)
    allocated: list[ChannelHook] = field(default_factory=list)  # buffers exist now
    freeing: list[ChannelHook] = field(default_factory=list)  # buffers about to go
    starting: list[TraceHook] = field(default_factory=list)  # allocated, not yet running
    stopped: list[TraceHook] = field(default_factory=list)  # not running, buffers flushed
    filter_changed: list[FilterHook] = field(default_factory=list)  # channel None: trace filter
    flight_changed: list[ChannelHook] = field(default_factory=list)
    removing: list[TraceHook] = field(default_factory=list)  # stopped, about to be removed
    snapshot: list[TraceHook] = field(default_factory=list)  # write the flight channels now
    relay_changed: list[TraceHook] = field(default_factory=list)  # Trace.relay set or cleared


@dataclass
class RootFile:
    """A file at the top of the namespace provided by someone else (the daemon, recording)."""

    read: Callable[[], str]
    write: Callable[[str], None] | None = None


def _err(code: int, message: str) -> TraceError:
    return TraceError(code, message)


def _flag(path: str, value: str) -> bool:
    if value in ("0", "1"):
        return value == "1"
    raise _err(errno.EINVAL, f"{path} takes 0 or 1, not '{value}'")


def _check_name(name: str, what: str, reserved: set[str] | dict[str, bool]) -> None:
    if len(name) > NAME_MAX or not _NAME_RE.match(name):
        raise _err(
            errno.EINVAL,
            f"'{name}' is not a valid {what} name: use up to {NAME_MAX} letters, digits, "
            "'_', '-' or '.', not starting with '-' or '.'",
        )
    if name in reserved:
        raise _err(errno.EEXIST, f"'{name}' is reserved: choose another {what} name")


def stats_text(ch: TraceChannel) -> str:
    """What a read of ``stats`` returns: one line per buffer, then ``total``."""
    lines = []
    total = Stats()
    if ch.buffers is not None:
        for b in range(ch.buffers.nbuf):
            st = ch.buffers.stats(b)
            total = total + st
            label = "global" if ch.is_global else f"cpu{b}"
            lines.append(stats_line(label, st))
    lines.append(stats_line("total", total))
    return "\n".join(lines)


class Namespace:
    """The model and its five verbs. Not thread-safe: the daemon calls it from one loop."""

    def __init__(self, shm_prefix: str | None = None) -> None:
        self.shm_prefix = shm_prefix or f"/tracetui-{os.getuid()}-{os.getpid()}"
        self.traces: dict[str, Trace] = {}
        self.markers = MarkerRegistry()
        self.hooks = Hooks()
        self.listeners: list[Callable[[Change], None]] = []
        self.root_files: dict[str, RootFile] = {"markers": RootFile(self.markers.lines)}
        self.allocations = 0  # buffers created so far: lets tests see start do no allocation

    # ------------------------------------------------------------------------- paths

    @staticmethod
    def split(path: str) -> list[str]:
        if len(path) > MAX_PATH:
            raise _err(errno.ENAMETOOLONG, f"a path is at most {MAX_PATH} characters")
        parts = [p for p in path.strip().split("/") if p]
        for p in parts:
            if p in (".", ".."):
                raise _err(
                    errno.EINVAL, f"'{path}' uses '{p}': give paths from the top, like mytrace/main"
                )
        return parts

    def _trace(self, name: str) -> Trace:
        t = self.traces.get(name)
        if t is None:
            raise _err(
                errno.ENOENT, f"there is no trace '{name}' (`tracetui mkdir {name}` creates it)"
            )
        return t

    def _channel(self, t: Trace, name: str) -> TraceChannel:
        c = t.channels.get(name)
        if c is None:
            raise _err(
                errno.ENOENT,
                f"trace '{t.name}' has no channel '{name}' "
                f"(`tracetui mkdir {t.name}/{name}` adds it)",
            )
        return c

    def _emit(self, op: str, path: str, value: str = "") -> None:
        change = Change(op, path, value)
        for fn in self.listeners:
            fn(change)

    # ------------------------------------------------------------------------- ls

    def ls(self, path: str = "") -> list[Entry]:
        parts = self.split(path)
        if not parts:
            files = [Entry(n, "file", f.write is not None) for n, f in self.root_files.items()]
            return files + [Entry(n, "dir", True) for n in self.traces]
        if len(parts) == 1 and parts[0] in self.root_files:
            f = self.root_files[parts[0]]
            return [Entry(parts[0], "file", f.write is not None)]
        t = self._trace(parts[0])
        if len(parts) == 1:
            return [Entry(n, "file", w) for n, w in TRACE_FILES.items()] + [
                Entry(n, "dir", False) for n in t.channels
            ]
        if len(parts) == 2 and parts[1] in TRACE_FILES:
            return [Entry(parts[1], "file", TRACE_FILES[parts[1]])]
        c = self._channel(t, parts[1])
        if len(parts) == 2:
            return [Entry(n, "file", w) for n, w in CHANNEL_FILES.items()]
        if len(parts) == 3 and parts[2] in CHANNEL_FILES:
            return [Entry(parts[2], "file", CHANNEL_FILES[parts[2]])]
        raise _err(errno.ENOENT, f"there is no '{path.strip('/')}' in channel {c.path}")

    # ------------------------------------------------------------------------- mkdir / rmdir

    def mkdir(self, path: str) -> None:
        parts = self.split(path)
        if not parts:
            raise _err(errno.EEXIST, "the top directory always exists")
        if len(parts) == 1:
            name = parts[0]
            if name in self.traces:
                raise _err(errno.EEXIST, f"trace '{name}' already exists")
            if name in self.root_files:
                raise _err(
                    errno.EEXIST, f"'{name}' is a file of the namespace: choose another name"
                )
            _check_name(name, "trace", {})
            now = time.time()
            t = Trace(name=name, created=now, output=default_output(name, now))
            self.traces[name] = t
            main = self._new_channel(t, MAIN)
            self._emit("mkdir", name)
            self._call_channel_added(t, main)
            return
        t = self._trace(parts[0])
        if len(parts) == 2:
            name = parts[1]
            if name in t.channels:
                raise _err(errno.EEXIST, f"channel '{t.name}/{name}' already exists")
            _check_name(name, "channel", TRACE_FILES)
            c = self._new_channel(t, name)
            self._emit("mkdir", c.path)
            self._call_channel_added(t, c)
            return
        if parts[1] in TRACE_FILES:
            raise _err(errno.ENOTDIR, f"{t.name}/{parts[1]} is a file, not a directory")
        c = self._channel(t, parts[1])
        if len(parts) == 3 and parts[2] in CHANNEL_FILES:
            raise _err(errno.EEXIST, f"{c.path}/{parts[2]} already exists (it is a file)")
        raise _err(errno.EPERM, f"channels hold no directories: {c.path} has only its files")

    def _new_channel(self, t: Trace, name: str) -> TraceChannel:
        c = TraceChannel(name=name, trace=t.name, stream_id=t.next_stream_id)
        t.next_stream_id += 1
        c.shm_name = self._shm_name(t.name, name)
        t.channels[name] = c
        return c

    def _call_channel_added(self, t: Trace, c: TraceChannel) -> None:
        for h in self.hooks.channel_added:
            h(t, c)

    def _shm_name(self, trace: str, channel: str) -> str:
        body = f"{self.shm_prefix.lstrip('/')}-{trace}-{channel}"
        return "/" + _SHM_UNSAFE.sub("_", body)[:200]

    def rmdir(self, path: str) -> None:
        parts = self.split(path)
        if not parts:
            raise _err(errno.EPERM, "the top directory cannot be removed")
        if len(parts) == 1 and parts[0] in self.root_files:
            raise _err(errno.ENOTDIR, f"'{parts[0]}' is a file, not a directory")
        t = self._trace(parts[0])
        if len(parts) == 1:
            if t.running:
                raise _err(
                    errno.EBUSY,
                    f"trace '{t.name}' is running; stop it first with "
                    f"`tracetui write {t.name}/start 0`",
                )
            for h in self.hooks.removing:
                h(t)
            for c in t.channels.values():
                self._free(t, c)
            del self.traces[t.name]
            self._emit("rmdir", t.name)
            return
        if len(parts) == 2 and parts[1] in TRACE_FILES:
            raise _err(errno.ENOTDIR, f"{t.name}/{parts[1]} is a file, not a directory")
        c = self._channel(t, parts[1])
        if len(parts) > 2:
            raise _err(errno.ENOTDIR, f"{path.strip('/')} is a file, not a directory")
        if c.name == MAIN:
            raise _err(
                errno.EPERM,
                f"every trace has a channel 'main'; remove the trace with "
                f"`tracetui rmdir {t.name}` instead",
            )
        if t.running:
            raise _err(
                errno.EBUSY,
                f"trace '{t.name}' is running; stop it before removing channel {c.path}",
            )
        self._free(t, c)
        del t.channels[c.name]
        self._emit("rmdir", c.path)

    # ------------------------------------------------------------------------- read

    def read(self, path: str) -> str:
        parts = self.split(path)
        if not parts:
            raise _err(errno.EISDIR, "the top directory cannot be read; ls lists it")
        if len(parts) == 1 and parts[0] in self.root_files:
            return self.root_files[parts[0]].read()
        t = self._trace(parts[0])
        if len(parts) == 1:
            raise _err(errno.EISDIR, f"{t.name} is a trace directory; ls lists it")
        if len(parts) == 2 and parts[1] in TRACE_FILES:
            return self._read_trace_file(t, parts[1])
        c = self._channel(t, parts[1])
        if len(parts) == 2:
            raise _err(errno.EISDIR, f"{c.path} is a channel directory; ls lists it")
        if len(parts) == 3 and parts[2] in CHANNEL_FILES:
            return self._read_channel_file(c, parts[2])
        raise _err(errno.ENOENT, f"there is no '{path.strip('/')}' in channel {c.path}")

    @staticmethod
    def _read_trace_file(t: Trace, name: str) -> str:
        if name == "start":
            return "1" if t.running else "0"
        if name == "filter":
            return t.filter.text()
        if name == "output":
            return t.output
        if name == "relay":
            return t.relay
        return str(t.snapshots)

    @staticmethod
    def _read_channel_file(c: TraceChannel, name: str) -> str:
        if name == "subbuf_size":
            return str(c.subbuf_size)
        if name == "n_subbuf":
            return str(c.n_subbuf)
        if name == "flight":
            return "1" if c.flight else "0"
        if name == "global":
            return "1" if c.is_global else "0"
        if name == "allocate":
            return "1" if c.allocated else "0"
        if name == "filter":
            return c.filter.text()
        return stats_text(c)

    # ------------------------------------------------------------------------- write

    def write(self, path: str, value: str) -> None:
        parts = self.split(path)
        value = value.strip()
        if not parts:
            raise _err(errno.EISDIR, "the top directory cannot be written")
        if len(parts) == 1 and parts[0] in self.root_files:
            f = self.root_files[parts[0]]
            if f.write is None:
                raise _err(errno.EACCES, f"'{parts[0]}' is read-only")
            f.write(value)
            self._emit("write", parts[0], value)
            return
        t = self._trace(parts[0])
        if len(parts) == 1:
            raise _err(errno.EISDIR, f"{t.name} is a trace directory; write one of its files")
        if len(parts) == 2 and parts[1] in TRACE_FILES:
            self._write_trace_file(t, parts[1], value)
            return
        c = self._channel(t, parts[1])
        if len(parts) == 2:
            raise _err(errno.EISDIR, f"{c.path} is a channel directory; write one of its files")
        if len(parts) == 3 and parts[2] in CHANNEL_FILES:
            self._write_channel_file(t, c, parts[2], value)
            return
        raise _err(errno.ENOENT, f"there is no '{path.strip('/')}' in channel {c.path}")

    def _write_trace_file(self, t: Trace, name: str, value: str) -> None:
        path = f"{t.name}/{name}"
        if name == "start":
            if _flag(path, value):
                self.start(t)
            else:
                self.stop(t)
        elif name == "filter":
            self._apply_filter(t, None, t.filter, path, value)
            self._emit("write", path, t.filter.text())
        elif name == "output":
            if t.running:
                raise _err(
                    errno.EBUSY, f"trace '{t.name}' is running; stop it to change its output"
                )
            out = os.path.expanduser(value)
            if not os.path.isabs(out) or "\n" in out or "\0" in out:
                raise _err(
                    errno.EINVAL, f"{path} must be an absolute directory path, not '{value}'"
                )
            t.output = os.path.normpath(out)
            self._emit("write", path, t.output)
        elif name == "relay":
            from tracetui.core.wire.relayd import parse_url

            url = ""
            if value.strip():
                try:
                    url = str(parse_url(value))
                except ValueError as e:
                    raise _err(errno.EINVAL, f"{path}: {e}") from None
            t.relay = url
            for hook in self.hooks.relay_changed:
                hook(t)
            self._emit("write", path, t.relay)
        else:
            if not _flag(path, value):
                raise _err(errno.EINVAL, f"write 1 to {path} to take a snapshot")
            self.snapshot(t)

    def _write_channel_file(self, t: Trace, c: TraceChannel, name: str, value: str) -> None:
        path = f"{c.path}/{name}"
        if name in ("subbuf_size", "n_subbuf", "global") and c.allocated:
            raise _err(
                errno.EBUSY,
                f"{c.path} is allocated, so its {name} is fixed; free it with "
                f"`tracetui write {c.path}/allocate 0`"
                + (" after stopping the trace" if t.running else "")
                + " to change it",
            )
        if name == "subbuf_size":
            try:
                size = parse_size(value)
                ring.validate(size, MIN_N_SUBBUF)
            except ValueError as e:
                raise _err(errno.EINVAL, f"{path}: {e}") from None
            c.subbuf_size = size
        elif name == "n_subbuf":
            try:
                n = int(value, 10)
                ring.validate(MIN_SUBBUF, n)
            except ValueError as e:
                msg = str(e) if isinstance(e, ring.InvalidConfig) else f"'{value}' is not a number"
                raise _err(errno.EINVAL, f"{path}: {msg}") from None
            c.n_subbuf = n
        elif name == "global":
            c.is_global = _flag(path, value)
        elif name == "flight":
            c.flight = _flag(path, value)
            if c.buffers is not None:
                c.buffers.flight = c.flight
            for h in self.hooks.flight_changed:
                h(t, c)
        elif name == "allocate":
            if _flag(path, value):
                if not c.allocated:
                    self._allocate(t, c)
            elif c.allocated:
                if t.running:
                    raise _err(
                        errno.EBUSY,
                        f"trace '{t.name}' is running; stop it before freeing {c.path}",
                    )
                self._free(t, c)
        elif name == "filter":
            self._apply_filter(t, c, c.filter, path, value)
        else:
            raise _err(errno.EACCES, f"{path} is read-only")
        self._emit("write", path, self._read_channel_file(c, name))

    def _apply_filter(
        self, t: Trace, c: TraceChannel | None, rules: FilterRules, path: str, value: str
    ) -> None:
        """Apply filter rules (all or nothing); tell the hooks when routing may have moved."""
        try:
            changed = rules.apply(value)
        except ValueError as e:
            raise _err(errno.EINVAL, f"{path}: {e}") from None
        if changed:
            for h in self.hooks.filter_changed:
                h(t, c)

    # ------------------------------------------------------------------------- actions

    def _allocate(self, t: Trace, c: TraceChannel) -> None:
        """Create C's buffers; TraceError (and nothing left behind) when it cannot."""
        for attempt in (1, 2):
            try:
                c.buffers = ring.Channel.create(
                    c.shm_name,
                    c.subbuf_size,
                    c.n_subbuf,
                    is_global=c.is_global,
                    flight=c.flight,
                    uuid=t.uuid,
                    stream_id=0,  # one CTF stream class serves every channel (ctf.py)
                )
                break
            except ring.RingError as e:
                if e.errno == errno.EEXIST and attempt == 1:
                    # The name holds this daemon's pid: a leftover of a crashed daemon that had
                    # the same pid. It is ours to remove.
                    _unlink_shm(c.shm_name)
                    continue
                raise _err(e.errno or errno.ENOMEM, f"{c.path}: {e}") from None
        self.allocations += 1
        try:
            for h in self.hooks.allocated:
                h(t, c)
        except TraceError:
            self._free(t, c)
            raise

    def _free(self, t: Trace, c: TraceChannel) -> None:
        if c.buffers is None:
            return
        for h in self.hooks.freeing:
            h(t, c)
        buf, c.buffers = c.buffers, None
        buf.unlink()
        buf.close()

    def start(self, t: Trace) -> None:
        """Allocate what is not allocated yet, let hooks prepare, then run."""
        if t.running:
            return
        newly: list[TraceChannel] = []
        try:
            for c in t.channels.values():
                if not c.allocated:
                    self._allocate(t, c)
                    newly.append(c)
            for h in self.hooks.starting:
                h(t)
        except TraceError:
            for c in newly:
                self._free(t, c)
            raise
        t.running = True
        for c in newly:
            self._emit("state", f"{c.path}/allocate", "1")
        self._emit("write", f"{t.name}/start", "1")

    def stop(self, t: Trace) -> None:
        """Stop recording and close every partial sub-buffer so the consumer sees all of it."""
        if not t.running:
            return
        t.running = False
        for c in t.channels.values():
            if c.buffers is not None:
                c.buffers.flush()
        for h in self.hooks.stopped:
            h(t)
        self._emit("write", f"{t.name}/start", "0")

    def snapshot(self, t: Trace) -> None:
        if not t.allocated:
            raise _err(
                errno.EINVAL,
                f"trace '{t.name}' has no buffers to snapshot: start it or allocate a channel",
            )
        if not self.hooks.snapshot:
            raise _err(
                errno.EOPNOTSUPP,
                "this daemon has no consumer to write snapshots with",
            )
        for h in self.hooks.snapshot:
            h(t)
        t.snapshots += 1
        self._emit("write", f"{t.name}/snapshot", str(t.snapshots))

    def shutdown(self) -> None:
        """Stop every running trace (flushing it) and free every buffer (unlinking its name)."""
        for t in list(self.traces.values()):
            self.stop(t)
        for t in list(self.traces.values()):
            for c in t.channels.values():
                self._free(t, c)

    # ------------------------------------------------------------------------- queries

    def targets(self, event: str) -> list[tuple[Trace, TraceChannel]]:
        """Where an event goes now: (trace, channel) for each running trace that accepts it.

        Only allocated channels take part in routing: a channel added while the trace runs gets
        its events once it is allocated; until then they go to ``main``.
        """
        out = []
        for t in self.traces.values():
            if not t.running:
                continue
            chans = [(c.name, c.filter) for c in t.channels.values() if c.allocated]
            name = route(event, t.filter, chans)
            if name is not None and name in t.channels and t.channels[name].allocated:
                out.append((t, t.channels[name]))
        return out

    def shm_names(self) -> list[str]:
        return [
            c.shm_name for t in self.traces.values() for c in t.channels.values() if c.allocated
        ]


def _unlink_shm(name: str) -> None:
    try:
        os.unlink(f"/dev/shm{name}")
    except FileNotFoundError:
        return
