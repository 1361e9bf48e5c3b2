"""Export throughput (`tracetui export`) on a trace recorded with the real ring buffers.

Builds the trace of benchmarks/bench_reader.py (--events events through a real two-buffer
channel, drained by the daemon's consumer loop into a TraceWriter: half "bench_ints", three
integers, half "bench_str", pid/tid/comm, so those land on thread tracks) and measures
(medians of --repeat runs, in this process, output to a temporary file):

    export_eps            events/s of core.trace.export.export_perfetto (to .pftrace)
    export_json_eps       events/s of core.trace.export.export_chrome_json
    ref_bt2_counter_eps   events/s of ``babeltrace2 -c sink.utils.counter DIR`` (if installed)

and the ratios ``export_vs_bt2_counter``.  Target: export_eps >= 1 M events/s.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_reader import build_trace  # noqa: E402

from tracetui.core.trace.export import export_chrome_json, export_perfetto  # noqa: E402
from tracetui.core.trace.traces import open_trace  # noqa: E402


def export_once(path: str, out: str, fn: Callable[..., int], mode: str) -> tuple[int, float]:
    gc.disable()
    t0 = time.perf_counter()
    try:
        with open(out, mode) as f:
            n = fn(open_trace(path), f)
    finally:
        gc.enable()
    return n, time.perf_counter() - t0


def run_cmd(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--run", type=int, default=8, help="events per buffer switch")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", metavar="DIR", help="write the trace here and keep it")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tracetui-bench-export-")
    path = args.keep or os.path.join(tmp, "trace")
    try:
        if not os.path.exists(os.path.join(path, "metadata")):
            build_trace(path, args.events, args.run)
        n = sum(1 for _ in open_trace(path))
        res: dict[str, Any] = {"events": n}
        out = os.path.join(tmp, "out")
        for key, fn, mode in (
            ("export_eps", export_perfetto, "wb"),
            ("export_json_eps", export_chrome_json, "w"),
        ):
            times = []
            for _ in range(args.repeat):
                written, dt = export_once(path, out, fn, mode)
                times.append(dt)
            res[key] = n / statistics.median(times)
            res[key.replace("_eps", "_bytes_per_event")] = os.path.getsize(out) / n
            if written < n:
                raise SystemExit(f"{key}: {written} records written for {n} events")
        bt2 = shutil.which("babeltrace2")
        if bt2:
            res["ref_bt2_counter_eps"] = n / statistics.median(
                run_cmd([bt2, "-c", "sink.utils.counter", path]) for _ in range(args.repeat)
            )
            res["export_vs_bt2_counter"] = res["export_eps"] / res["ref_bt2_counter_eps"]
            res["export_json_vs_bt2_counter"] = (
                res["export_json_eps"] / res["ref_bt2_counter_eps"]
            )
        res["export_vs_target_1M"] = res["export_eps"] / 1e6
        res = {
            k: round(v, 2) if ("_vs_" in k or "per_event" in k) else round(v)
            for k, v in res.items()
        }
        if args.json:
            print(json.dumps(res))
        else:
            for k, v in res.items():
                print(f"{k:>28}: {v:,}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
