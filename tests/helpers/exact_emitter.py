"""Traced programs for the exactness tests (tests/test_exact.py), using tracetui.probe.

    python tests/helpers/exact_emitter.py SCENARIO [ARGS]

burst N              define a marker and emit N events at once; print "done N"; exit
window FILE SLOT     emit win_a(i, SLOT), win_b(i, SLOT) for i = 0, 1, ... (20,000 a second),
                     storing
                     the last i whose two emits returned as a little-endian i64 at slot SLOT
                     of FILE (shared with the test); until killed
flood STOPFILE       emit load_seq(i, pid, 7 * i) as fast as it can until STOPFILE exists;
                     print "done N" (N emits returned)
early N M            define a marker, emit N events at once (its targets may not be known yet),
                     print "early", wait for a line on stdin, emit M more; print "done N+M"
forkburst N          define a marker, fork; parent and child each emit N events at once (the
                     child before its own registration is through); print "done 2N"
markers K            define K markers; print "took S" (seconds marker() calls took)
hold                 emit one held_ev(1) in a thread, held between reserve and commit by the
                     native test hook; print "held" once it is; then sleep until killed
"""

from __future__ import annotations

import functools
import mmap
import os
import struct
import sys
import threading
import time

from tracetui import probe


def burst(n: int) -> None:
    m = probe.marker("burst_ev", "seq %lu pid %d")
    pid = os.getpid()
    for i in range(n):
        m(i, pid)
    print(f"done {n}", flush=True)


def window(path: str, slot: int) -> None:
    a = probe.marker("win_a", "seq %lu slot %d")
    b = probe.marker("win_b", "seq %lu slot %d")
    with open(path, "r+b") as f:
        mm = mmap.mmap(f.fileno(), 0)
    pack = struct.Struct("<q").pack_into
    off = 8 * slot
    print("ready", flush=True)
    i = 0
    while True:
        a(i, slot)
        b(i, slot)
        pack(mm, off, i)
        i += 1
        if i % 20 == 0:
            time.sleep(0.001)


def flood(stopfile: str) -> None:
    m = probe.marker("load_seq", "seq %lu pid %d x %lu")
    pid = os.getpid()
    print("ready", flush=True)
    i = 0
    exists = os.path.exists
    while True:
        for _ in range(1000):
            m(i, pid, 7 * i)
            i += 1
        if exists(stopfile):
            break
    print(f"done {i}", flush=True)


def early(n: int, m: int) -> None:
    ev = probe.marker("early_ev", "seq %lu")
    for i in range(n):
        ev(i)
    print("early", flush=True)
    sys.stdin.readline()
    for i in range(n, n + m):
        ev(i)
    print(f"done {n + m}", flush=True)


def forkburst(n: int) -> None:
    m = probe.marker("burst_ev", "seq %lu pid %d")
    child = os.fork()
    pid = os.getpid()
    for i in range(n):
        m(i, pid)
    if child == 0:
        time.sleep(1.0)  # the probe thread reports what it counted before exit
        os._exit(0)
    os.waitpid(child, 0)
    print(f"done {2 * n}", flush=True)


def markers(k: int) -> None:
    t0 = time.monotonic()
    for i in range(k):
        probe.marker(f"m_{i}", "x %d")
    print(f"took {time.monotonic() - t0:.3f}", flush=True)


def hold() -> None:
    from tracetui.core import ring

    m = probe.marker("held_ev", "seq %lu")
    ring.test_hold(True)
    # Through cffi's typed emitter, which releases the GIL around the C call: a C marker
    # holds the GIL while it emits, so a held emit would freeze the whole process.
    emit = m.native.fast_emitter(functools.partial)
    threading.Thread(target=emit, args=(1,), daemon=True).start()
    while ring.test_held() == 0:
        time.sleep(0.001)
    print("held", flush=True)
    while True:
        time.sleep(1)


def main() -> None:
    scenario = sys.argv[1]
    if scenario == "burst":
        burst(int(sys.argv[2]))
    elif scenario == "window":
        window(sys.argv[2], int(sys.argv[3]))
    elif scenario == "flood":
        flood(sys.argv[2])
    elif scenario == "early":
        early(int(sys.argv[2]), int(sys.argv[3]))
    elif scenario == "forkburst":
        forkburst(int(sys.argv[2]))
    elif scenario == "markers":
        markers(int(sys.argv[2]))
    elif scenario == "hold":
        hold()
    else:
        raise SystemExit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
