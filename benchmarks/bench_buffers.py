"""Ring-buffer benchmark: C write loops, the Python emit path, the consumer.

    python benchmarks/bench_buffers.py [--json] [--repeat N]

Prints medians over N repetitions.  Figures (targets in issue 2):
  c_percpu_discard_ns  one C writer, 48-byte records, per-CPU discard channel
  c_percpu_flight_ns   the same in flight mode
  c_global_2w_ns       two C writer threads on one global buffer, per record per thread
  py_emit_ns           Python emitting three integers through cffi (loop cost subtracted)
  consume_gbps         the consumer draining full packets to a file under /tmp
Same-run references (targets are ratios to them; the machine changes between sessions):
  ref_ring_cas_ns      a bare lock-free CAS ring write of the same 48 bytes with rdtsc
  ref_ring_plain_ns    the same ring with a plain add (one writer, no atomics)
  ref_logging_file_ns  logging.info of three integers to a logging.FileHandler
and the ratios c_percpu_discard_vs_cas and py_emit_vs_logging.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from tracetui.core.ring import Channel, bench_ref_cas, bench_write

RECORD = 48  # bytes per record, header included
PAYLOAD = RECORD - 10


def _name(tag: str) -> str:
    return f"/tracetui-bench-{os.getpid()}-{tag}"


def c_loop(*, is_global: bool, flight: bool, threads: int, count: int) -> float:
    # Big enough that nothing is lost: the loop measures recording, not dropping.
    ch = Channel.create(_name("c"), 1 << 24, 4, is_global=is_global, flight=flight)
    try:
        ns = bench_write(ch, threads, count, PAYLOAD)
        s = ch.stats()
        assert s.recorded == threads * count, s
        return float(ns)
    finally:
        ch.unlink()
        ch.close()


def py_emit(count: int) -> float:
    ch = Channel.create(_name("py"), 1 << 22, 8, flight=True)
    try:
        emit = ch.writer_u64x3(1)
        t0 = time.perf_counter_ns()
        for i in range(count):
            emit(i, 2, 3)
        t1 = time.perf_counter_ns()
        for _ in range(count):
            pass
        t2 = time.perf_counter_ns()
        # Subtract only the bare loop: the call itself is part of emitting.
        return ((t1 - t0) - (t2 - t1)) / count
    finally:
        ch.unlink()
        ch.close()


def logging_file(n: int) -> float:
    """ns per logger.info("a=%d b=%d c=%d", ...) written by a logging.FileHandler."""
    import logging

    with tempfile.NamedTemporaryFile(dir="/tmp", prefix="tracetui-bench-log-") as f:
        log = logging.getLogger(f"tracetui-bench-{os.getpid()}")
        log.propagate = False
        log.setLevel(logging.INFO)
        handler = logging.FileHandler(f.name)
        log.addHandler(handler)
        try:
            t0 = time.perf_counter_ns()
            for i in range(n):
                log.info("a=%d b=%d c=%d", i, i, i)
            return (time.perf_counter_ns() - t0) / n
        finally:
            log.removeHandler(handler)
            handler.close()


def consume(total_bytes: int) -> float:
    sb = 1 << 20
    ch = Channel.create(_name("cons"), sb, 16, is_global=True)
    try:
        per = total_bytes // RECORD
        bench_write(ch, 1, min(per, (16 * sb) // RECORD - 1000), PAYLOAD)
        ch.flush()
        with tempfile.NamedTemporaryFile(dir="/tmp", prefix="tracetui-bench-") as f:
            fd = f.fileno()
            n = 0
            t0 = time.perf_counter_ns()
            while (pkt := ch.get_packet(0)) is not None:
                n += os.write(fd, pkt)
                ch.put_packet(0)
            dt = time.perf_counter_ns() - t0
        return n / dt  # bytes per ns == GB/s
    finally:
        ch.unlink()
        ch.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--count", type=int, default=500_000, help="records per C loop")
    args = ap.parse_args(argv)

    runs: dict[str, list[float]] = {k: [] for k in (
        "c_percpu_discard_ns", "c_percpu_flight_ns", "c_global_2w_ns", "py_emit_ns",
        "consume_gbps", "ref_ring_cas_ns", "ref_ring_plain_ns", "ref_logging_file_ns")}  # fmt: skip
    for _ in range(args.repeat):
        runs["c_percpu_discard_ns"].append(
            c_loop(is_global=False, flight=False, threads=1, count=args.count)
        )
        runs["c_percpu_flight_ns"].append(
            c_loop(is_global=False, flight=True, threads=1, count=args.count)
        )
        runs["c_global_2w_ns"].append(
            c_loop(is_global=True, flight=False, threads=2, count=args.count // 2)
        )
        runs["py_emit_ns"].append(py_emit(200_000))
        runs["consume_gbps"].append(consume(16 << 20))  # fmt: skip
        runs["ref_ring_cas_ns"].append(float(bench_ref_cas(args.count, PAYLOAD)))
        runs["ref_ring_plain_ns"].append(float(bench_ref_cas(args.count, PAYLOAD, atomic=False)))
        runs["ref_logging_file_ns"].append(logging_file(20_000))
    out: dict[str, object] = {k: round(statistics.median(v), 2) for k, v in runs.items()}
    out["c_percpu_discard_vs_cas"] = round(
        statistics.median(runs["c_percpu_discard_ns"]) / statistics.median(runs["ref_ring_cas_ns"]),
        2,
    )
    out["py_emit_vs_logging"] = round(
        statistics.median(runs["py_emit_ns"]) / statistics.median(runs["ref_logging_file_ns"]), 3
    )
    out["record_bytes"] = RECORD
    out["repeat"] = args.repeat
    out["cpus"] = os.cpu_count()
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:22} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
