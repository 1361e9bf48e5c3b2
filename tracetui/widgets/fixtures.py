"""Deterministic console data: a namespace state and live events with fixed timestamps.

Snapshot tests, ``scripts/screenshots.py`` and ``benchmarks/bench_console.py`` draw the console
from these instead of a live daemon, so their output never depends on time, CPU or load. The
events are real ``tracetui.core.trace.reader.Event`` objects (the live view's input type), decoded
against real marker formats.
"""

from __future__ import annotations

from typing import Any

from tracetui.core.client.state import (
    ChannelState,
    ChannelStats,
    NamespaceState,
    TraceState,
)
from tracetui.core.model.clock import TraceClock
from tracetui.core.model.markers import Marker
from tracetui.core.model.stats import Stats
from tracetui.core.trace.packets import Event, EventClass, Loss, Stream

# 1 GHz ticks, tick 0 = 2024-01-01 00:00:00 UTC; monotonic 1000 s at tick 0.
CLOCK = TraceClock(freq=1_000_000_000, offset_s=1_704_067_200, offset=0, tsc0=0, mono_ns0=10**12)

MARKERS = (
    Marker.make(0, "sched_switch", "prev_pid %d next_pid %d prev_comm %s next_comm %s"),
    Marker.make(1, "sched_wakeup", "pid %d target_cpu %d"),
    Marker.make(2, "proc_fork", "parent_pid %d child_pid %d"),
    Marker.make(3, "proc_exec", "pid %d filename %s"),
    Marker.make(4, "proc_exit", "pid %d status %d"),
    Marker.make(5, "mem_counters", "rss_kb %lu page_faults %lu ctx_switches %lu"),
    Marker.make(6, "irq_handler", "irq %u handler %p"),
)

_COMMS = ("bash", "make", "cc1", "python3", "kworker/0:1", "sshd", "ld", "as")


def _classes(channel: str, cpus: int) -> dict[tuple[str, int], EventClass]:
    out = {}
    for cpu in range(cpus):
        stream = Stream(channel, cpu, f"/nonexistent/{channel}_{cpu}", CLOCK)
        for m in MARKERS:
            out[(m.name, cpu)] = EventClass(m, stream)
    return out


def demo_events(n: int, *, channel: str = "flight", cpus: int = 2, step_ns: int = 9_731) -> list:
    """N events of a busy machine: mostly scheduler switches, some wakeups and process events.

    Returns a list of ``Event`` (and one ``Loss`` near the middle when n >= 100).
    """
    classes = _classes(channel, cpus)
    events: list[Event | Loss] = []
    tsc = 1_000_000
    for i in range(n):
        cpu = (i * 7 // 5) % cpus
        tsc += step_ns + (i * 37) % 1_000
        if i % 41 == 0:
            pid = 2000 + i % 300
            path = f"/usr/bin/{_COMMS[i % len(_COMMS)]}"
            ev = Event(tsc, (pid, path), classes[("proc_exec", cpu)])
        elif i % 53 == 0:
            ev = Event(tsc, (1000 + i % 300, 2000 + i % 300), classes[("proc_fork", cpu)])
        elif i % 97 == 0:
            ev = Event(tsc, (3000 + i, 1200 + i // 3, 9000 + i), classes[("mem_counters", cpu)])
        elif i % 5 == 0:
            ev = Event(tsc, (100 + i % 400, (i + 1) % cpus), classes[("sched_wakeup", cpu)])
        elif i % 89 == 0:
            ev = Event(tsc, (16 + i % 8, 0xFFFF8000_1234_0000 + i), classes[("irq_handler", cpu)])
        else:
            prev, nxt = 100 + i % 400, 100 + (i * 13) % 400
            comms = _COMMS[prev % len(_COMMS)], _COMMS[nxt % len(_COMMS)]
            ev = Event(tsc, (prev, nxt, *comms), classes[("sched_switch", cpu)])
        events.append(ev)
        if n >= 100 and i == n // 2:
            stream = Stream(channel, cpu, f"/nonexistent/{channel}_{cpu}", CLOCK)
            events.append(Loss(tsc + 1, 1_532, stream))
    return events


# name, sub-buffer KiB, count, flight, global, allocated, routing, recorded, discarded, overwritten
_DEMO_CHANNELS: dict[str, list[tuple[Any, ...]]] = {
    "demo": [
        ("main", 64, 4, False, False, True, (), 1_284, 0, 0),
        ("flight", 256, 8, True, False, True, ("sched_*", "irq_*"), 4_812_113, 0, 3_977_840),
        ("procs", 16, 4, False, True, True, ("proc_*",), 9_311, 12, 0),
    ],
    "mytrace": [
        ("main", 64, 4, False, False, False, (), 0, 0, 0),
        ("processes", 256, 8, True, False, False, ("proc_exec",), 0, 0, 0),
    ],
}


def _channels(trace: str) -> tuple[ChannelState, ...]:
    return tuple(
        ChannelState(name, kib * 1024, n, fl, gl, alloc, rules, rec, disc, over)
        for name, kib, n, fl, gl, alloc, rules, rec, disc, over in _DEMO_CHANNELS[trace]
    )


def demo_state() -> NamespaceState:
    """The demo trace as the console shows it after a few seconds of the demo workload."""
    return NamespaceState(
        traces=(
            TraceState(
                name="demo",
                recording=True,
                filter=("*",),
                output="/home/user/.local/share/tracetui/traces/demo-20240101-000000",
                channels=_channels("demo"),
            ),
            TraceState(
                name="mytrace",
                recording=False,
                filter=("sched_switch",),
                output="/home/user/.local/share/tracetui/traces/mytrace",
                channels=_channels("mytrace"),
            ),
        ),
        markers=MARKERS,
    )


def demo_rates() -> list[float]:
    """A minute of per-second event rates for the channel sparkline."""
    return [40_000 + ((i * 7919) % 23) * 1_500 + (i % 10) * 900 for i in range(60)]


def demo_stats() -> ChannelStats:
    """A statistics read of demo/flight (two CPUs)."""
    # recorded, discarded, overwritten, too_big, lost_dead, bytes, packets, consumed,
    # consumed_packets, stuck_packets
    cpu0 = Stats(2_506_017, 0, 2_071_520, 0, 0, 160_385_088, 1_224, 434_497, 212, 0)
    cpu1 = Stats(2_306_096, 0, 1_906_320, 0, 0, 147_590_144, 1_126, 399_776, 195, 0)
    return ChannelStats({"cpu0": cpu0, "cpu1": cpu1}, cpu0 + cpu1)
