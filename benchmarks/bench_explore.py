"""The explorer (`tracetui open`) on a trace recorded with the real ring buffers.

Builds the trace of benchmarks/bench_export.py (its ``build_trace``: --events events through a
real two-buffer channel drained by the daemon's consumer loop into a TraceWriter, half
"bench_ints" a/b/c, half "bench_str" pid/tid/comm) and measures, in the same run:

    open_ms              a new process's start (``python -c``: interpreter, imports) to the
                         explorer's first screen of events drawn (headless Pilot, 80x24):
                         the packet index is built from headers, no event decoded first
    ref_start_imports_ms the same interpreter starting and importing the explorer and Textual
                         (the part of open_ms that does not depend on the trace)
    ref_bare_first_frame_ms  an empty Textual app's start to its first frame, and the ratio
                         ``open_vs_bare_first_frame`` (every start with the bytecode cache on,
                         after one untimed start of each: benchmarks/refs.py startup_env)
    rss_open_mib         that process's peak RSS at its first screen
    rss_scan_mib         its peak RSS after a statistics scan over the whole trace (decoded
                         packets sit in a bounded cache: memory is the index's, not the events')
    index_ms             TraceIndex(open_trace(DIR)) alone, in this process
    scan_eps             events/s of TraceIndex.statistics(): counts per name, CPU and channel,
                         every event decoded
    filter_eps           events/s of TraceIndex.filter_windows() with a field predicate
                         (``b > 100 or tid == 1003``: every event's class binds a test on
                         one of its fields, every event is decoded and tested)
    export_eps           events/s of core.trace.export.export_perfetto (.pftrace)
    native_scan, native_filter, native_export
                         whether those ran in C (core/trace/native.py, _ttdec); the
                         environment variable TRACETUI_NATIVE=0 measures the Python paths
    ref_bt2_counter_eps  events/s of ``babeltrace2 -c sink.utils.counter DIR`` (same trace)

and the ratios ``scan_vs_bt2_counter`` (target 3), ``filter_vs_bt2_counter`` (target 2),
``export_vs_target_1M``.  Medians of --repeat runs (open: --repeat processes).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_export import export_once, prepared_trace, run_cmd, trace_arguments
from refs import BARE_APP, first_frame_once, startup_env

from tracetui.core.model.predicate import EventFilter
from tracetui.core.trace import native
from tracetui.core.trace.export import export_perfetto
from tracetui.core.trace.index import Statistics, TraceIndex
from tracetui.core.trace.traces import open_trace

PREDICATE = "b > 100 or tid == 1003"

# The child: `tracetui open DIR` as its verb does it (index, then the explorer), headless;
# prints one JSON line when the list has drawn its first screen, then after a full scan.
CHILD = r"""
import asyncio, json, resource, sys
from tracetui.core.trace.index import TraceIndex
from tracetui.core.trace.traces import open_trace
from tracetui.screens.explorer import EventList, ExplorerApp, ExplorerPane

def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

async def main(path):
    app = ExplorerApp([(path, TraceIndex(open_trace(path)))])
    async with app.run_test(size=(80, 24)) as pilot:
        lst = app.query_one(EventList)
        while not lst.rows.row_count or lst.current() is None:
            await pilot.pause(0.001)
        await pilot.pause()  # one screen drawn
        print(json.dumps({"first_screen": True, "rss_mib": rss_mib()}), flush=True)
        pane = app.query_one(ExplorerPane)
        await pilot.press("s")
        details = ""
        while "events over" not in details:
            await pilot.pause(0.02)
            details = str(pane.query_one(".explorer-details").render())
        print(json.dumps({"rss_scan_mib": rss_mib(), "stats": details.splitlines()[0]}),
              flush=True)

