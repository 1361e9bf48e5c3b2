"""Streaming to a real lttng-relayd on loopback beside writing the local trace, same run.

    python benchmarks/bench_relay.py [--json] [--events N]

Starts an lttng-relayd on free loopback ports (its output in a temporary directory) and a
tracetui daemon of its own; a trace with a per-CPU main channel (1 MiB x 16) streams to the
relayd while a C program built against the public header (benchmarks/c/bench_c.c's loop is not
needed: examples/c/workers.c, 2 threads) emits N events.  Figures:

  ref_local_mbps  packet bytes the daemon wrote to the local trace / time from start to stop's reply
  relay_mbps   the same bytes sent to the relayd / time from start until its queue drained
  ratio        relay_mbps / ref_local_mbps (the same-run reference) (target >= 0.5)
  packets_lost packets the streamer could not queue (bounded queue, 64 MiB)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--events", type=int, default=2_000_000)
    args = ap.parse_args()
    relayd, cc = shutil.which("lttng-relayd"), shutil.which("cc") or shutil.which("gcc")
    if not relayd or not cc:
        print("bench_relay: needs lttng-relayd (lttng-tools) and a C compiler", file=sys.stderr)
        return 1
    from tracetui.cli.config import flags
    from tracetui.core.client import Client, spawn

    with tempfile.TemporaryDirectory(prefix="bench-relay-") as d:
        work = Path(d)
        f = flags()
        exe = work / "workers"
        subprocess.run([cc, "-O2", "-o", exe, ROOT / "examples/c/workers.c", *f["cflags"].split(),
                        *f["libs"].split(), "-lpthread"], check=True)
        c, dp, lv = free_ports(3)
        rp = subprocess.Popen([relayd, "-C", f"tcp://127.0.0.1:{c}", "-D", f"tcp://127.0.0.1:{dp}",
                               "-L", f"tcp://127.0.0.1:{lv}", "-o", str(work / "relayd")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rt = work / "rt"
        env = {**os.environ, "TRACETUI_RUNTIME_DIR": str(rt), "TRACETUI_HOSTNAME": "bench",
               "XDG_DATA_HOME": str(work / "data")}
        proc = spawn.spawn_daemon(rt, env=env)
        client = Client(str(rt))
        try:
            client.mkdir("b")
            client.write("b/output", str(work / "local"))
            client.write("b/main/subbuf_size", "1M")
            client.write("b/main/n_subbuf", "16")
            client.write("b/relay", f"net://127.0.0.1:{c}:{dp}")
            t0 = time.perf_counter()
            client.write("b/start", "1")
            subprocess.run([exe, "2", str(args.events // 2)], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            client.write("b/start", "0")
            t_local = time.perf_counter() - t0
            local_bytes = sum(p.stat().st_size for p in (work / "local").glob("main_*"))
            while True:
                st = json.loads(client.read("recording"))["relays"]["b"]
                if st["queued_bytes"] == 0 and st["packets_sent"]:
                    break
                if time.perf_counter() - t0 > 300:
                    break
                time.sleep(0.01)
            t_relay = time.perf_counter() - t0
        finally:
            client.close()
            spawn.stop_daemon(proc)
            rp.terminate()
            rp.wait(10)
    res = {
        "events": args.events,
        "local_bytes": local_bytes,
        "ref_local_mbps": round(local_bytes / t_local / 1e6, 1),
        "relay_bytes": st["bytes_sent"],
        "relay_mbps": round(st["bytes_sent"] / t_relay / 1e6, 1),
        "packets_lost": st["packets_lost"],
        "relay_state": st["state"],
    }
    ref = res["ref_local_mbps"]
    res["ratio"] = round(res["relay_mbps"] / ref, 3) if ref else 0
    text = "\n".join(f"{k:16} {v}" for k, v in res.items())
    print(json.dumps(res, indent=2) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
