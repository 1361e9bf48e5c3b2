"""Session layouts: what a console session was looking at, saved to TOML and restored later.

The schema (versioned) and its TOML text are core/model/layout.py's; this module owns where
layouts live by default, reading and writing layout files, and the operations on a daemon:

- :func:`capture` reads traces, channels, their settings, trace filters and channel routing from
  the daemon and adds the console's open live views and focus;
- :func:`plan` compares a layout with the daemon and lists what is missing and what conflicts
  (a trace of the same name with other settings); :func:`apply` then recreates what is missing
  and, per conflict, keeps the existing trace or replaces it.

A layout file is validated whole (:func:`loads`) before anything touches the daemon: a bad or
partial file raises :class:`LayoutError` with one sentence and changes nothing. If the daemon
refuses a step while applying, the traces created by that apply are removed again, so nothing
half-made is left behind.

Never imports Textual or Rich: the console, the CLI and tests all use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from tracetui.core.client.state import parse_rules, read_trace
from tracetui.core.model.layout import (
    DEFAULT_HISTORY,
    MAX_HISTORY,
    MIN_HISTORY,
    SCHEMA_VERSION,
    ChannelLayout,
    ExplorerLayout,
    Layout,
    LayoutError,
    TraceLayout,
    ViewLayout,
    dumps,
    loads,
)

__all__ = [
    "DEFAULT_HISTORY",
    "MAX_HISTORY",
    "MIN_HISTORY",
    "SCHEMA_VERSION",
    "ChannelLayout",
    "Conflict",
    "ExplorerLayout",
    "Layout",
    "LayoutError",
    "Plan",
    "Resolution",
    "TraceLayout",
    "ViewLayout",
    "apply",
    "capture",
    "default_dir",
    "dumps",
    "list_layouts",
    "load",
    "loads",
    "plan",
    "resolve",
    "save",
]

_LAYOUT_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

Resolution = Literal["keep", "replace"]


class NamespaceClient(Protocol):
    """The verbs of ``tracetui.core.client.AsyncClient`` that layouts need."""

    async def ls(self, path: str) -> Sequence[Any]: ...
    async def mkdir(self, path: str) -> Any: ...
    async def rmdir(self, path: str) -> Any: ...
    async def read(self, path: str) -> str: ...
    async def write(self, path: str, value: str) -> Any: ...


@dataclass(frozen=True)
class Conflict:
    """A trace of the layout that exists in the daemon with other settings."""

    trace: str
    reason: str  # one sentence

    def __str__(self) -> str:
        return self.reason


@dataclass
class Plan:
    """What applying a layout would do: traces to create and traces in conflict."""

    layout: Layout
    create: list[TraceLayout] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    existing: dict[str, TraceLayout] = field(default_factory=dict)  # conflicting, as they are now


# ------------------------------------------------------------------------------------- paths


def default_dir() -> Path:
    """The directory named layouts live in: ``<user config dir>/tracetui/layouts``."""
    import platformdirs

    return Path(platformdirs.user_config_dir("tracetui")) / "layouts"


def resolve(name_or_path: str, directory: Path | None = None) -> Path:
    """Turn a layout NAME (saved in the default directory) or a PATH into a file path."""
    text = name_or_path.strip()
    if not text:
        raise LayoutError("A layout needs a name or a path.")
    if os.sep in text or text.endswith(".toml") or text.startswith(("~", ".")):
        return Path(text).expanduser()
    if not _LAYOUT_NAME_RE.match(text):
        raise LayoutError(
            f"{text!r} is not a layout name: use letters, digits, '_', '-' or '.', or give a path."
        )
    return (directory or default_dir()) / f"{text}.toml"


def save(layout: Layout, path: Path) -> Path:
    """Write the layout atomically (temp file + rename) with mode 0600; return the path."""
    text = dumps(layout)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        raise LayoutError(f"Cannot save the layout to {path}: {e.strerror or e}.") from None
    return path


def load(path: Path) -> Layout:
    """Read and validate a layout file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LayoutError(f"There is no layout at {path}.") from None
    except UnicodeDecodeError:
        raise LayoutError(f"{path} is not a text file.") from None
    except OSError as e:
        raise LayoutError(f"Cannot read {path}: {e.strerror or e}.") from None
    return loads(text, str(path))


def list_layouts(directory: Path | None = None) -> list[str]:
    """Names of the layouts saved in the default (or given) directory, sorted."""
    d = directory or default_dir()
    try:
        return sorted(p.stem for p in d.glob("*.toml") if not p.name.startswith("."))
    except OSError:
        return []


# ------------------------------------------------------------------------------ the daemon side


async def _dirs(client: NamespaceClient, path: str) -> list[str]:
    return [e.name for e in await client.ls(path) if e.kind == "dir"]


def _saved_output(trace: str, output: str) -> str | None:
    """The output directory to save for TRACE: None for the daemon's default one.

    A default output (``<data dir>/traces/<trace>-<YYYYmmdd-HHMMSS>``) names the directory of
    one past run: restoring it would append the next recording to that old trace, and every
    new trace of that name would conflict with the layout for it.
    """
    path = Path(output)
    if not output or (
        path.parent.name == "traces"
        and re.fullmatch(rf"{re.escape(trace)}-\d{{8}}-\d{{6}}", path.name)
    ):
        return None
    return output


async def capture_trace(client: NamespaceClient, name: str) -> TraceLayout:
    """Read one trace's settings from the daemon (through the console's one reader)."""
    t = await read_trace(client, name)
    channels = [
        ChannelLayout(
            name=c.name,
            subbuf_size=c.subbuf_size,
            n_subbuf=c.n_subbuf,
            flight=c.flight,
            is_global=c.is_global,
            allocated=c.allocated,
            filter=c.filter,
        )
        for c in t.channels
    ]
    channels.sort(key=lambda c: (c.name != "main", c.name))
    return TraceLayout(
        name=name,
        filter=t.filter,
        output=_saved_output(name, t.output),
        channels=tuple(channels),
        relay=t.relay or None,
    )


