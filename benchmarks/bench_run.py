"""What `tracetui run` costs a Python program, against viztracer on the same script.

    python benchmarks/bench_run.py [--json] [--repeat N] [--fib N] [--events N]

Each figure is the median over N runs; every program is a separate process, and all of them
run in this one invocation (a private daemon in a temporary runtime directory):

  call_overhead_ns           extra time per traced call (entry and exit recorded) of a
                             recursive fib, `tracetui run` against the same script untraced
  ref_viztracer_call_overhead_ns
                             the same with `viztracer` (PyPI; the `bench` extra)
  filtered_call_overhead_ns  extra time per call when the filter excludes fib
                             (`--exclude '*.fib'`)
  evalframe_call_overhead_ns, evalframe_filtered_call_overhead_ns
                             the same two with `--hook evalframe` (CPython 3.11 and 3.12: the
                             opt-in PEP 523 hook)
  trace_ready_ms             from the program's last instruction to `tracetui run` returning
                             with the CTF trace complete on disk, for a program that wrote
                             --events function events (default 1 M; the issue's figure is for
                             10 M: --events 10000000)
  ready_recorded, ready_lost  events recorded and lost (buffers full) in the last of those
                             runs (the program's own py_call/py_return plus a few hundred
                             of interpreter startup)
  log_emit_ns                one `logger.info("a=%d", 1)` recorded through the logging
                             bridge `tracetui run --logging` installs (logbridge.install),
                             marker enabled, the logger having no handler of its own
  ref_logging_file_ns        the same call with a logging.FileHandler (logging alone, the
                             bridge taken out), in this process; rounds of the two alternate

Where a traced call's time goes, measured in one more process (in-process, the hook
installed once, its markers attached to a local channel; per round one fib(N) of each kind,
thread CPU time, the median over rounds of each kind minus that round's untraced run):

  inproc_call_overhead_ns    a call recorded (py_call and py_return)
  inproc_filtered_call_overhead_ns
                             a call of a function the filter excludes
  hook_floor_ns              the hook installed but returning at once (paused): what
                             CPython's machinery costs per call before the hook does
                             anything (the profile function on 3.11, the sys.monitoring
                             callbacks on 3.12+); no filter can cost less than this
  ref_ring_write_ns          one 12-byte record written by ttrb_write from C in a loop
                             (ttrb_bench_write): a py_call or py_return's ring write alone,
                             most of it the ordered TSC read
  recording_floor_ns         hook_floor_ns + 2 x ref_ring_write_ns: the least a recorded
                             call can cost with this hook and this ring
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The main thread's CPU time, not the wall clock: on a shared host, time other processes
# take from this one would count as the tracer's (tracing's work is all in this thread).
FIB = r"""
import sys, time
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def calls(n):
    return 1 if n < 2 else 1 + calls(n - 1) + calls(n - 2)
n = int(sys.argv[1])
t0 = time.thread_time_ns()
fib(n)
dt = time.thread_time_ns() - t0
print(dt, calls(n) if len(sys.argv) > 2 else 0)
"""

EVENTS = r"""
import sys, time
def f():
    pass
