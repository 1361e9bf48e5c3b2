"""What tracing costs a Python program: the probe's emit path.

    python benchmarks/bench_probe.py [--json] [--repeat N] [--count N]

Markers are defined with tracetui.probe exactly as a program does; their target (one
per-CPU flight channel, so nothing is ever dropped for lack of a consumer) is set the way
the probe's daemon link sets it.  Each figure is the median over N runs of (loop with the
call - the same bare loop) / count:

  py_disabled_ns   `if m.enabled: m(a, b, c)` with the marker disabled (no trace wants it)
  py_emit_ints_ns  `m(a, b, c)`, three integers (%d %d %lu)
  py_emit_str_ns   `m(a, b, s)`, two integers and a 16-character string
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TRACETUI_RUNTIME_DIR", f"/tmp/tracetui-bench-{os.getpid()}")

from tracetui import probe
from tracetui.core.buffers import Channel


def _bare(count: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(count):
        pass
    return time.perf_counter_ns() - t0


def disabled(m, count: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter_ns()
    for i in range(count):
        if m.enabled:
            m(i, 2, 3)
    return time.perf_counter_ns() - t0


def emit_ints(m, count: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter_ns()
    for i in range(count):
        m(i, 2, 3)
    return time.perf_counter_ns() - t0


def emit_str(m, count: int) -> float:  # type: ignore[no-untyped-def]
    s = "sixteen-chars-ab"
    t0 = time.perf_counter_ns()
    for i in range(count):
        m(i, 2, s)
    return time.perf_counter_ns() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--count", type=int, default=200_000)
    args = ap.parse_args(argv)

    off = probe.marker("bench_off", "a %d b %d c %lu")
    ints = probe.marker("bench_ints", "a %d b %d c %lu")
    strs = probe.marker("bench_str", "pid %d tid %d comm %s")
    ch = Channel.create(f"/tracetui-bench-probe-{os.getpid()}", 1 << 20, 8, flight=True)
    try:
        for m, mid in ((ints, 1), (strs, 2)):
            m.native.set_id(mid)
            m.native.set_targets([ch])
            m.enabled = True
        runs: dict[str, list[float]] = {
            "py_disabled_ns": [],
            "py_emit_ints_ns": [],
            "py_emit_str_ns": [],
        }
        n = args.count
        for _ in range(args.repeat):
            base = _bare(n)
            runs["py_disabled_ns"].append((disabled(off, n) - base) / n)
            runs["py_emit_ints_ns"].append((emit_ints(ints, n) - base) / n)
            runs["py_emit_str_ns"].append((emit_str(strs, n) - base) / n)
        recorded = ch.stats().recorded
        assert recorded == 2 * n * args.repeat, "every emitted event must have been recorded"
    finally:
        for m in (ints, strs):
            m.native.set_targets([])
            m.enabled = False
        ch.unlink()
        ch.close()
    out: dict[str, object] = {k: round(statistics.median(v), 1) for k, v in runs.items()}
    out["count"] = args.count
    out["repeat"] = args.repeat
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:18} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