async def capture(
    client: NamespaceClient,
    views: Sequence[ViewLayout] = (),
    *,
    selected: str | None = None,
    focus: str | None = None,
    history: int = DEFAULT_HISTORY,
    explorers: Sequence[ExplorerLayout] = (),
    relays: Sequence[str] = (),
) -> Layout:
    """Read every trace from the daemon and add the console's views, explorers, selection,
    focus and the relayds its tree lists."""
    traces = [await capture_trace(client, name) for name in sorted(await _dirs(client, ""))]
    return Layout(
        tuple(traces), tuple(views), selected, focus, history, tuple(explorers), tuple(relays)
    )


def _differences(want: TraceLayout, have: TraceLayout) -> str | None:
    """A short description of how an existing trace differs from the layout, or None."""
    if want.filter != have.filter:
        return "its filter differs"
    if want.output is not None and want.output != have.output:
        return "its output directory differs"
    if (want.relay or "") != (have.relay or ""):
        return "its relay differs"
    wanted = {c.name: c for c in want.channels}
    present = {c.name: c for c in have.channels}
    if set(wanted) != set(present):
        return "its channels differ"
    for name, w in wanted.items():
        # Whether buffers are allocated yet is not a difference of configuration.
        if replace(w, allocated=False) != replace(present[name], allocated=False):
            return f"its channel {name!r} has other settings"
    return None


async def plan(client: NamespaceClient, layout: Layout) -> Plan:
    """Compare the layout with the daemon: what to create, what already matches, what conflicts."""
    result = Plan(layout)
    existing = set(await _dirs(client, ""))
    for trace in layout.traces:
        if trace.name not in existing:
            result.create.append(trace)
            continue
        have = await capture_trace(client, trace.name)
        why = _differences(trace, have)
        if why is None:
            result.same.append(trace.name)
        else:
            result.existing[trace.name] = have
            result.conflicts.append(
                Conflict(trace.name, f"A trace named {trace.name!r} already exists and {why}.")
            )
    return result


async def _write_rules(client: NamespaceClient, path: str, rules: Sequence[str]) -> None:
    """Make the filter at PATH hold exactly RULES.

    One write ("0" then the rules): the daemon applies a write's rules all-or-nothing, and
    writing back what a read returned after "0" restores a filter exactly.
    """
    if parse_rules(await client.read(path)) != tuple(rules):
        await client.write(path, " ".join(["0", *rules]))


async def create_trace(client: NamespaceClient, trace: TraceLayout) -> None:
    """Create one trace as described; if the daemon refuses any step, remove it again and raise."""
    await client.mkdir(trace.name)
    try:
        if trace.output is not None:
            await client.write(f"{trace.name}/output", trace.output)
        await _write_rules(client, f"{trace.name}/filter", trace.filter)
        for chan in trace.channels:
            p = f"{trace.name}/{chan.name}"
            if chan.name != "main":
                await client.mkdir(p)
            await client.write(f"{p}/subbuf_size", str(chan.subbuf_size))
            await client.write(f"{p}/n_subbuf", str(chan.n_subbuf))
            await client.write(f"{p}/global", "1" if chan.is_global else "0")
            await client.write(f"{p}/flight", "1" if chan.flight else "0")
            await _write_rules(client, f"{p}/filter", chan.filter)
        for chan in trace.channels:
            if chan.allocated:
                await client.write(f"{trace.name}/{chan.name}/allocate", "1")
        if trace.relay:
            await client.write(f"{trace.name}/relay", trace.relay)
    except BaseException:
        await _remove_quietly(client, trace.name)
        raise


async def _remove_quietly(client: NamespaceClient, trace: str) -> None:
    """Best-effort rollback; the original refusal is what the user needs to see."""
    from tracetui.core.errors import TraceError

    try:
        await client.rmdir(trace)
    except TraceError:
        # The refusal being reported is the useful sentence; a failed rollback of a trace that
        # never started cannot hold resources beyond what the daemon reports in `ls`.
        return


async def apply(
    client: NamespaceClient,
    layout_plan: Plan,
    resolutions: dict[str, Resolution] | None = None,
) -> list[str]:
    """Create what is missing and resolve conflicts (default: keep the existing trace).

    Returns the names of the traces created or replaced. On a refusal by the daemon, every trace
    this call created is removed again, every trace it replaced is recreated as it was, and the
    refusal (a ``TraceError``) propagates.
    """
    from tracetui.core.errors import TraceError

    resolutions = resolutions or {}
    done: list[str] = []
    replaced: list[TraceLayout] = []
    todo = list(layout_plan.create)
    for conflict in layout_plan.conflicts:
        if resolutions.get(conflict.trace, "keep") == "replace":
            todo.append(next(t for t in layout_plan.layout.traces if t.name == conflict.trace))
    try:
        for trace in todo:
            old = layout_plan.existing.get(trace.name)
            if old is not None:
                # A running trace cannot be removed: the daemon refuses (EBUSY) with its sentence.
                await client.rmdir(trace.name)
                replaced.append(old)
            await create_trace(client, trace)
            done.append(trace.name)
    except TraceError:
        for name in done:
            await _remove_quietly(client, name)
        for old in replaced:
            # Removed above, or removed by create_trace's own rollback: put it back as it was.
            try:
                await create_trace(client, old)
            except TraceError:
                continue  # the first refusal is the one reported
        raise
    return done