for _ in range(int(sys.argv[1]) // 2):
    f()
print(time.monotonic_ns())
"""

INPROC = r"""
import gc, json, os, statistics, sys, time
sys.setrecursionlimit(10000)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def fibx(n):
    return n if n < 2 else fibx(n - 1) + fibx(n - 2)
def calls(n):
    return 1 if n < 2 else 1 + calls(n - 1) + calls(n - 2)
n, rounds = int(sys.argv[1]), int(sys.argv[2])
from tracetui.core import _ttrb, cmarker, pytrace
from tracetui.core.ring import Channel
mod = cmarker._ttpy
ch = Channel.create(f"/tracetui-bench-inproc-{os.getpid()}", 1 << 20, 64, flight=True)
try:
    for i, m in enumerate(pytrace.markers().values()):
        m.native.set_id(i + 1)
        m.native.set_targets([ch])
        m.enabled = True
    pytrace.install((), ("*.fibx",), False, "auto")
    mon = mod.BACKEND == "monitoring"
    mask = sys.monitoring.get_events(pytrace._TOOL) if mon else 0
    def kind(k):
        mod.pause(k == "floor")
        if k == "base":
            mod.stop()
            if mon:
                sys.monitoring.set_events(pytrace._TOOL, 0)
        else:
            if mon:
                sys.monitoring.set_events(pytrace._TOOL, mask)
            mod.start()
    kinds = {"base": fib, "floor": fib, "call": fib, "filtered": fibx}
    t = {k: [] for k in kinds}
    clock = time.thread_time_ns
    gc.disable()
    fibx(5)  # filtered code resolved (and on 3.12 DISABLEd) once, as in a long run
    for _ in range(rounds):
        for k, f in kinds.items():
            kind(k)
            t0 = clock()
            f(n)
            t[k].append(clock() - t0)
    kind("base")
    mod.pause(False)
    c = calls(n)
    d = {k: statistics.median((a - b) / c for a, b in zip(v, t["base"])) for k, v in t.items()}
    ring = min(_ttrb.lib.ttrb_bench_write(ch._ptr, 1, 1_000_000, 12) for _ in range(3))
    print(json.dumps({"call": d["call"], "filtered": d["filtered"], "floor": d["floor"],
                      "ring": ring}))
finally:
    ch.unlink()
    ch.close()
"""


def _run(cmd: list[str], env: dict[str, str]) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"bench_run: {' '.join(cmd)} failed: {r.stderr.strip()[-500:]}")
    return r.stdout


def fib_ns(prefix: list[str], script: Path, n: int, env: dict[str, str]) -> int:
    """CPU time of fib(n) in the program's main thread (ns)."""
    out = _run([*prefix, str(script), str(n)], env)
    return int(out.split()[0])


def log_figures(count: int, rounds: int = 7) -> tuple[float, float]:
    """(bridge, FileHandler) ns per `logger.info("a=%d", 1)`, medians over ROUNDS rounds of
    COUNT calls each, the two kinds alternating (this host's speed drifts within seconds).
    The FileHandler rounds run with logging's own Logger._log and callHandlers back in
    place, so they measure logging alone."""
    from tracetui.core import logbridge
    from tracetui.core.ring import Channel

    log = logging.getLogger("tracetui-bench-run")
    log.propagate = False
    log.setLevel(logging.INFO)
    plain = (logging.Logger._log, logging.Logger.callHandlers)
    # What `tracetui run --logging INFO` installs; the marker attached to a channel here.
    handler = logbridge.install(logging.INFO)
    bridged = (logging.Logger._log, logging.Logger.callHandlers)
    ch = Channel.create(f"/tracetui-bench-run-{os.getpid()}", 1 << 20, 8, flight=True)
    m = handler._marker
    times: dict[str, list[float]] = {"bridge": [], "file": []}
    with tempfile.NamedTemporaryFile(dir="/tmp", prefix="tracetui-bench-log-") as f:
        fh = logging.FileHandler(f.name)
        try:
            m.native.set_id(1)
            m.native.set_targets([ch])
            m.enabled = True
            for r in range(rounds + 1):  # round 0 warms both paths up, untimed
                for kind, (log_fn, call_handlers) in (("file", plain), ("bridge", bridged)):
                    logging.Logger._log = log_fn  # type: ignore[method-assign]
                    logging.Logger.callHandlers = call_handlers  # type: ignore[method-assign]
                    if kind == "file":
                        log.addHandler(fh)
                    t0 = time.perf_counter_ns()
                    for _ in range(count):
                        log.info("a=%d", 1)
                    if r:
                        times[kind].append((time.perf_counter_ns() - t0) / count)
                    log.removeHandler(fh)
            assert ch.stats().recorded == count * (rounds + 1)
        finally:
            logging.Logger._log, logging.Logger.callHandlers = bridged  # type: ignore[method-assign]
            fh.close()
            m.native.set_targets([])
            m.enabled = False
            ch.unlink()
            ch.close()
    return statistics.median(times["bridge"]), statistics.median(times["file"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--fib", type=int, default=22, help="fib(N) per run (default 22)")
    ap.add_argument("--events", type=int, default=1_000_000,
                    help="function events for trace_ready_ms (default 1 M)")  # fmt: skip
    ap.add_argument("--log-count", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=30,
                    help="rounds of the in-process breakdown (default 30)")  # fmt: skip
    args = ap.parse_args(argv)

    from tracetui.core.client import Client, rendezvous, spawn

    tmp = Path(tempfile.mkdtemp(prefix="tracetui-bench-run-"))
    env = {**os.environ, rendezvous.ENV: str(tmp / "rt"), "XDG_DATA_HOME": str(tmp / "data")}
    os.environ[rendezvous.ENV] = env[rendezvous.ENV]
    daemon = spawn.spawn_daemon(tmp / "rt", env=env)
    py = sys.executable
    run = [py, "-m", "tracetui", "run"]
    fib = tmp / "fib.py"
    fib.write_text(FIB)
    events = tmp / "events.py"
    events.write_text(EVENTS)
    viz = shutil.which("viztracer", path=str(Path(py).parent)) or shutil.which("viztracer")
    try:
        calls = int(_run([py, str(fib), str(args.fib), "count"], env).split()[1])
        from tracetui.core import cmarker

        evalframe = bool(cmarker._ttpy is not None and cmarker._ttpy.HAVE_EVALFRAME)
        runs: dict[str, list[float]] = {
            "call_overhead_ns": [], "ref_viztracer_call_overhead_ns": [],
            "filtered_call_overhead_ns": [], "trace_ready_ms": [],
            "evalframe_call_overhead_ns": [], "evalframe_filtered_call_overhead_ns": [],
        }  # fmt: skip
        for i in range(args.repeat):
            base = fib_ns([py], fib, args.fib, env)
            traced = fib_ns([*run, "--trace", f"fib{i}", "--", py], fib, args.fib, env)
            filt = fib_ns([*run, "--trace", f"filt{i}", "--exclude", "*.fib", "--", py],
                          fib, args.fib, env)  # fmt: skip
            runs["call_overhead_ns"].append((traced - base) / calls)
            runs["filtered_call_overhead_ns"].append((filt - base) / calls)
            if evalframe:
                ev = [*run, "--hook", "evalframe", "--trace"]
                t = fib_ns([*ev, f"efib{i}", "--", py], fib, args.fib, env)
                runs["evalframe_call_overhead_ns"].append((t - base) / calls)
                t = fib_ns([*ev, f"efilt{i}", "--exclude", "*.fib", "--", py], fib, args.fib, env)
                runs["evalframe_filtered_call_overhead_ns"].append((t - base) / calls)
            if viz:
                vout = tmp / f"viz{i}.json"
                v = fib_ns([viz, "--quiet", "-o", str(vout), "--"], fib, args.fib, env)
                runs["ref_viztracer_call_overhead_ns"].append((v - base) / calls)
            out = _run([*run, "--trace", f"ready{i}", "--", py, str(events), str(args.events)],
                       env)  # fmt: skip
            done = time.monotonic_ns()
            runs["trace_ready_ms"].append((done - int(out.split()[-1])) / 1e6)
            with Client(env[rendezvous.ENV]) as c:
                total = c.read(f"ready{i}/main/stats").splitlines()[-1].split()
            stats = dict(kv.split("=", 1) for kv in total[1:])
            ready_lost = int(stats["discarded"]) + int(stats["too_big"])
            ready_recorded = int(stats["recorded"])
        inproc = json.loads(_run([py, "-c", INPROC, str(args.fib - 2), str(args.rounds)], env))
        log_ns, file_ns = log_figures(args.log_count)
    finally:
        spawn.stop_daemon(daemon)
        shutil.rmtree(tmp, ignore_errors=True)
    result: dict[str, object] = {k: round(statistics.median(v), 1) for k, v in runs.items() if v}
    if not viz:
        result["ref_viztracer_call_overhead_ns"] = None
    result["inproc_call_overhead_ns"] = round(inproc["call"], 1)
    result["inproc_filtered_call_overhead_ns"] = round(inproc["filtered"], 1)
    result["hook_floor_ns"] = round(inproc["floor"], 1)
    result["ref_ring_write_ns"] = inproc["ring"]
    result["recording_floor_ns"] = round(inproc["floor"] + 2 * inproc["ring"], 1)
    result["log_emit_ns"] = round(log_ns, 1)
    result["ref_logging_file_ns"] = round(file_ns, 1)
    # Of the last trace_ready run: the trace holds every event the program wrote unless lost.
    result["ready_recorded"] = ready_recorded
    result["ready_lost"] = ready_lost
    result |= {"fib": args.fib, "calls": calls, "events": args.events, "repeat": args.repeat}
    result["python"] = sys.version.split()[0]
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:32} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
