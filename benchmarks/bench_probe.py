"""What tracing costs a Python program: the probe's emit path.

    python benchmarks/bench_probe.py [--json] [--repeat N] [--count N]

Markers are defined with tracetui.probe exactly as a program does; their target (one
per-CPU flight channel, so nothing is ever dropped for lack of a consumer) is set the way
the probe's daemon link sets it.  Each figure is the median over N runs of (loop with the
call - the same bare loop) / count:

  py_disabled_ns   `if m.enabled: m(a, b, c)` with the marker disabled (no trace wants it)
  py_emit_ints_ns  `m(a, b, c)`, three integers (%d %d %lu)
  py_emit_str_ns   `m(a, b, s)`, two integers and a 16-character string

and, measured in the same run so ratios survive a noisy machine (the references):

  ref_logging_filtered_ns  `log.debug(...)` with the level above DEBUG
  ref_logging_file_ns      `log.info("... %d %d %s", a, b, s)` to a file under /tmp
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
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


def logging_refs(count: int) -> tuple[float, float]:
    log = logging.getLogger("tracetui-bench")
    log.propagate = False
    with tempfile.NamedTemporaryFile(dir="/tmp", prefix="tracetui-bench-log-") as f:
        handler = logging.FileHandler(f.name)
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        s = "sixteen-chars-ab"
        t0 = time.perf_counter_ns()
        for i in range(count):
            log.debug("pid %d tid %d comm %s", i, 2, s)
        t1 = time.perf_counter_ns()
        n = max(1, count // 20)  # to a file is slow: fewer calls
        for i in range(n):
            log.info("pid %d tid %d comm %s", i, 2, s)
        t2 = time.perf_counter_ns()
        log.removeHandler(handler)
        handler.close()
    return (t1 - t0 - _bare(count)) / count, (t2 - t1) / n


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
            "ref_logging_filtered_ns": [],
            "ref_logging_file_ns": [],
        }
        n = args.count
        for _ in range(args.repeat):
            base = _bare(n)
            runs["py_disabled_ns"].append((disabled(off, n) - base) / n)
            runs["py_emit_ints_ns"].append((emit_ints(ints, n) - base) / n)
            runs["py_emit_str_ns"].append((emit_str(strs, n) - base) / n)
            filtered, to_file = logging_refs(n)
            runs["ref_logging_filtered_ns"].append(filtered)
            runs["ref_logging_file_ns"].append(to_file)
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
