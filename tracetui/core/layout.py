"""Session layouts: what a console session was looking at, saved to TOML and restored later.

This module owns the layout schema (versioned), its TOML reader (``tomllib``) and writer (a small
one of its own: layouts only need strings, integers, booleans, arrays of strings and tables),
where layouts live by default, and the two operations on a daemon:

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
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

SCHEMA_VERSION = 1
DEFAULT_HISTORY = 100_000
MIN_HISTORY = 100
MAX_HISTORY = 10_000_000
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_LAYOUT_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

Resolution = Literal["keep", "replace"]


class LayoutError(Exception):
    """A layout that cannot be read, written or applied; ``str()`` is one sentence."""


class NamespaceClient(Protocol):
    """The verbs of ``tracetui.core.client.AsyncClient`` that layouts need."""

    async def ls(self, path: str) -> Sequence[Any]: ...
    async def mkdir(self, path: str) -> Any: ...
    async def rmdir(self, path: str) -> Any: ...
    async def read(self, path: str) -> str: ...
    async def write(self, path: str, value: str) -> Any: ...


# --------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ChannelLayout:
    """One channel's settings and routing filter."""

    name: str
    subbuf_size: int
    n_subbuf: int
    flight: bool = False
    is_global: bool = False
    allocated: bool = False
    filter: tuple[str, ...] = ()


@dataclass(frozen=True)
class TraceLayout:
    """One trace: its event filter, output directory and channels (``main`` first)."""

    name: str
    filter: tuple[str, ...] = ()
    output: str | None = None
    channels: tuple[ChannelLayout, ...] = ()


@dataclass(frozen=True)
class ViewLayout:
    """One open live view and its display settings."""

    channel: str  # "trace/channel"
    follow: bool = True
    name_filter: str = ""
    search: str = ""
    show_cpu: bool = True
    absolute_time: bool = False


@dataclass(frozen=True)
class Layout:
    """A whole session: traces, live views, focus, console settings."""

    traces: tuple[TraceLayout, ...] = ()
    views: tuple[ViewLayout, ...] = ()
    selected: str | None = None  # tree node path: "", "markers", "t", "t/c"
    focus: str | None = None  # "tree", or "view:t/c"
    history: int = DEFAULT_HISTORY


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


# ------------------------------------------------------------------------------------ writing


