"""The session layout schema: what a layout file holds, validated whole, as TOML text.

A layout (schema version :data:`SCHEMA_VERSION`) is the traces of a session (settings,
filters, channels), the console's open live views and explorers (``[[explorer]]``: a recorded
trace's path, the list's time and filter), its selection, focus and history.
:func:`loads` validates a whole file (``tomllib``) before anything uses it, raising
:class:`LayoutError` with one sentence naming the place; :func:`dumps` writes the same schema
(``tomli-w``).  Reading and writing files, and applying a layout to a daemon, are
core/layout.py's.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import tomli_w

from tracetui.core.model.geometry import InvalidGeometry, parse_size, validate

__all__ = [
    "DEFAULT_HISTORY",
    "MAX_HISTORY",
    "MIN_HISTORY",
    "SCHEMA_VERSION",
    "ChannelLayout",
    "ExplorerLayout",
    "Layout",
    "LayoutError",
    "TraceLayout",
    "ViewLayout",
    "dumps",
    "loads",
]

SCHEMA_VERSION = 1
DEFAULT_HISTORY = 100_000
MIN_HISTORY = 100
MAX_HISTORY = 10_000_000
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class LayoutError(Exception):
    """A layout that cannot be read, written or applied; ``str()`` is one sentence."""


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
    relay: str | None = None  # net://... of the lttng-relayd it streams to


@dataclass(frozen=True)
class ViewLayout:
    """One open live view and its display settings."""

    channel: str  # "trace/channel", or "remote/HOST/SESSION" for a remote view
    follow: bool = True
    name_filter: str = ""
    search: str = ""
    show_cpu: bool = True
    absolute_time: bool = False
    remote: str = ""  # a remote view's live URL: net://RELAYD[:PORT]/host/HOSTNAME/SESSION


# The form a remote view's URL must have (the live client checks it fully when it attaches).
_REMOTE_RE = re.compile(r"^net://[^/\s]+/host/[^/\s]+/[^/\s]+$")
_RELAY_RE = re.compile(r"^net://[^/\s]+$")  # an lttng-relayd the tree lists: net://HOST:PORT


@dataclass(frozen=True)
class ExplorerLayout:
    """One open explorer (``o``): a recorded trace, the list's time and its filter."""

    path: str  # the trace directory
    position_ns: int = 0  # the list's time, ns from the trace's first packet
    filter: str = ""  # the explorer's filter: NAMES, where PREDICATE, or both


@dataclass(frozen=True)
class Layout:
    """A whole session: traces, live views, focus, console settings."""

    traces: tuple[TraceLayout, ...] = ()
    views: tuple[ViewLayout, ...] = ()
    selected: str | None = None  # tree node path: "", "markers", "t", "t/c"
    focus: str | None = None  # "tree", or "view:t/c"
    history: int = DEFAULT_HISTORY
    explorers: tuple[ExplorerLayout, ...] = ()
    relays: tuple[str, ...] = ()  # lttng-relayds the tree's "remote" node lists


# ------------------------------------------------------------------------------------ writing


def _document(layout: Layout) -> dict[str, Any]:
    """The layout as the TOML document :func:`loads` reads (None values are left out)."""
    console: dict[str, Any] = {"history": layout.history}
    if layout.selected is not None:
        console["selected"] = layout.selected
    if layout.focus is not None:
        console["focus"] = layout.focus
    if layout.relays:
        console["relays"] = list(layout.relays)
    doc: dict[str, Any] = {"version": SCHEMA_VERSION, "console": console}
    traces = []
    for trace in layout.traces:
        t: dict[str, Any] = {"name": trace.name, "filter": list(trace.filter)}
        if trace.output is not None:
            t["output"] = trace.output
        if trace.relay:
            t["relay"] = trace.relay
        t["channel"] = [
            {
                "name": c.name,
                "subbuf_size": c.subbuf_size,
                "n_subbuf": c.n_subbuf,
                "flight": c.flight,
                "global": c.is_global,
                "allocate": c.allocated,
                "filter": list(c.filter),
            }
            for c in trace.channels
        ]
        traces.append(t)
    if traces:
        doc["trace"] = traces
    if layout.views:
        doc["view"] = [
            {
                **({"remote": v.remote} if v.remote else {}),
                "channel": v.channel,
                "follow": v.follow,
                "name_filter": v.name_filter,
                "search": v.search,
                "show_cpu": v.show_cpu,
                "absolute_time": v.absolute_time,
            }
            for v in layout.views
        ]
    if layout.explorers:
        doc["explorer"] = [
            {"path": e.path, "position_ns": e.position_ns, "filter": e.filter}
            for e in layout.explorers
        ]
    return doc


