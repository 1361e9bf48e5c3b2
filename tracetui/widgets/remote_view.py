"""Remote sessions in the console's live views: items read from an lttng-relayd (any producer)
turned into what ``LiveView`` draws, and the feed that hands them over.

``LiveView`` draws tracetui events (a marker format per event class) and losses; events LTTng
wrote (core/trace/ctf.py's ``CTFEvent``: a name and a dict of fields) get one ``RemoteClass``
per (name, CPU, clock) whose format lists the fields and renders ``name=value`` pairs, so the
view's compact rows, filters, search and time columns work unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from tracetui.core.client.remote import watch_remote
from tracetui.core.errors import TraceError
from tracetui.core.trace.packets import Event, Item, Loss
from tracetui.widgets.live_view import LiveView

__all__ = ["RemoteClass", "adapt_items", "feed_remote", "view_name"]


def _value(v: Any) -> str:
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, tuple) and hasattr(v, "label"):  # an enum: its label
        return str(v.label) if v.label is not None else str(v.value)  # type: ignore[attr-defined]
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={_value(x)}" for k, x in v.items()) + "}"
    return str(v)


class _Format:
    """The part of a MarkerFormat the live view uses: field names and their rendering."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def format_values(self, values: Sequence[Any]) -> str:
        return ", ".join(f"{n}={_value(v)}" for n, v in zip(self.names, values, strict=False))


class RemoteClass:
    """One event class of another producer's stream (hashed by identity, cached per key)."""

    def __init__(self, name: str, cpu: int, clock: Any, names: tuple[str, ...]) -> None:
        self.name = name
        self.cpu = cpu
        self.clock = clock
        self.format = _Format(names)


class _Row(NamedTuple):
    tsc: int
    cls: RemoteClass
    values: tuple[Any, ...]


_classes: dict[tuple[Any, ...], RemoteClass] = {}


def adapt_items(items: Sequence[Item]) -> list[Any]:
    """tracetui events and losses as they are; other producers' events as rows the view draws."""
    out: list[Any] = []
    for it in items:
        if isinstance(it, Event | Loss):
            out.append(it)
            continue
        fields: dict[str, Any] = {**(getattr(it, "context", None) or {}), **it.fields}
        names = tuple(fields)
        stream = it.stream
        key = (it.name, stream.cpu, id(stream.clock), names)
        cls = _classes.get(key)
        if cls is None:
            cls = _classes[key] = RemoteClass(it.name, stream.cpu, stream.clock, names)
        out.append(_Row(it.tsc, cls, tuple(fields.values())))
    return out


def view_name(hostname: str, session: str) -> str:
    """The live view's channel label: ``remote/HOST/SESSION`` (safe in widget ids)."""

    def safe(s: str) -> str:
        return re.sub(r"[^A-Za-z0-9_-]", "_", s) or "_"

    return f"remote/{safe(hostname)}/{safe(session)}"


async def feed_remote(
    url: str, view: LiveView, notify: Callable[..., Any], from_beginning: bool = True
) -> None:
    """Hand a remote session's batches to a live view until the session ends."""
    seen_dropped = 0
    try:
        async for batch in watch_remote(url, from_beginning=from_beginning):
            dropped = max(0, batch.dropped_batches - seen_dropped)
            seen_dropped = max(seen_dropped, batch.dropped_batches)
            view.append_batch(adapt_items(batch.items), dropped)
            for error in batch.errors:
                notify(f"Remote view of {url}: {error}", severity="warning")
    except TraceError as e:
        notify(f"Remote view of {url} stopped: {e}", severity="error")
        return
    notify(f"Remote session {url} ended.")