def _toml_str(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_value(value: object) -> str:
    # bool before int: bool is an int subclass.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to a layout")


def _kv(key: str, value: object) -> str:
    return f"{key} = {_toml_value(value)}"


def dumps(layout: Layout) -> str:
    """The layout as TOML text (read back by :func:`loads`)."""
    lines = [
        "# tracetui session layout",
        _kv("version", SCHEMA_VERSION),
        "",
        "[console]",
        _kv("history", layout.history),
    ]
    if layout.selected is not None:
        lines.append(_kv("selected", layout.selected))
    if layout.focus is not None:
        lines.append(_kv("focus", layout.focus))
    for trace in layout.traces:
        lines += ["", "[[trace]]", _kv("name", trace.name), _kv("filter", list(trace.filter))]
        if trace.output is not None:
            lines.append(_kv("output", trace.output))
        for chan in trace.channels:
            lines += [
                "",
                "[[trace.channel]]",
                _kv("name", chan.name),
                _kv("subbuf_size", chan.subbuf_size),
                _kv("n_subbuf", chan.n_subbuf),
                _kv("flight", chan.flight),
                _kv("global", chan.is_global),
                _kv("allocate", chan.allocated),
                _kv("filter", list(chan.filter)),
            ]
    for view in layout.views:
        lines += [
            "",
            "[[view]]",
            _kv("channel", view.channel),
            _kv("follow", view.follow),
            _kv("name_filter", view.name_filter),
            _kv("search", view.search),
            _kv("show_cpu", view.show_cpu),
            _kv("absolute_time", view.absolute_time),
        ]
    return "\n".join(lines) + "\n"


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


# ------------------------------------------------------------------------------------ reading


class _Checker:
    """Type checks for one table of the file, with the location in every message."""

    def __init__(self, table: object, where: str) -> None:
        if not isinstance(table, dict):
            raise LayoutError(f"{where} must be a table.")
        self.table: dict[str, Any] = table
        self.where = where

    def known(self, keys: Iterable[str]) -> None:
        unknown = sorted(set(self.table) - set(keys))
        if unknown:
            raise LayoutError(f"{self.where} has an unknown key {unknown[0]!r}.")

    def _get(self, key: str, required: bool) -> Any:
        if key not in self.table:
            if required:
                raise LayoutError(f"{self.where} is missing {key!r}.")
            return None
        return self.table[key]

    def string(self, key: str, *, required: bool = False, default: str | None = None) -> Any:
        value = self._get(key, required)
        if value is None:
            return default
        if not isinstance(value, str):
            raise LayoutError(f"{self.where}: {key!r} must be a string.")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise LayoutError(f"{self.where}: {key!r} must be true or false.")
        return value

    def integer(self, key: str, *, required: bool = False, default: int = 0) -> int:
        value = self._get(key, required)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise LayoutError(f"{self.where}: {key!r} must be an integer.")
        return value

    def size(self, key: str) -> int:
        """An integer, or a string like "256K" (the same syntax the namespace accepts)."""
        value = self._get(key, True)
        if isinstance(value, str):
            from tracetui.core.buffers import parse_size

            try:
                return parse_size(value)
            except ValueError as e:
                raise LayoutError(f"{self.where}: {key!r}: {e}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise LayoutError(f'{self.where}: {key!r} must be a size like 262144 or "256K".')
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._get(key, False)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise LayoutError(f"{self.where}: {key!r} must be a list of strings.")
        for rule in value:
            if not rule.strip() or "\n" in rule:
                raise LayoutError(f"{self.where}: {key!r} has an empty or multi-line rule.")
        return tuple(value)

    def tables(self, key: str) -> list[Any]:
        value = self._get(key, False)
        if value is None:
            return []
        if not isinstance(value, list):
            raise LayoutError(f"{self.where}: {key!r} must be an array of tables ([[{key}]]).")
        return value


def _name(checker: _Checker, what: str) -> str:
    name: str = checker.string("name", required=True)
    if not _NAME_RE.match(name):
        raise LayoutError(f"{checker.where}: {name!r} is not a valid {what} name.")
    return name


def loads(text: str, source: str = "the layout") -> Layout:
    """Parse and validate a whole layout; any problem raises :class:`LayoutError`."""
    from tracetui.core.buffers import InvalidConfig, validate

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise LayoutError(f"{source} is not valid TOML ({e}).") from None
    top = _Checker(doc, source)
    if "version" not in doc:
        raise LayoutError(f"{source} has no schema version: is it a tracetui layout?")
    version = top.integer("version", required=True)
    if version > SCHEMA_VERSION:
        raise LayoutError(
            f"{source} uses layout schema {version}, newer than this tracetui reads "
            f"({SCHEMA_VERSION}); upgrade tracetui."
        )
    if version < 1:
        raise LayoutError(f"{source} has an invalid schema version {version}.")
    top.known(["version", "console", "trace", "view"])

    console = _Checker(doc.get("console", {}), f"{source} [console]")
    console.known(["history", "selected", "focus"])
    history = console.integer("history", default=DEFAULT_HISTORY)
    if not MIN_HISTORY <= history <= MAX_HISTORY:
        raise LayoutError(
            f"{source} [console]: history must be between {MIN_HISTORY} and {MAX_HISTORY}."
        )

    traces: list[TraceLayout] = []
    for i, raw in enumerate(top.tables("trace"), 1):
        tc = _Checker(raw, f"{source} trace #{i}")
        tc.known(["name", "filter", "output", "channel"])
        tname = _name(tc, "trace")
        tc.where = f"{source} trace {tname!r}"
        if any(t.name == tname for t in traces):
            raise LayoutError(f"{source} names trace {tname!r} twice.")
        channels: list[ChannelLayout] = []
        for j, craw in enumerate(tc.tables("channel"), 1):
            cc = _Checker(craw, f"{tc.where} channel #{j}")
            cc.known(["name", "subbuf_size", "n_subbuf", "flight", "global", "allocate", "filter"])
            cname = _name(cc, "channel")
            cc.where = f"{source} channel {tname}/{cname}"
            if any(c.name == cname for c in channels):
                raise LayoutError(f"{source} names channel {tname}/{cname} twice.")
            subbuf_size = cc.size("subbuf_size")
            n_subbuf = cc.integer("n_subbuf", required=True)
            try:
                validate(subbuf_size, n_subbuf)
            except InvalidConfig as e:
                raise LayoutError(f"{cc.where}: {e}") from None
            channels.append(
                ChannelLayout(
                    name=cname,
                    subbuf_size=subbuf_size,
                    n_subbuf=n_subbuf,
                    flight=cc.boolean("flight", False),
                    is_global=cc.boolean("global", False),
                    allocated=cc.boolean("allocate", False),
                    filter=cc.strings("filter"),
                )
            )
        if not any(c.name == "main" for c in channels):
            raise LayoutError(f"{tc.where} has no channel 'main' (every trace has one).")
        channels.sort(key=lambda c: c.name != "main")  # main first: mkdir creates it
        traces.append(
            TraceLayout(
                name=tname,
                filter=tc.strings("filter"),
                output=tc.string("output"),
                channels=tuple(channels),
            )
        )

    known_channels = {f"{t.name}/{c.name}" for t in traces for c in t.channels}
    views: list[ViewLayout] = []
    for i, raw in enumerate(top.tables("view"), 1):
        vc = _Checker(raw, f"{source} view #{i}")
        vc.known(["channel", "follow", "name_filter", "search", "show_cpu", "absolute_time"])
        chan = vc.string("channel", required=True)
        if chan not in known_channels:
            raise LayoutError(
                f"{vc.where} shows channel {chan!r}, which the layout does not define."
            )
        views.append(
            ViewLayout(
                channel=chan,
                follow=vc.boolean("follow", True),
                name_filter=vc.string("name_filter", default=""),
                search=vc.string("search", default=""),
                show_cpu=vc.boolean("show_cpu", True),
                absolute_time=vc.boolean("absolute_time", False),
            )
        )

    selected = console.string("selected")
    focus = console.string("focus")
    if focus is not None and focus != "tree" and not focus.startswith("view:"):
        raise LayoutError(f'{source} [console]: focus must be "tree" or "view:TRACE/CHANNEL".')
    return Layout(tuple(traces), tuple(views), selected, focus, history)


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


def _rules(text: str) -> tuple[str, ...]:
    """A filter file's rules; the daemon reads "0" for a filter with no rule."""
    rules = tuple(t for t in text.split() if t)
    return () if rules == ("0",) else rules


def _flag(text: str) -> bool:
    return text.strip() == "1"


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
    """Read one trace's settings from the daemon."""
    channels = []
    for cname in await _dirs(client, name):
        p = f"{name}/{cname}"
        channels.append(
            ChannelLayout(
                name=cname,
                subbuf_size=int((await client.read(f"{p}/subbuf_size")).strip()),
                n_subbuf=int((await client.read(f"{p}/n_subbuf")).strip()),
                flight=_flag(await client.read(f"{p}/flight")),
                is_global=_flag(await client.read(f"{p}/global")),
                allocated=_flag(await client.read(f"{p}/allocate")),
                filter=_rules(await client.read(f"{p}/filter")),
            )
        )
    channels.sort(key=lambda c: (c.name != "main", c.name))
    return TraceLayout(
        name=name,
        filter=_rules(await client.read(f"{name}/filter")),
        output=_saved_output(name, (await client.read(f"{name}/output")).strip()),
        channels=tuple(channels),
    )


async def capture(
    client: NamespaceClient,
    views: Sequence[ViewLayout] = (),
    *,
    selected: str | None = None,
    focus: str | None = None,
    history: int = DEFAULT_HISTORY,
) -> Layout:
    """Read every trace from the daemon and add the console's views, selection and focus."""
    traces = [await capture_trace(client, name) for name in sorted(await _dirs(client, ""))]
    return Layout(tuple(traces), tuple(views), selected, focus, history)


def _differences(want: TraceLayout, have: TraceLayout) -> str | None:
    """A short description of how an existing trace differs from the layout, or None."""
    if want.filter != have.filter:
        return "its filter differs"
    if want.output is not None and want.output != have.output:
        return "its output directory differs"
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
    if _rules(await client.read(path)) != tuple(rules):
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