def dumps(layout: Layout) -> str:
    """The layout as TOML text (read back by :func:`loads`)."""
    return "# tracetui session layout\n" + tomli_w.dumps(_document(layout))


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
    top.known(["version", "console", "trace", "view", "explorer"])

    console = _Checker(doc.get("console", {}), f"{source} [console]")
    console.known(["history", "selected", "focus", "relays"])
    relays = console.strings("relays")
    for r in relays:
        if not _RELAY_RE.match(r):
            raise LayoutError(f"{source} [console]: relay {r!r} is not net://HOST[:PORT].")
    history = console.integer("history", default=DEFAULT_HISTORY)
    if not MIN_HISTORY <= history <= MAX_HISTORY:
        raise LayoutError(
            f"{source} [console]: history must be between {MIN_HISTORY} and {MAX_HISTORY}."
        )

    traces: list[TraceLayout] = []
    for i, raw in enumerate(top.tables("trace"), 1):
        tc = _Checker(raw, f"{source} trace #{i}")
        tc.known(["name", "filter", "output", "relay", "channel"])
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
            except InvalidGeometry as e:
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
                relay=tc.string("relay"),
            )
        )

    known_channels = {f"{t.name}/{c.name}" for t in traces for c in t.channels}
    views: list[ViewLayout] = []
    for i, raw in enumerate(top.tables("view"), 1):
        vc = _Checker(raw, f"{source} view #{i}")
        vc.known(
            ["channel", "follow", "name_filter", "search", "show_cpu", "absolute_time", "remote"]
        )
        chan = vc.string("channel", required=True)
        remote = vc.string("remote", default="")
        if remote:
            if not _REMOTE_RE.match(remote):
                raise LayoutError(
                    f"{vc.where}: remote {remote!r} is not net://RELAYD[:PORT]/host/HOST/SESSION."
                )
        elif chan not in known_channels:
            raise LayoutError(
                f"{vc.where} shows channel {chan!r}, which the layout does not define."
            )
        views.append(
            ViewLayout(
                remote=remote,
                channel=chan,
                follow=vc.boolean("follow", True),
                name_filter=vc.string("name_filter", default=""),
                search=vc.string("search", default=""),
                show_cpu=vc.boolean("show_cpu", True),
                absolute_time=vc.boolean("absolute_time", False),
            )
        )

    explorers: list[ExplorerLayout] = []
    for i, raw in enumerate(top.tables("explorer"), 1):
        ec = _Checker(raw, f"{source} explorer #{i}")
        ec.known(["path", "position_ns", "filter"])
        path = ec.string("path", required=True)
        if not path.strip() or "\n" in path:
            raise LayoutError(f"{ec.where}: 'path' must name a trace directory.")
        position = ec.integer("position_ns", default=0)
        if position < 0:
            raise LayoutError(f"{ec.where}: 'position_ns' must be 0 or more.")
        text = ec.string("filter", default="")
        if "\n" in text:
            raise LayoutError(f"{ec.where}: 'filter' must be one line.")
        explorers.append(ExplorerLayout(path, position, text))

    selected = console.string("selected")
    focus = console.string("focus")
    if focus is not None and focus != "tree" and not focus.startswith("view:"):
        raise LayoutError(f'{source} [console]: focus must be "tree" or "view:TRACE/CHANNEL".')
    return Layout(
        tuple(traces), tuple(views), selected, focus, history, tuple(explorers), relays
    )
