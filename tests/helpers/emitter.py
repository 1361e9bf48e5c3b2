"""A traced program for the recording tests: emits known events through tracetui.probe.

    python tests/helpers/emitter.py SCENARIO [ARGS]

Scenarios print one line "ready" once every marker is enabled (or "timeout"), then emit, then
print "done N" with the number of emit calls made, and wait for a line on stdin (or exit).
"""

from __future__ import annotations

import sys
import time

from tracetui import probe


def wait_enabled(*markers: object, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not all(m.enabled for m in markers):  # type: ignore[attr-defined]
        if time.monotonic() > end:
            print("timeout", flush=True)
            sys.exit(2)
        time.sleep(0.005)
    print("ready", flush=True)


def known() -> None:
    """Three markers, a fixed sequence; sched_* stays in main, proc_* is routed."""
    sw = probe.marker("sched_switch", "prev_pid %d next_pid %d comm %s")
    ex = probe.marker("proc_exec", "pid %d path %s")
    ig = probe.marker("irq_entry", "irq %u")  # filtered out by the trace filter
    wait_enabled(sw, ex)
    n = 0
    for i in range(50):
        sw(i, i + 1, f"task{i}")
        n += 1
        if i % 10 == 0:
            ex(1000 + i, f"/bin/prog{i}")
            n += 1
        ig(i)
    print(f"done {n}", flush=True)


def flood(count: int) -> None:
    m = probe.marker("load_tick", "seq %lu a %lu b %lu")
    wait_enabled(m)
    for i in range(count):
        m(i, i, i)
    print(f"done {count}", flush=True)


def forever(rate: float) -> None:
    m = probe.marker("load_tick", "seq %lu a %lu b %lu")
    wait_enabled(m)
    i = 0
    while True:
        m(i, i, i)
        i += 1
        if rate:
            time.sleep(1 / rate)


def late() -> None:
    a = probe.marker("early_one", "x %d")
    wait_enabled(a)
    a(1)
    sys.stdin.readline()
    b = probe.marker("late_one", "y %d name %s")
    wait_enabled(b)
    b(2, "late")
    a(3)
    print("done 3", flush=True)


def fork_threads(per_thread: int) -> None:
    """Two threads in the parent, then a forked child with two threads of its own."""
    import os
    import threading

    m = probe.marker("task_step", "pid %d thread %d step %d")
    wait_enabled(m)

    def emit_all() -> None:
        def run(t: int) -> None:
            for i in range(per_thread):
                m(os.getpid(), t, i)

        ts = [threading.Thread(target=run, args=(t,)) for t in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    emit_all()
    child = os.fork()
    if child == 0:
        # A new process to the daemon: it registers again before recording.
        end = time.monotonic() + 10
        while not m.enabled and time.monotonic() < end:
            time.sleep(0.005)
        emit_all()
        os._exit(0 if m.enabled else 3)
    _, status = os.waitpid(child, 0)
    print(f"child {child} {os.waitstatus_to_exitcode(status)}", flush=True)
    print(f"done {4 * per_thread}", flush=True)


def main() -> None:
    scenario = sys.argv[1]
    if scenario == "known":
        known()
    elif scenario == "flood":
        flood(int(sys.argv[2]))
    elif scenario == "forever":
        forever(float(sys.argv[2]))
    elif scenario == "late":
        late()
    elif scenario == "fork":
        fork_threads(int(sys.argv[2]))
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    sys.stdin.readline()


if __name__ == "__main__":
    main()
