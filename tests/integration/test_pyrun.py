"""`tracetui run` on real programs: a real daemon, real traced processes, the trace on disk.

The target (tests/helpers/pyrun_target.py) has a known call graph across the main thread, a
thread, a forked child and a multiprocessing (spawn) child; each test runs it under
``python -m tracetui run`` against the ``daemon`` fixture's daemon and reads the trace back
with tracetui's reader and with babeltrace2.
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tracetui.core.pyfuncs import CallTracker
from tracetui.core.trace.packets import Event, Loss
from tracetui.core.trace.reader import TraceDirectory

_names = itertools.count()
TARGET = str(Path(__file__).parents[1] / "helpers" / "pyrun_target.py")
BT2 = shutil.which("babeltrace2")


def run_target(daemon, tmp_path: Path, *opts: str, mode: str = "full") -> tuple[Any, Path, dict]:  # type: ignore[no-untyped-def]
    """Run the target under `tracetui run --trace T` (T created here with a known output)."""
    tmp_path.mkdir(exist_ok=True)
    out = tmp_path / "trace"
    name = f"pyrun{next(_names)}"
    daemon.client.mkdir(name)
    daemon.client.write(f"{name}/output", str(out))
    daemon.client.write(f"{name}/main/subbuf_size", "1M")
    pidfile = tmp_path / "pids"
    r = subprocess.run(
        [sys.executable, "-m", "tracetui", "run", "--trace", name, *opts, "--",
         sys.executable, TARGET, str(pidfile), mode],
        capture_output=True, text=True, env=daemon.env(), timeout=120,
    )  # fmt: skip
    pids: dict[str, tuple[int, int]] = {}
    for line in pidfile.read_text().splitlines() if pidfile.exists() else []:
        role, pid, tid = line.split()
        pids[role] = (int(pid), int(tid))
    # The trace was started by `tracetui run`, and stopped by it: it is complete on disk.
    assert daemon.client.read(f"{name}/start").strip() == "0"
    return r, out, pids


def read_calls(out: Path) -> tuple[list[Event], CallTracker, list[Any]]:
    trace = TraceDirectory(out)
    items = list(trace)
    assert not [i for i in items if isinstance(i, Loss)]
    events = [i for i in items if isinstance(i, Event)]
    tracker = CallTracker()
    steps = []
    for e in events:
        step = tracker.feed(e.name, e.fields, e.ts_ns)
        if step is not None:
            steps.append(step)
    return events, tracker, steps


def counts(steps: list[Any], tid: int, kind: str = "call") -> collections.Counter[str]:
    return collections.Counter(s.func for s in steps if s.tid == tid and s.kind == kind)


def own(c: collections.Counter[str], prefix: str = "__main__.") -> dict[str, int]:
    """The target's own functions among counts C."""
    return {k.removeprefix(prefix): v for k, v in c.items() if k.startswith(prefix)}


