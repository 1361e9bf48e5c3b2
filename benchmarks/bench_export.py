"""Export throughput (`tracetui export`) on a trace recorded with the real ring buffers.

Builds the trace of benchmarks/bench_reader.py (its markers; --events events through a real
two-buffer channel, drained by the daemon's consumer loop into a TraceWriter: half "bench_ints",
three integers, half "bench_str", pid/tid/comm over --threads threads, on thread tracks)
and measures (medians of --repeat runs, in this process, output to a temporary file):

    export_eps            events/s of core.trace.export.export_perfetto (to .pftrace)
    export_json_eps       events/s of core.trace.export.export_chrome_json
    ref_read_fields_eps   events/s of iterating open_trace(DIR) with ts_ns and fields (the
                          reader's ceiling for any exporter written over the TraceSource face)
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

from bench_reader import INTS, STRS

from tracetui.core import ring
from tracetui.core.trace.export import export_chrome_json, export_perfetto
from tracetui.core.trace.traces import open_trace
from tracetui.core.trace.writer import TraceWriter


def build_trace(path: str, n_events: int, run: int, threads: int) -> None:
    """bench_reader's trace, but bench_str's pid/tid cycle over THREADS threads of 4 processes
    (bench_reader writes a new tid per event, which would make a track per event)."""
    import uuid

    trace_uuid = uuid.uuid4().bytes
    writer = TraceWriter(path, uuid=trace_uuid, calibration=ring.calibrate(), markers=[INTS, STRS])
    chan = ring.Channel.create(
        f"/tracetui-bench-export-{os.getpid()}", 256 * 1024, 8, nbuf=2, uuid=trace_uuid
    )
    enc_i, enc_s = INTS.format.encode, STRS.format.encode

    def drain() -> None:
        for b in range(chan.nbuf):
            while (p := chan.get_packet(b)) is not None:
                writer.write_packet("main", b, p)
                chan.put_packet(b)

    try:
        write = chan.write
        for i in range(n_events):
            b = (i // run) & 1
            if i & 1:
                tid = 1000 + (i >> 1) % threads
                write(1, enc_s(100 + tid % 4, tid, "benchmark-proc-1"), b)
            else:
                write(0, enc_i(i, i * 3, -i), b)
            if i % 20000 == 0:
                drain()
        chan.flush()
        drain()
        st = chan.stats()
        if st.recorded != n_events or st.lost:
            raise SystemExit(f"benchmark trace lost events: {st}")
    finally:
        chan.close()
        chan.unlink()
        writer.close()


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


def trace_arguments(doc: str, events: int) -> argparse.Namespace:
    """The options of the benchmarks that read a trace written by ``build_trace``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--events", type=int, default=events)
    ap.add_argument("--run", type=int, default=8, help="events per buffer switch")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=16, help="threads of the bench_str events")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", metavar="DIR", help="write the trace here and keep it")
    return ap.parse_args()


def prepared_trace(args: argparse.Namespace, name: str) -> tuple[str, str]:
    """(a scratch directory, the trace): --keep's trace if it exists, else one built now."""
    tmp = tempfile.mkdtemp(prefix=f"tracetui-bench-{name}-")
    path = args.keep or os.path.join(tmp, "trace")
    if not os.path.exists(os.path.join(path, "metadata")):
        build_trace(path, args.events, args.run, args.threads)
    return tmp, path


def main() -> int:
    args = trace_arguments(__doc__ or "", 1_000_000)
    tmp, path = prepared_trace(args, "export")
    try:
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
        # The ceiling in Python: iterating the source with every event's fields dict built.
        t0 = time.perf_counter()
        for it in open_trace(path):
            it.ts_ns, getattr(it, "fields", None)
        res["ref_read_fields_eps"] = n / (time.perf_counter() - t0)
        res["export_vs_read_fields"] = res["export_eps"] / res["ref_read_fields_eps"]
        bt2 = shutil.which("babeltrace2")
        if bt2:
            res["ref_bt2_counter_eps"] = n / statistics.median(
                run_cmd([bt2, "-c", "sink.utils.counter", path]) for _ in range(args.repeat)
            )
            res["export_vs_bt2_counter"] = res["export_eps"] / res["ref_bt2_counter_eps"]
            res["export_json_vs_bt2_counter"] = res["export_json_eps"] / res["ref_bt2_counter_eps"]
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
