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
  emit_ns_local   the C program's wall time per event (2 threads, --emit-events, best of --reps,
                  process start included) into a trace without `relay` (same run)
  emit_ns_relay   the same program into a trace streaming to the relayd, runs interleaved
  emit_ratio      emit_ns_relay / emit_ns_local (target ~1: the writers never wait for the relay)
  relay_live_lag_p99_ms  an event carrying its wall time in a field (500 events/s for --lag-s
                  seconds, from a Python writer), until tracetui's live viewer (RemoteWatch, on
                  the relayd's live port) hands it over: p50/p99/max
  live_timer_ms   the live timer of that relay session as the relayd lists it (the reference:
                  target p99 <= 2x)
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


LAG_EMIT = """
import sys, time
from tracetui import probe
m = probe.marker("lag_ev", "seq %llu wall %llu")
n = int(sys.argv[1])
t0 = time.monotonic()
for i in range(n):
    while time.monotonic() < t0 + i / 500:
        time.sleep(0.0005)
    m(i, time.time_ns())
"""


def emit_costs(client, exe: Path, env: dict[str, str], work: Path, producer: str,  # type: ignore[no-untyped-def]
               events: int, reps: int) -> tuple[float, float]:
    """Best wall time of the program into a trace without relay and one with, interleaved."""
    best = {"el": float("inf"), "er": float("inf")}
    for name in best:
        client.mkdir(name)
        client.write(f"{name}/output", str(work / name))
        client.write(f"{name}/main/subbuf_size", "1M")
        client.write(f"{name}/main/n_subbuf", "16")
    client.write("er/relay", producer)
    for _ in range(reps):
        for name in best:  # one trace at a time: a running trace gets every event
            client.write(f"{name}/start", "1")
            t = time.perf_counter()
            subprocess.run([exe, "2", str(events // 2)], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            best[name] = min(best[name], time.perf_counter() - t)
            client.write(f"{name}/start", "0")
    client.write("er/relay", "")
    return best["el"], best["er"]


def live_lag(client, env, producer: str, live: str, work: Path, seconds: float) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Events with their wall time in a field, through relay and relayd to RemoteWatch."""
    import threading

    from tracetui.core.client.remote import RemoteWatch, list_sessions

    client.mkdir("lag")
    client.write("lag/output", str(work / "lag"))
    client.write("lag/relay", producer)
    client.write("lag/start", "1")
    deadline = time.monotonic() + 10
    while not [s for s in list_sessions(live) if (s.hostname, s.name) == ("bench", "lag")]:
        if time.monotonic() > deadline:
            raise SystemExit("bench_relay: the lag session never reached the relayd")
        time.sleep(0.05)
    (session,) = [s for s in list_sessions(live) if (s.hostname, s.name) == ("bench", "lag")]
    lags: list[int] = []
    lock = threading.Lock()

    def on_batch(b) -> None:  # type: ignore[no-untyped-def]
        now = time.time_ns()
        with lock:
            lags.extend(now - e.fields["wall"] for e in b.events if e.name == "lag_ev")

    n = int(seconds * 500)
    rw = RemoteWatch(f"{live}/host/bench/lag", on_batch).start()
    try:
        subprocess.run([sys.executable, "-c", LAG_EMIT, str(n)], env=env, check=True)
        deadline = time.monotonic() + 20
        while len(lags) < n and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.write("lag/start", "0")
        client.write("lag/relay", "")
        rw.close()
    got = sorted(lags)
    if not got:
        raise SystemExit(f"bench_relay: the live viewer saw no lag event ({rw.error})")

    def pct(p: float) -> float:
        return round(got[min(len(got) - 1, int(p * len(got)))] / 1e6, 1)

    return {
        "lag_events": n,
        "lag_seen": len(got),
        "relay_live_lag_p50_ms": pct(0.50),
        "relay_live_lag_p99_ms": pct(0.99),
        "relay_live_lag_max_ms": round(got[-1] / 1e6, 1),
        "live_timer_ms": session.live_timer_us / 1000,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--emit-events", type=int, default=500_000, help="events per emit-cost run")
    ap.add_argument("--reps", type=int, default=3, help="emit-cost runs of each kind (the best)")
    ap.add_argument("--lag-s", type=float, default=3.0, help="seconds of the lag run")
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
            emit_local, emit_relay = emit_costs(client, exe, env, work, f"net://127.0.0.1:{c}:{dp}",
                                                args.emit_events, args.reps)
            lag = live_lag(client, env, f"net://127.0.0.1:{c}:{dp}", f"net://127.0.0.1:{lv}",
                           work, args.lag_s)
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
    res["emit_ns_local"] = round(emit_local * 1e9 / args.emit_events, 1)
    res["emit_ns_relay"] = round(emit_relay * 1e9 / args.emit_events, 1)
    res["emit_ratio"] = round(res["emit_ns_relay"] / res["emit_ns_local"], 3)
    res.update(lag)
    res["lag_ratio"] = round(res["relay_live_lag_p99_ms"] / res["live_timer_ms"], 2)
    text = "\n".join(f"{k:16} {v}" for k, v in res.items())
    print(json.dumps(res, indent=2) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