def untraced(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, TARGET, str(tmp_path / "plain-pids"), "full"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


HOOKS = ["auto"] + (["evalframe"] if sys.version_info[:2] in ((3, 11), (3, 12)) else [])


@pytest.mark.parametrize("hook", HOOKS)
def test_known_call_graph_every_call_paired(daemon, tmp_path: Path, hook: str) -> None:
    r, out, pids = run_target(daemon, tmp_path, "--logging", "INFO", "--hook", hook)
    plain = untraced(tmp_path)
    # The program's own exit status and output, unchanged.
    assert r.returncode == plain.returncode == 7, r.stderr
    assert r.stdout == plain.stdout == "branch 40\ngen 6\ncaught\n"
    assert r.stderr == plain.stderr, r.stderr
    assert set(pids) == {"main", "thread", "fork", "mp"}

    events, tracker, steps = read_calls(out)
    assert not [s for s in steps if s.unpaired]
    main_tid, thread_tid = pids["main"][1], pids["thread"][1]
    fork_tid, mp_tid = pids["fork"][1], pids["mp"][1]
    for tid in (main_tid, thread_tid, fork_tid, mp_tid):
        assert tracker.stacks.get(tid) == [], f"calls left open in thread {tid}"

    main = counts(steps, main_tid)
    assert main["__main__.main"] == 1
    assert main["__main__.branch"] == 2
    assert main["__main__.leaf"] == 10
    assert main["__main__.gen"] == 4  # started, resumed after each of 3 yields
    assert main["__main__.failing"] == 1
    assert counts(steps, main_tid, "raise")["__main__.failing"] == 1
    assert counts(steps, main_tid, "return")["__main__.failing"] == 0
    assert own(counts(steps, thread_tid)) == {"worker": 1, "leaf": 3, "note": 1}
    # The fork child: from the fork on (main() was entered in the parent).
    assert own(counts(steps, fork_tid)) == {"child_work": 1, "leaf": 2, "note": 1}
    # ... and not the probe's reconnection in the child (threading, socket, ...).
    assert not [f for f in counts(steps, fork_tid) if f.split(".")[0] in
                ("threading", "socket", "_weakrefset", "tracetui")]  # fmt: skip
    # tracetui's own threads (the probe's link to the daemon) are never traced.
    assert not [s for s in steps if s.func.startswith(("tracetui.", "selectors."))]
    # The spawned child imports the program as __mp_main__ (its <module>), then runs mp_work.
    assert own(counts(steps, mp_tid), "__mp_main__.") == {
        "<module>": 1, "mp_work": 1, "leaf": 4, "note": 1,
    }  # fmt: skip

    # Nesting: every leaf call of the main thread is inside a branch call.
    depth = {s.func: s.depth for s in steps if s.tid == main_tid and s.kind == "call"}
    assert depth["__main__.leaf"] == depth["__main__.branch"] + 1
    assert depth["__main__.branch"] == depth["__main__.main"] + 1

    # Log records at INFO and above, with their fields; DEBUG is not recorded.
    logs = [e.fields for e in events if e.name == "py_log"]
    assert [(f["level"], f["msg"], f["logger"]) for f in logs] == [
        (20, "info 2", "target"), (30, "warning three", "target"), (40, "error", "target"),
        (30, "shown 5", "shown"),
    ]  # fmt: skip
    assert "pyrun_target.py:" in r.stderr and " main WARNING shown 5" in r.stderr
    assert all(f["file"] == TARGET and f["tid"] == main_tid and f["line"] > 0 for f in logs)

    # babeltrace2 reads the same events.
    if BT2 is not None:
        bt = subprocess.run([BT2, str(out)], capture_output=True, text=True, timeout=120)
        assert bt.returncode == 0, bt.stderr
        names = collections.Counter(re.findall(r"\) \S+ (py_\w+):", bt.stdout))
        mine = collections.Counter(e.name for e in events)
        assert names == mine
        assert 'name = "__main__.leaf"' in bt.stdout


def test_include_and_exclude_filters(daemon, tmp_path: Path) -> None:
    r, out, pids = run_target(daemon, tmp_path / "inc", "--functions", "*.leaf", "*.gen")
    assert r.returncode == 7, r.stderr
    _, _, steps = read_calls(out)
    funcs = {s.func for s in steps}
    assert funcs == {"__main__.leaf", "__main__.gen", "__mp_main__.leaf"}
    assert counts(steps, pids["main"][1])["__main__.leaf"] == 10
    # `tracetui dump` shows each function event's qualified name, in text and JSON.
    text = daemon.cli("dump", str(out))
    assert text.returncode == 0, text.stderr
    leaf_calls = [ln for ln in text.stdout.splitlines() if " py_call: " in ln and "leaf" in ln]
    assert len(leaf_calls) == 10 + 3 + 2 + 4
    assert all(ln.endswith(('function="__main__.leaf"', 'function="__mp_main__.leaf"'))
               for ln in leaf_calls)  # fmt: skip
    js = daemon.cli("dump", "--json", str(out))
    docs = [json.loads(ln) for ln in js.stdout.splitlines()]
    assert {d.get("function") for d in docs if d["name"] == "py_return"} == funcs

    r, out, pids = run_target(daemon, tmp_path / "exc", "--exclude", "*.leaf", "threading.*")
    assert r.returncode == 7, r.stderr
    _, _, steps = read_calls(out)
    funcs = {s.func for s in steps}
    assert not [f for f in funcs if f.endswith(".leaf") or f.startswith("threading.")]
    assert "__main__.branch" in funcs and "__main__.worker" in funcs


def test_no_functions_and_logging_only(daemon, tmp_path: Path) -> None:
    r, out, _ = run_target(daemon, tmp_path, "--no-functions", "--logging", "WARNING")
    assert r.returncode == 7, r.stderr
    events, _, steps = read_calls(out)
    assert steps == []
    assert [e.fields["msg"] for e in events if e.name == "py_log"] == [
        "warning three", "error", "shown 5",
    ]  # fmt: skip


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize(("mode", "status"), [("kill", -9), ("exit", 5)])
def test_a_program_that_dies_leaves_a_readable_trace(daemon, tmp_path: Path, mode: str,
                                                     status: int, hook: str) -> None:  # fmt: skip
    r, out, pids = run_target(daemon, tmp_path, "--logging", "--hook", hook, mode=mode)
    assert r.returncode == status, r.stderr  # tracetui run dies the program's death
    events, tracker, steps = read_calls(out)
    main = counts(steps, pids["main"][1])
    assert main["__main__.branch"] == 1 and main["__main__.leaf"] == 3
    returns = counts(steps, pids["main"][1], "return")
    assert returns["__main__.branch"] == 1 and returns["__main__.leaf"] == 3
    if mode == "kill":
        assert [e.fields["msg"] for e in events if e.name == "py_log"] == ["about to die"]
        assert [f for f, _ in tracker.stacks[pids["main"][1]]]  # main() never returned
    else:
        open_calls = [tracker.table.name(f) for f, _ in tracker.stacks[pids["main"][1]]]
        assert open_calls[-4:] == ["__main__.nested_exit"] * 4


def test_usage_errors_are_one_line(daemon) -> None:  # type: ignore[no-untyped-def]
    r = daemon.cli("run")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "after --" in r.stderr
    r = daemon.cli("run", "--logging", "LOUD", "--", sys.executable, "-c", "pass")
    assert r.returncode == 2 and "not a logging level" in r.stderr
    r = daemon.cli("run", "--", "/nonexistent/python")
    assert r.returncode == 127 and "cannot run" in r.stderr
    r = daemon.cli("run", "--hook", "evalframe", "--c-calls", "--", sys.executable, "-c", "1")
    assert r.returncode == 2 and "--c-calls needs" in r.stderr
    other = "profile" if sys.version_info >= (3, 12) else "monitoring"
    r = daemon.cli("run", "--hook", other, "--", sys.executable, "-c", "1")
    assert r.returncode == 2 and "not available with this Python" in r.stderr


def test_c_calls_are_recorded_nested_with_python_calls(daemon, tmp_path: Path) -> None:
    r, out, pids = run_target(daemon, tmp_path, "--c-calls", "--functions", "*.gen",
                              "builtins.sum")  # fmt: skip
    assert r.returncode == 7, r.stderr
    events, _, steps = read_calls(out)
    main_tid = pids["main"][1]
    mine = [(s.kind, s.func, s.depth) for s in steps if s.tid == main_tid]
    # sum(gen()): the C function sum is called, resumes the generator 4 times, returns.
    assert mine == [
        ("call", "builtins.sum", 0),
        *[("call", "__main__.gen", 1), ("return", "__main__.gen", 1)] * 4,
        ("return", "builtins.sum", 0),
    ]
    assert {e.name for e in events} >= {"py_c_call", "py_c_return", "py_call", "py_return"}
    assert not [s for s in steps if s.unpaired]


LOGGING_PROGRAM = r"""
import logging, sys, time
from tracetui import probe
log = logging.getLogger("app")
log.setLevel(logging.DEBUG)
log.addHandler(probe.logging_handler(logging.INFO))
m = probe.marker("app_ready", "n %d")
deadline = time.monotonic() + 10
while not m.enabled and time.monotonic() < deadline:
    time.sleep(0.01)
log.debug("not recorded %d", 1)
log.info("recorded %d", 2)
log.error("also %s", "this")
log.info("bad args %d", "x")  # the program's bug: recorded as written, nothing raised
print("ok")
"""


def test_logging_handler_for_programs_that_configure_logging(daemon, tmp_path: Path) -> None:
    out = tmp_path / "trace"
    c = daemon.client
    c.mkdir("logs")
    c.write("logs/output", str(out))
    c.write("logs/start", "1")
    r = subprocess.run([sys.executable, "-c", LOGGING_PROGRAM], capture_output=True, text=True,
                       env=daemon.env(), timeout=60)  # fmt: skip
    c.write("logs/start", "0")
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
    events, _, _ = read_calls(out)
    logs = [(e.fields["level"], e.fields["msg"], e.fields["line"]) for e in events
            if e.name == "py_log"]  # fmt: skip
    assert logs == [(20, "recorded 2", 12), (40, "also this", 13), (20, "bad args %d", 14)]


BRIDGE_PROGRAM = r"""
import logging, sys
log = logging.getLogger("fast")
log.setLevel(logging.DEBUG)
flt = logging.getLogger("flt")
flt.setLevel(logging.DEBUG)
flt.addFilter(lambda r: r.msg != "dropped")
class Msg:
    def __str__(self):
        return "obj %d"
def helper():
    log.info("via helper", stacklevel=2)
log.debug("under the level %d", 0)
log.info("plain %d", 1)  # plain
log.info("map %(a)s", {"a": 2})  # map
log.info(Msg(), 3)  # obj
log.info("bad %d", "x")
helper()  # helper
flt.info("kept")  # kept
flt.info("dropped")
log.warning("warned %s", "w")  # warned
print(type(logging.Logger._log).__name__)
"""


def test_logging_bridge_fast_path_and_fallback_agree(daemon, tmp_path: Path) -> None:
    """`--logging`: the C _log (plain calls) and the Python one it falls back on (keywords,
    filters) record the same fields; the program's output and last resort are unchanged."""
    script = tmp_path / "bridge.py"
    script.write_text(BRIDGE_PROGRAM)
    out = tmp_path / "trace"
    c = daemon.client
    c.mkdir("bridge")
    c.write("bridge/output", str(out))
    r = subprocess.run(
        [sys.executable, "-m", "tracetui", "run", "--trace", "bridge", "--no-functions",
         "--logging", "INFO", "--", sys.executable, str(script)],
        capture_output=True, text=True, env=daemon.env(), timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    from tracetui.core import cmarker

    assert r.stdout == ("LogFast\n" if cmarker.available() else "function\n")
    assert r.stderr.splitlines()[-1:] == ["warned w"]  # logging's last resort still prints
    lines = BRIDGE_PROGRAM.splitlines()

    def line(tag: str) -> int:
        return next(i + 1 for i, t in enumerate(lines) if t.endswith(f"# {tag}"))

    events, _, _ = read_calls(out)
    logs = [(e.fields["logger"], e.fields["level"], e.fields["msg"], e.fields["line"],
             e.fields["file"]) for e in events if e.name == "py_log"]  # fmt: skip
    f = str(script)
    assert logs == [
        ("fast", 20, "plain 1", line("plain"), f),
        ("fast", 20, "map 2", line("map"), f),
        ("fast", 20, "obj 3", line("obj"), f),
        ("fast", 20, "bad %d", 0, "(unknown file)"),
        ("fast", 20, "via helper", line("helper"), f),
        ("flt", 20, "kept", line("kept"), f),
        ("fast", 30, "warned w", line("warned"), f),
    ]
