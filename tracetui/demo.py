"""The demo: a workload process emitting realistic markers, and the trace that records it.

``python -m tracetui.demo`` (what ``tracetui --demo`` starts) emits, through
:mod:`tracetui.probe`, a scheduler-like stream (switches and wakeups, a few thousand per second),
process lifecycle events (fork, exec, exit: a few per second) and periodic counters (memory,
context switches: once a second). :func:`create_demo_trace` creates the trace ``demo`` with a
high-rate flight-recorder channel for the scheduler events, a low-rate normal global channel for
the process events, and ``main`` for the rest, then starts it.
"""

from __future__ import annotations

import argparse
import errno
import random
import signal
import sys
import time
from typing import Any, Protocol

DEMO_TRACE = "demo"
SCHED_RATE = 4_000  # scheduler events per second
TICK_S = 0.01

_COMMS = ("bash", "make", "cc1", "python3", "kworker/0:1", "sshd", "ld", "as", "git", "rg")


class _Client(Protocol):
    async def mkdir(self, path: str) -> Any: ...
    async def rmdir(self, path: str) -> Any: ...
    async def write(self, path: str, value: str) -> Any: ...


async def create_demo_trace(client: _Client) -> bool:
    """Create and start the demo trace; False if a trace ``demo`` already exists.

    Raises the daemon's TraceError on any other refusal, after removing what it created.
    """
    from tracetui.core.errors import TraceError

    try:
        await client.mkdir(DEMO_TRACE)
    except TraceError as e:
        if e.errno == errno.EEXIST:
            return False
        raise
    t = DEMO_TRACE
    try:
        # High rate: keep only the most recent scheduler activity (flight recorder).
        await client.mkdir(f"{t}/flight")
        await client.write(f"{t}/flight/subbuf_size", "256K")
        await client.write(f"{t}/flight/n_subbuf", "8")
        await client.write(f"{t}/flight/flight", "1")
        await client.write(f"{t}/flight/filter", "sched_* irq_*")
        # Low rate, must not be lost: one global buffer, discard mode.
        await client.mkdir(f"{t}/procs")
        await client.write(f"{t}/procs/subbuf_size", "16K")
        await client.write(f"{t}/procs/n_subbuf", "4")
        await client.write(f"{t}/procs/global", "1")
        await client.write(f"{t}/procs/filter", "proc_*")
        await client.write(f"{t}/start", "1")
    except BaseException:
        try:
            await client.write(f"{t}/start", "0")
            await client.rmdir(t)
        except TraceError:
            pass  # the refusal being raised is the one to report
        raise
    return True


def run(rate: int = SCHED_RATE, seconds: float | None = None, seed: int = 1) -> int:
    """Emit the demo workload until SIGTERM/SIGINT (or for SECONDS); return events emitted."""
    from tracetui import probe

    sched_switch = probe.marker("sched_switch", "prev_pid %d next_pid %d prev_comm %s next_comm %s")
    sched_wakeup = probe.marker("sched_wakeup", "pid %d target_cpu %d")
    proc_fork = probe.marker("proc_fork", "parent_pid %d child_pid %d")
    proc_exec = probe.marker("proc_exec", "pid %d filename %s")
    proc_exit = probe.marker("proc_exit", "pid %d status %d")
    mem_counters = probe.marker("mem_counters", "rss_kb %lu page_faults %lu ctx_switches %lu")
    irq = probe.marker("irq_handler", "irq %u handler %p")

    rng = random.Random(seed)
    stop = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    pids = [100 + i for i in range(40)]
    next_pid = 2000
    emitted = 0
    switches = 0
    faults = 0
    start = time.monotonic()
    next_tick = start
    next_proc = start
    next_counter = start
    per_tick = max(1, int(rate * TICK_S))
    while not stop and (seconds is None or time.monotonic() - start < seconds):
        now = time.monotonic()
        for _ in range(per_tick):
            a, b = rng.choice(pids), rng.choice(pids)
            if sched_switch.enabled:
                sched_switch(a, b, _COMMS[a % len(_COMMS)], _COMMS[b % len(_COMMS)])
            switches += 1
            emitted += 1
            if rng.random() < 0.25:
                sched_wakeup(rng.choice(pids), rng.randrange(2))
                emitted += 1
        if rng.random() < 0.05:
            irq(rng.choice((16, 17, 24, 33)), 0xFFFF_8000_1234_0000 + rng.randrange(4096) * 16)
            emitted += 1
        if now >= next_proc:
            # A short-lived process: fork, exec, exit (a few events per second).
            parent = rng.choice(pids)
            child = next_pid
            next_pid += 1
            proc_fork(parent, child)
            proc_exec(child, f"/usr/bin/{rng.choice(_COMMS)}")
            proc_exit(child, rng.choice((0, 0, 0, 1)))
            emitted += 3
            next_proc = now + rng.uniform(0.2, 0.6)
        if now >= next_counter:
            faults += rng.randrange(50, 500)
            mem_counters(200_000 + rng.randrange(50_000), faults, switches)
            emitted += 1
            next_counter = now + 1.0
        next_tick += TICK_S
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_tick = time.monotonic()  # behind (a busy machine): do not try to catch up
    return emitted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tracetui.demo", description="tracetui demo workload (emits markers)"
    )
    parser.add_argument("--rate", type=int, default=SCHED_RATE, help="scheduler events/s")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args(argv)
    if args.rate < 1:
        parser.error("--rate must be at least 1")
    run(args.rate, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
