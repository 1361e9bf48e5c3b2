"""What tracing costs a C program: tracetui's C API against a bare ring and LTTng-UST.

    python benchmarks/bench_c.py [--json] [--count N] [--repeat N]

Builds benchmarks/c/bench_c.c against the installed header and libtracetui-probe.so (flags
from `tracetui config`), starts a daemon of its own with a trace whose main channel is
per-CPU and in discard mode (4 MiB x 16 sub-buffers per CPU, so the measured loops never
fill it), and times, per event (median of N rounds of COUNT events, every loop once per
round so noise hits all alike, minus the bare loop):

  c_emit_ints_ns    TT_MARKER(bench_ints, "a %d b %d c %d", ...), one thread
  c_emit_str_ns     TT_MARKER(bench_str, "a %d b %d s %s", ...), a 16-character string
  c_disabled_ns     TT_MARKER of a marker no trace wants (the trace's filter excludes it)

and the references, in the same run:

  ref_ring_cas_ns   a bare lock-free ring the benchmark builds itself: a CAS on the write
                    offset, an rdtsc timestamp, a 48-byte record, a release store as commit
  ref_lttng_ust_ns  the same three integers as an LTTng-UST tracepoint (a provider compiled
                    here), recorded by an lttng-sessiond this script starts and stops (per-uid
                    buffers, discard mode, one thread); skipped when liblttng-ust-dev or
                    lttng-tools is missing

Targets (ratios): c_emit_ints <= 1.15x ref_ring_cas, <= 0.3x ref_lttng_ust; c_disabled <= 1 ns;
c_emit_str <= 1.4x c_emit_ints.  ratio_ints_to_lttng_cas_normalized divides each program's
figure by its own CAS ring's (the LTTng program runs after tracetui's, on a host whose speed
drifts).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent / "c"
CC = shutil.which("cc") or shutil.which("gcc")


def parse(stdout: str) -> dict[str, float]:
    return {k: float(v) for k, v in (line.split() for line in stdout.splitlines() if line)}


def tracetui_run(work: Path, count: int, repeat: int) -> dict[str, float]:
    from tracetui.cli.config import flags
    from tracetui.core.client import Client, spawn
    from tracetui.core.model.stats import parse_stats

    exe = work / "bench_tracetui"
    f = flags()
    subprocess.run(
        [CC, "-O2", "-DWITH_TRACETUI", "-o", exe, HERE / "bench_c.c", *f["cflags"].split(),
         *f["libs"].split()],
        check=True,
    )
    rt = work / "rt"
    env = {**os.environ, "TRACETUI_RUNTIME_DIR": str(rt), "XDG_DATA_HOME": str(work / "data")}
    proc = spawn.spawn_daemon(rt, env=env)
    client = Client(str(rt))
    try:
        client.mkdir("bench")
        client.write("bench/output", str(work / "trace"))
        client.write("bench/main/subbuf_size", "4M")
        client.write("bench/main/n_subbuf", "16")
        client.write("bench/filter", "!bench_off")
        client.write("bench/start", "1")
        r = subprocess.run([exe, str(count), str(repeat)], capture_output=True, text=True,
                           env=env, timeout=600, check=True)
        out = parse(r.stdout)
        client.write("bench/start", "0")
        total = parse_stats(client.read("bench/main/stats"))["total"]
        out["c_discarded"] = float(total.discarded)
        out["c_recorded"] = float(total.recorded)
        return out
    finally:
        client.close()
        spawn.stop_daemon(proc)


def lttng_run(work: Path, count: int, repeat: int) -> dict[str, float] | None:
    lttng, sessiond = shutil.which("lttng"), shutil.which("lttng-sessiond")
    if not (lttng and sessiond and CC):
        return None
    exe = work / "bench_lttng"
    build = subprocess.run(
        [CC, "-O2", "-DWITH_LTTNG", f"-I{HERE}", "-o", exe, HERE / "bench_c.c", HERE / "tp.c",
         "-llttng-ust", "-ldl"],
        capture_output=True, text=True,
    )
    if build.returncode:
        return None  # no liblttng-ust-dev
    home = work / "lttng-home"
    home.mkdir()
    env = {**os.environ, "LTTNG_HOME": str(home)}
    sd = subprocess.Popen([sessiond, "--no-kernel"], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        def lt(*a: str) -> None:
            subprocess.run([lttng, *a], env=env, check=True, capture_output=True, timeout=60)

        deadline = time.monotonic() + 20
        while subprocess.run([lttng, "list"], env=env, capture_output=True).returncode:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
        lt("create", "bench", f"--output={work / 'lttng-trace'}")
        lt("enable-channel", "-u", "--buffers-uid", "--discard", "--subbuf-size=4M",
           "--num-subbuf=16", "ch")
        lt("enable-event", "-u", "-c", "ch", "bench:ints")
        lt("start")
        r = subprocess.run([exe, str(count), str(repeat)], capture_output=True, text=True,
                           env=env, timeout=600, check=True)
        lt("stop")
        lt("destroy", "bench")
        return parse(r.stdout)
    finally:
        sd.send_signal(signal.SIGTERM)
        try:
            sd.wait(10)
        except subprocess.TimeoutExpired:
            sd.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    if CC is None:
        print("bench_c: no C compiler", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-c-") as d:
        work = Path(d)
        res = tracetui_run(work, args.count, args.repeat)
        lt = lttng_run(work, args.count, args.repeat)
    if lt is not None:
        res["ref_lttng_ust_ns"] = lt["ref_lttng_ust_ns"]
        res["ref_ring_cas_ns_lttng_run"] = lt["ref_ring_cas_ns"]
    cas = res["ref_ring_cas_ns"]
    res["ratio_ints_to_cas"] = res["c_emit_ints_ns"] / cas
    res["ratio_str_to_ints"] = res["c_emit_str_ns"] / res["c_emit_ints_ns"]
    if lt is not None:
        res["ratio_ints_to_lttng"] = res["c_emit_ints_ns"] / res["ref_lttng_ust_ns"]
        # The two programs run one after the other: on a shared host their speed drifts
        # between them.  Each also timed the same CAS ring, so this ratio of ratios cancels it.
        res["ratio_ints_to_lttng_cas_normalized"] = res["ratio_ints_to_cas"] / (
            lt["ref_lttng_ust_ns"] / lt["ref_ring_cas_ns"]
        )
    res = {k: round(v, 3) for k, v in res.items()}
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k:28} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
