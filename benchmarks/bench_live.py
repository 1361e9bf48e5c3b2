"""Live path end to end: traced process -> ring buffer -> daemon -> live socket -> decoded batches.

    python benchmarks/bench_live.py [--json] [--rate N] [--seconds S]

Starts a real daemon in a private runtime directory, a trace with one global channel, a traced
process emitting `load_tick` events (three integers) at --rate per second, and a LiveWatch (the
console's live client, without the UI). Reports, over --seconds:

  live_recv_eps      events per second decoded by the subscriber
  live_sent_eps      events per second the traced process emitted
  dropped_batches    packets the subscriber was told it lost
  daemon_cpu_pct     CPU the daemon used (consumer, disk, fan-out), % of one core
  latency_p50_ms     record timestamp -> decoded in the subscriber, median (and p99)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from refs import raw_netlink_rtt_us

from tracetui.core.client import Client, rendezvous, spawn
from tracetui.core.client.live import LiveBatch, LiveWatch

EMITTER = textwrap.dedent(
    """
    import sys, time
    from tracetui import probe
    m = probe.marker("load_tick", "seq %lu a %lu b %lu")
    while not m.enabled:
        time.sleep(0.005)
    rate, seconds = float(sys.argv[1]), float(sys.argv[2])
    batch = max(1, int(rate / 1000))  # emit in bursts every millisecond
    i = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - t0) * rate)
        while i < due:
            m(i, 0, 0)
            i += 1
        time.sleep(0.001 if batch else 0)
    print(i, flush=True)
    """
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rate", type=float, default=100_000)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="tracetui-bench-live-") as tmp:
        rt = Path(tmp) / "run"
        env = {**os.environ, rendezvous.ENV: str(rt), "XDG_DATA_HOME": tmp}
        daemon = spawn.spawn_daemon(rt)
        try:
            with Client(str(rt)) as c:
                c.mkdir("live")
                c.write("live/output", f"{tmp}/trace")
                c.write("live/main/global", "1")
                c.write("live/main/subbuf_size", "256K")
                c.write("live/main/n_subbuf", "16")
                c.write("live/start", "1")
                got = 0
                latencies: list[float] = []
                last: list[LiveBatch] = []

                def on_batch(batch: LiveBatch) -> None:
                    nonlocal got
                    got += len(batch.events)
                    if batch.events:
                        latencies.append((time.monotonic_ns() - batch.events[-1].ts_ns) / 1e6)
                    last[:] = [batch]

                lw = LiveWatch("live/main", on_batch, str(rt)).start()
                emitter = subprocess.Popen(
                    rendezvous.python_command("-c", EMITTER, str(args.rate), str(args.seconds)),
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                )
                cpu0 = cpu_seconds(daemon.pid)
                t0 = time.monotonic()
                out, _ = emitter.communicate(timeout=args.seconds + 30)
                sent = int(out.strip())
                time.sleep(0.5)  # the last packets: periodic flush, tick, transit
                elapsed = time.monotonic() - t0
                cpu = cpu_seconds(daemon.pid) - cpu0
                lw.close()
                stats = c.read("live/main/stats").splitlines()[-1]
                c.write("live/start", "0")
        finally:
            spawn.stop_daemon(daemon)

    lat = sorted(latencies) or [0.0]
    result = {
        "live_recv_eps": round(got / args.seconds),
        "live_sent_eps": round(sent / args.seconds),
        "received": got,
        "sent": sent,
        "dropped_batches": last[0].dropped_batches if last else 0,
        "daemon_cpu_pct": round(100 * cpu / elapsed, 1),
        "latency_p50_ms": round(statistics.median(lat), 1),
        "latency_p99_ms": round(lat[int(0.99 * (len(lat) - 1))], 1),
        # The transport's floor right now: a bare netlink round trip between two processes.
        "ref_raw_rtt_us_p50": round(statistics.median(raw_netlink_rtt_us(2000)), 1),
        "buffer_stats": stats,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:18} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
