"""What every recorded trace offers its readers, whoever wrote it.

tracetui's own trace directories (core/trace/reader.py, ``TraceDirectory``) and traces written
by other CTF producers (LTTng-UST, lttng-modules) are read through one face, so ``tracetui
dump``, the explorer and the exports never ask which writer made a trace:

- ``streams``: the trace's ``Stream`` objects (channel, cpu, file path, clock), sorted;
- ``packet_index(stream)``: one ``PacketInfo`` per packet, read from packet headers and contexts
  only (never by decoding events), so opening a large trace costs its packet count;
- ``packet_items(stream, info)``: the ``Event`` and ``Loss`` items of one packet, in order,
  losses first (the same ``LossTracker`` rule as the merged iteration: a rise of
  ``events_discarded`` and a gap of ``packet_seq_num`` since the previous packet of the stream);
- iteration / ``batches()``: every item of the trace in timestamp order across streams.

An event item has ``name``, ``fields`` (a dict, field order as the trace declares it),
``ts_ns`` (the trace clock in nanoseconds), ``wall_ns`` (nanoseconds since the Unix epoch, as
babeltrace2 prints them), ``cpu`` and ``channel``; a loss item has ``lost``, ``unit``
("events" or "packets"), ``ts_ns``, ``wall_ns``, ``cpu`` and ``channel``.

``core.trace.traces.open_trace(path)`` opens a directory with whichever reader its metadata
calls for and raises ``TraceFormatError`` (one sentence) for anything else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from tracetui.core.trace.packets import Item, Stream

__all__ = ["PacketInfo", "TraceSource"]


@dataclass(frozen=True)
class PacketInfo:
    """One packet of one stream file, as its header and context describe it.

    Sizes in bytes; times in the trace clock's nanoseconds (``Event.ts_ns``'s scale) and since
    the Unix epoch (``wall``); ``seq`` is None where the producer writes no sequence number.
    """

    offset: int
    packet_size: int
    content_size: int
    begin_ns: int
    end_ns: int
    begin_wall_ns: int
    end_wall_ns: int
    events_discarded: int
    seq: int | None
    index: int  # position in its stream's index


class TraceSource(Protocol):
    """The face of a recorded trace (see the module docstring)."""

    path: str
    streams: list[Stream]

    @property
    def env(self) -> dict[str, str | int]: ...

    @property
    def channels(self) -> list[str]: ...

    def packet_index(self, stream: Stream) -> list[PacketInfo]: ...

    def packet_items(self, stream: Stream, info: PacketInfo) -> list[Any]: ...

    def batches(self) -> Iterator[list[Item]]: ...

    def __iter__(self) -> Iterator[Item]: ...
