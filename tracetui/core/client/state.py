"""The console's picture of the daemon's namespace: plain frozen dataclasses, and reading them.

Widgets draw from a :class:`NamespaceState` and never talk to the daemon themselves: the main
screen reads the state through the async client (:func:`read_state`, :func:`read_stats`) when
the namespace changes, and snapshot tests or screenshots build one from fixtures. Nothing here
imports Textual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from tracetui.core.model.markers import Marker, marker_table
from tracetui.core.model.stats import Stats, parse_stats


class StateClient(Protocol):
    """What reading the state needs of ``tracetui.core.client.AsyncClient``."""

    async def ls(self, path: str) -> Sequence[Any]: ...
    async def read(self, path: str) -> str: ...


@dataclass(frozen=True)
class ChannelState:
    """One channel: settings, routing filter, and the totals of its last statistics read."""

    name: str
    subbuf_size: int
    n_subbuf: int
    flight: bool
    is_global: bool
    allocated: bool
    filter: tuple[str, ...]
    recorded: int = 0
    discarded: int = 0
    overwritten: int = 0
    too_big: int = 0

    @property
    def dropped(self) -> int:
        """Records refused (buffer full, or too big): as ``Stats.dropped``."""
        return self.discarded + self.too_big


@dataclass(frozen=True)
class TraceState:
    name: str
    recording: bool
    filter: tuple[str, ...]
    output: str
    channels: tuple[ChannelState, ...]
    relay: str = ""  # the lttng-relayd it streams to ("" when not streaming)

    def channel(self, name: str) -> ChannelState | None:
        return next((c for c in self.channels if c.name == name), None)


@dataclass(frozen=True)
class NamespaceState:
    traces: tuple[TraceState, ...] = ()
    markers: tuple[Marker, ...] = ()

    def trace(self, name: str) -> TraceState | None:
        return next((t for t in self.traces if t.name == name), None)

    def channel(self, path: str) -> ChannelState | None:
        tname, _, cname = path.partition("/")
        t = self.trace(tname)
        return t.channel(cname) if t else None

    def with_stats(self, path: str, total: Stats) -> NamespaceState:
        """A copy whose channel PATH carries these totals."""
        tname, _, cname = path.partition("/")
        traces = []
        for t in self.traces:
            if t.name == tname:
                chans = tuple(
                    replace(
                        c,
                        recorded=total.recorded,
                        discarded=total.discarded,
                        overwritten=total.overwritten,
                        too_big=total.too_big,
                    )
                    if c.name == cname
                    else c
                    for c in t.channels
                )
                t = replace(t, channels=chans)
            traces.append(t)
        return replace(self, traces=tuple(traces))


@dataclass
class ChannelStats:
    """One statistics read of a channel: per buffer ("cpu0", ... or "global") and the total."""

    buffers: dict[str, Stats] = field(default_factory=dict)
    total: Stats = field(default_factory=Stats)


def parse_rules(text: str) -> tuple[str, ...]:
    """A filter file's rules; the daemon reads "0" for a filter with no rule."""
    rules = tuple(text.split())
    return () if rules == ("0",) else rules


def _flag(text: str) -> bool:
    return text.strip() == "1"


async def read_stats(client: StateClient, path: str) -> ChannelStats:
    """Read ``PATH/stats`` of one channel."""
    parsed = parse_stats(await client.read(f"{path}/stats"))
    total = parsed.pop("total", Stats())
    return ChannelStats(parsed, total)


async def read_channel(client: StateClient, trace: str, name: str) -> ChannelState:
    p = f"{trace}/{name}"
    allocated = _flag(await client.read(f"{p}/allocate"))
    stats = (await read_stats(client, p)).total if allocated else Stats()
    return ChannelState(
        name=name,
        subbuf_size=int(await client.read(f"{p}/subbuf_size")),
        n_subbuf=int(await client.read(f"{p}/n_subbuf")),
        flight=_flag(await client.read(f"{p}/flight")),
        is_global=_flag(await client.read(f"{p}/global")),
        allocated=allocated,
        filter=parse_rules(await client.read(f"{p}/filter")),
        recorded=stats.recorded,
        discarded=stats.discarded,
        overwritten=stats.overwritten,
        too_big=stats.too_big,
    )


async def read_trace(client: StateClient, name: str) -> TraceState:
    entries = await client.ls(name)
    names = [e.name for e in entries if e.kind == "dir"]
    channels = [await read_channel(client, name, c) for c in names]
    has_relay = any(e.name == "relay" and e.kind != "dir" for e in entries)
    # main first, then in creation order (as ls lists them).
    channels.sort(key=lambda c: c.name != "main")
    return TraceState(
        name=name,
        recording=_flag(await client.read(f"{name}/start")),
        filter=parse_rules(await client.read(f"{name}/filter")),
        output=(await client.read(f"{name}/output")).strip(),
        channels=tuple(channels),
        relay=(await client.read(f"{name}/relay")).strip() if has_relay else "",
    )


async def read_state(client: StateClient) -> NamespaceState:
    """Read the whole namespace (a few dozen reads for a handful of traces)."""
    entries = await client.ls("")
    traces = [await read_trace(client, e.name) for e in entries if e.kind == "dir"]
    markers: tuple[Marker, ...] = ()
    if any(e.name == "markers" for e in entries):
        markers = tuple(marker_table(await client.read("markers")).values())
    return NamespaceState(tuple(sorted(traces, key=lambda t: t.name)), markers)
