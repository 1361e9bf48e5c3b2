"""Control-path benchmark: round trips through the real client, setup of many traces, memory.

Starts a private daemon (its own runtime directory), then measures:

- ``rtt_us_p50`` / ``rtt_us_p99``: a ``read`` of a channel file through :class:`Client`
  (encode, netlink to the daemon process, namespace, reply, decode);
- ``async_rtt_us_p50``: the same through :class:`AsyncClient` in an asyncio loop;
- ``setup_100x4_s``: create 100 traces x 4 channels (main + 3), give each channel 16 KiB x 4
  sub-buffers, and allocate them all, through the real client;
- ``daemon_rss_growth_kb``: the daemon's RSS growth over ``--requests`` reads after a warm-up;
- ``cli_ms_p50``: one ``tracetui read`` command, process start to exit;
- ``ref_raw_rtt_us_p50``: in the same run, a bare netlink echo between two processes (raw socket,
  no codec, no namespace): the floor this machine allows right now, so ``rtt_us_p50`` can be
  read as a ratio on a shared, noisy host.

Usage: python benchmarks/bench_control.py [--json] [--requests 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from refs import raw_netlink_rtt_us

from tracetui.core.client import AsyncClient, Client, rendezvous, spawn


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


def bench_rtt(c: Client, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        c.read("bench/main/subbuf_size")
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


async def bench_async_rtt(directory: Path, n: int) -> list[float]:
    c = await AsyncClient.connect(directory)
    try:
        out = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            await c.read("bench/main/subbuf_size")
            out.append((time.perf_counter_ns() - t0) / 1000)
        return out
    finally:
        await c.close()


def bench_setup(c: Client) -> float:
    t0 = time.perf_counter()
    for i in range(100):
        t = f"setup{i:03d}"
        c.mkdir(t)
        for ch in ("main", "a", "b", "c"):
            if ch != "main":
                c.mkdir(f"{t}/{ch}")
            c.write(f"{t}/{ch}/subbuf_size", "16K")
            c.write(f"{t}/{ch}/n_subbuf", "4")
            c.write(f"{t}/{ch}/allocate", "1")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--requests", type=int, default=100_000, help="reads for the memory check")
    ap.add_argument("--rtt", type=int, default=5000, help="timed round trips")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="tracetui-bench-") as tmp:
        directory = Path(tmp) / "run"
        env = {"XDG_DATA_HOME": str(Path(tmp) / "data")}
        proc = spawn.spawn_daemon(directory, env={**os.environ, **env})
        try:
            with Client(str(directory)) as c:
                c.mkdir("bench")
                bench_rtt(c, 1000)  # warm-up
                rtt = bench_rtt(c, args.rtt)
                raw = raw_netlink_rtt_us(args.rtt)
                artt = asyncio.run(bench_async_rtt(directory, args.rtt))
                before = rss_kb(proc.pid)
                for _ in range(args.requests):
                    c.read("bench/main/stats")
                growth = rss_kb(proc.pid) - before
                setup = bench_setup(c)
                for i in range(100):
                    c.rmdir(f"setup{i:03d}")
            cli = []
            for _ in range(10):
                t0 = time.perf_counter()
                subprocess.run(
                    rendezvous.python_command("-m", "tracetui", "--runtime-dir", str(directory),
                                           "read", "bench/main/flight"),
                    check=True,
                    capture_output=True,
                )  # fmt: skip
                cli.append((time.perf_counter() - t0) * 1000)
        finally:
            spawn.stop_daemon(proc)

    result = {
        "rtt_us_p50": round(statistics.median(rtt), 1),
        "rtt_us_p99": round(percentile(rtt, 0.99), 1),
        "ref_raw_rtt_us_p50": round(statistics.median(raw), 1),
        "rtt_vs_raw": round(statistics.median(rtt) / statistics.median(raw), 2),
        "async_rtt_us_p50": round(statistics.median(artt), 1),
        "setup_100x4_s": round(setup, 3),
        "daemon_rss_growth_kb": growth,
        "requests_for_rss": args.requests,
        "cli_ms_p50": round(statistics.median(cli), 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:24} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
