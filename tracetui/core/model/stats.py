"""Buffer statistics, with one meaning of "lost", and the text of a ``stats`` read.

Counters per buffer (the ring's ``struct ttrb_stats``):

``recorded``     records committed
``discarded``    records refused because the buffer was full (discard mode), plus those of a
                 writer that died mid-packet (also counted in ``lost_dead``)
``overwritten``  records a flight recorder overwrote before anyone read them
``too_big``      records larger than a sub-buffer
``dropped``      (derived) records refused: discarded + too_big (what ``events_discarded``
                 counts, and what the console marks ✗)
``lost``         (derived) records that will never be read: dropped + overwritten (a flight
                 recorder overwriting is doing its job: the console shows it muted, ↻)

A packet's ``events_discarded`` is the free-running ``discarded + too_big`` of its buffer, as
CTF defines it: the readers turn its increases into loss rows.  A live subscriber that reads
too slowly loses whole batches: those are counted apart, as *dropped* batches, never "lost".
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["STAT_FIELDS", "Stats", "parse_stats", "stats_line"]


@dataclass(frozen=True)
class Stats:
    """Counters of one buffer, or their sum over a channel's buffers."""

    recorded: int = 0
    discarded: int = 0
    overwritten: int = 0
    too_big: int = 0
    lost_dead: int = 0
    bytes: int = 0
    packets: int = 0
    consumed: int = 0
    consumed_packets: int = 0
    stuck_packets: int = 0

    def __add__(self, other: Stats) -> Stats:
        return Stats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def dropped(self) -> int:
        """Records refused by the buffer: discarded (full) or too big."""
        return self.discarded + self.too_big

    @property
    def lost(self) -> int:
        """Records that will never be read: dropped or overwritten."""
        return self.dropped + self.overwritten


STAT_FIELDS = tuple(f.name for f in fields(Stats))


def stats_line(label: str, st: object) -> str:
    """``LABEL recorded=N discarded=N ...``: one line of a ``stats`` read."""
    return label + "".join(f" {k}={getattr(st, k)}" for k in STAT_FIELDS)


def parse_stats(text: str) -> dict[str, Stats]:
    """Parse a ``stats`` read back into {"cpu0": Stats, ..., "total": Stats}."""
    out: dict[str, Stats] = {}
    for line in text.splitlines():
        label, *pairs = line.split()
        values = dict(p.split("=", 1) for p in pairs)
        out[label] = Stats(**{k: int(values.get(k, 0)) for k in STAT_FIELDS})
    return out
