"""Reader and dump throughput on a trace recorded with the real ring buffers.

Builds (once per run, in a temporary directory) a trace of --events events
written through ``tracetui.core.buffers.Channel`` into a per-CPU channel of
two buffers, alternating buffers every --run events so the two streams
interleave in time, half "bench_ints" (three integers) and half
"bench_str" (two integers and a 16-character string), drained by the same
consumer loop the daemon uses (get_packet / write_packet / put_packet).

Measures (medians of --repeat runs):

    read_eps      events/s iterating tracetui.core.trace.reader.Trace, every
                  field decoded (Event.values) and the merge across streams
    read_dict_eps same, building each event's ``fields`` dict too
    dump_eps      events/s of ``tracetui dump DIR > /dev/null`` (a process)
    ref_bt2_text_eps     events/s of ``babeltrace2 DIR > /dev/null`` (if installed)
    ref_bt2_counter_eps  events/s of ``babeltrace2 -c sink.utils.counter DIR``

``--json`` prints one JSON object with these keys (and the event count).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from tracetui.core import ring
from tracetui.core.client import rendezvous
from tracetui.core.model.markers import Marker
from tracetui.core.trace.packets import Event
from tracetui.core.trace.reader import TraceDirectory
from tracetui.core.trace.writer import TraceWriter

INTS = Marker.make(0, "bench_ints", "a %d b %d c %d")
STRS = Marker.make(1, "bench_str", "pid %d tid %d comm %s")


def build_trace(path: str, n_events: int, run: int) -> None:
    """Record ``n_events`` through a real channel and write them as CTF."""
    trace_uuid = uuid.uuid4().bytes
    writer = TraceWriter(path, uuid=trace_uuid, calibration=ring.calibrate(), markers=[INTS, STRS])
    name = f"/tracetui-bench-{os.getpid()}"
    chan = ring.Channel.create(name, 256 * 1024, 8, nbuf=2, uuid=trace_uuid)
    enc_i, enc_s = INTS.format.encode, STRS.format.encode
    comm = "benchmark-proc-1"  # 16 characters

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
                write(1, enc_s(i, -i, comm), b)
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


def read_once(path: str, dicts: bool) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    # A consumer tells events from losses, then reads the decoded values.
    if dicts:
        for e in TraceDirectory(path):
            if type(e) is Event:
                e.fields  # noqa: B018 - building the dict is what is measured
                n += 1
    else:
        for e in TraceDirectory(path):
            if type(e) is Event:
                e.values  # noqa: B018
                n += 1
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
    tmp = tempfile.mkdtemp(prefix="tracetui-bench-")
    path = args.keep or os.path.join(tmp, "trace")
    try:
        if not os.path.exists(os.path.join(path, "metadata")):
            build_trace(path, args.events, args.run)
        n = sum(1 for _ in TraceDirectory(path))
        res: dict[str, float | int] = {"events": n}
        res["read_eps"] = n / statistics.median(
            read_once(path, False)[1] for _ in range(args.repeat)
        )
        res["read_dict_eps"] = n / statistics.median(
            read_once(path, True)[1] for _ in range(args.repeat)
        )
        dump = rendezvous.python_command("-m", "tracetui", "dump", path)
        res["dump_eps"] = n / statistics.median(run_cmd(dump) for _ in range(args.repeat))
        bt2 = shutil.which("babeltrace2")
        if bt2:
            res["ref_bt2_text_eps"] = n / statistics.median(
                run_cmd([bt2, path]) for _ in range(args.repeat)
            )
            res["ref_bt2_counter_eps"] = n / statistics.median(
                run_cmd([bt2, "-c", "sink.utils.counter", path]) for _ in range(args.repeat)
            )
            res["read_vs_bt2_counter"] = res["read_eps"] / res["ref_bt2_counter_eps"]
            res["dump_vs_bt2_text"] = res["dump_eps"] / res["ref_bt2_text_eps"]
        res = {k: round(v, 2) if "_vs_" in k else round(v) for k, v in res.items()}
        if args.json:
            print(json.dumps(res))
        else:
            for k, v in res.items():
                print(f"{k:>20}: {v:,}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