asyncio.run(main(sys.argv[1]))
"""


def open_child(path: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [sys.executable, "-P", "-c", CHILD, path],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=startup_env(),
    )
    assert p.stdout is not None
    first = json.loads(p.stdout.readline())
    open_ms = (time.perf_counter() - t0) * 1000
    scan = json.loads(p.stdout.readline())
    p.wait(timeout=600)
    if not first.get("first_screen") or p.returncode:
        raise SystemExit(f"explorer child failed (exit {p.returncode})")
    return {"open_ms": open_ms, "rss_open_mib": first["rss_mib"], **scan}


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    args = trace_arguments(__doc__ or "", 300_000)
    tmp, path = prepared_trace(args, "explore")
    try:
        size = sum(e.stat().st_size for e in os.scandir(path))
        res: dict[str, Any] = {"trace_mib": size / 2**20}

        # Interleaved with its references, so a load that comes and goes weighs on all alike;
        # one untimed start of each first writes the bytecode caches (refs.startup_env).
        imports = [sys.executable, "-P", "-c", "import tracetui.screens.explorer, textual.pilot"]
        subprocess.run(imports, check=True, env=startup_env())
        first_frame_once(BARE_APP)
        opens, starts, bare = [], [], []
        for _ in range(args.repeat):
            opens.append(open_child(path))
            t0 = time.perf_counter()
            subprocess.run(imports, check=True, env=startup_env())
            starts.append(1000 * (time.perf_counter() - t0))
            bare.append(first_frame_once(BARE_APP)[0])
        for key in ("open_ms", "rss_open_mib", "rss_scan_mib"):
            res[key] = statistics.median(o[key] for o in opens)
        # What open_ms spends before reading the trace: the interpreter and the imports.
        res["ref_start_imports_ms"] = statistics.median(starts)
        # A bare Textual app's first frame: this machine's floor for any console's.
        res["ref_bare_first_frame_ms"] = statistics.median(bare)
        res["open_vs_bare_first_frame"] = round(res["open_ms"] / res["ref_bare_first_frame_ms"], 2)

        index_s, scan_s, filter_s, export_s = [], [], [], []
        n = 0
        flt = EventFilter("", PREDICATE)
        matched = 0
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            index = TraceIndex(open_trace(path))
            index_s.append(time.perf_counter() - t0)
            st = Statistics()

            def scan(index: TraceIndex = index) -> None:
                nonlocal st
                for step in index.statistics():
                    if isinstance(step, Statistics):
                        st = step

            scan_s.append(timed(scan))
            n = st.events
            fresh = TraceIndex(open_trace(path))  # no packet cached by the scan

            def run_filter(index: TraceIndex = fresh) -> None:
                nonlocal matched
                for step in index.filter_windows(flt):
                    if isinstance(step, list):
                        matched = sum(step)

            filter_s.append(timed(run_filter))
            written, dt = export_once(path, os.path.join(tmp, "out.pftrace"), export_perfetto, "wb")
            export_s.append(dt)
            if written < n:
                raise SystemExit(f"export wrote {written} records for {n} events")
        res["native_scan"] = bool(index.native_streams)
        res["native_filter"] = bool(fresh.native_streams)
        res["native_export"] = native.last_export_native
        res["events"] = n
        res["filter_matches"] = matched
        res["index_ms"] = statistics.median(index_s) * 1000
        res["scan_eps"] = n / statistics.median(scan_s)
        res["filter_eps"] = n / statistics.median(filter_s)
        res["export_eps"] = n / statistics.median(export_s)
        bt2 = shutil.which("babeltrace2")
        if bt2:
            res["ref_bt2_counter_eps"] = n / statistics.median(
                run_cmd([bt2, "-c", "sink.utils.counter", path]) for _ in range(args.repeat)
            )
            ref = res["ref_bt2_counter_eps"]
            res["scan_vs_bt2_counter"] = res["scan_eps"] / ref
            res["filter_vs_bt2_counter"] = res["filter_eps"] / ref
            res["export_vs_bt2_counter"] = res["export_eps"] / ref
        res["export_vs_target_1M"] = res["export_eps"] / 1e6
        res = {
            k: v
            if isinstance(v, bool)
            else round(v, 2)
            if ("_vs_" in k or k.endswith("_mib"))
            else round(v)
            for k, v in res.items()
        }
        if args.json:
            print(json.dumps(res))
        else:
            for k, v in res.items():
                print(f"{k:>24}: {v:,}")
            if "scan_vs_bt2_counter" in res:
                print(
                    f"scan {res['scan_vs_bt2_counter']}x babeltrace2's counter (target 3x), "
                    f"filter {res['filter_vs_bt2_counter']}x (target 2x)"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
