"""The C and C++ API (tracetui/probe.h, libtracetui-probe.so) with the system compiler.

Real parts: the installed header and library found through `tracetui config`, programs built
by gcc/g++, a real daemon (tests/conftest.py), traces read by tracetui's reader and by
babeltrace2.  Covers issue 11: the examples compile as C and C++; a program with known events
(every field type, threads, a fork, a marker defined in a dlopen'ed library) records exactly;
with no daemon the program runs unchanged; under overload recorded + lost = emitted.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import start_daemon

from tracetui.cli import config
from tracetui.core.model.stats import parse_stats
from tracetui.core.trace.packets import Event, Loss
from tracetui.core.trace.reader import TraceDirectory

HERE = Path(__file__).parent
EXAMPLES = HERE.parents[1] / "examples"
CC = shutil.which("cc") or shutil.which("gcc")
CXX = shutil.which("c++") or shutil.which("g++")
BT2 = shutil.which("babeltrace2")
WARN = ["-Wall", "-Wextra", "-pedantic", "-Werror"]

pytestmark = [
    pytest.mark.skipif(CC is None, reason="no C compiler"),
    pytest.mark.skipif(not config.LIBRARY.exists(), reason="libtracetui-probe.so not built"),
]


def tt_flags() -> list[str]:
    r = subprocess.run(
        [sys.executable, "-m", "tracetui", "config", "--cflags", "--libs"],
        capture_output=True,
        text=True,
        check=True,
    )
    return r.stdout.split()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("capi")
    flags = tt_flags()
    assert CC is not None
    plugin = d / "libplugin.so"
    subprocess.run(
        [CC, "-std=c99", *WARN, "-fPIC", "-shared", "-o", plugin, HERE / "plugin.c", *flags],
        check=True,
    )
    known = d / "known"
    subprocess.run(
        [CC, "-std=gnu99", *WARN, "-o", known, HERE / "known.c", *flags, "-lpthread", "-ldl"],
        check=True,
    )
    return {"known": known, "plugin": plugin}


def emitted(stdout: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"^emitted (\w+) (\d+)$", stdout, re.M)}


def setup_trace(daemon, out: Path, **settings: str) -> None:  # type: ignore[no-untyped-def]
    c = daemon.client
    c.mkdir("c")
    c.write("c/output", str(out))
    for k, v in settings.items():
        c.write(f"c/main/{k}", v)
    c.write("c/start", "1")


def wait_accounted(daemon, n: int):  # type: ignore[no-untyped-def]
    """c/main's total once recorded + lost reaches N (or after 10 s): the daemon reads a
    probe's lost count on the probe's socket, apart from this client's."""
    deadline = time.monotonic() + 10
    while True:
        total = parse_stats(daemon.client.read("c/main/stats"))["total"]
        if total.recorded + total.discarded >= n or time.monotonic() > deadline:
            return total
        time.sleep(0.05)


def expected_all(t: int, k: int) -> dict[str, object]:
    return {
        "t": t, "k": k, "i": -k, "u": k * 3, "l": -k * 1000000007, "lu": k * 4000000000,
        "ll": -k, "llu": k << 33, "x": 0xABC0 + k, "p": 0x1000 + k, "c": chr(97 + k % 26),
        "f": k + 0.25, "s": f"t{t}-k{k}",
    }


def test_examples_compile_as_c_and_cpp(tmp_path: Path) -> None:
    tracetui = str(Path(sys.executable).parent / "tracetui")
    for sub, target, extra in (("c", "workers", []), ("cpp", "pipeline", [])):
        if sub == "cpp" and CXX is None:
            pytest.skip("no C++ compiler")
        work = tmp_path / sub
        shutil.copytree(EXAMPLES / sub, work)
        r = subprocess.run(
            ["make", f"TRACETUI={tracetui}", *extra], cwd=work, capture_output=True, text=True
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "warning" not in r.stderr, r.stderr
        run = subprocess.run([work / target, "2", "10"], capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
    # The header alone, as C99 and C++11, warning-free at -Wall -Wextra -pedantic.
    src = tmp_path / "h.c"
    src.write_text('#include <tracetui/probe.h>\nint main(void){TT_MARKER(e, "");return 0;}\n')
    subprocess.run([CC, "-std=c99", *WARN, "-c", src, "-o", tmp_path / "h.o", *tt_flags()[:1]],
                   check=True)
    if CXX is not None:
        cpp = tmp_path / "h.cpp"
        cpp.write_text(src.read_text())
        subprocess.run([CXX, "-std=c++11", *WARN, "-c", cpp, "-o", tmp_path / "hpp.o",
                        *tt_flags()[:1]], check=True)


def test_format_mistakes_are_compile_warnings(tmp_path: Path) -> None:
    src = tmp_path / "bad.c"
    src.write_text('#include <tracetui/probe.h>\nvoid f(void){TT_MARKER(e, "pid %d", "x");}\n')
    r = subprocess.run([CC, "-Wall", "-c", src, "-o", tmp_path / "b.o", *tt_flags()[:1]],
                       capture_output=True, text=True)
    assert "format" in r.stderr and "%d" in r.stderr, r.stderr


def test_known_events_threads_fork_dlopen_are_exact(daemon, built, tmp_path: Path) -> None:
    out = tmp_path / "trace"
    setup_trace(daemon, out, subbuf_size="1M", n_subbuf="8")
    r = subprocess.run(
        [built["known"], "4", "500", "fork", "dlopen", built["plugin"]],
        capture_output=True, text=True, env=daemon.env(), timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    want = emitted(r.stdout)
    assert want == {"capi_all": 2000, "capi_child": 500, "capi_plugin": 500,
                    "capi_after_dlclose": 500}
    daemon.client.write("c/start", "0")
    items = list(TraceDirectory(out))
    assert not [i for i in items if isinstance(i, Loss)]
    events = [i for i in items if isinstance(i, Event)]
    assert Counter(e.name for e in events) == want
    seen = {}
    for e in events:
        if e.name == "capi_all":
            seen[(e.fields["t"], e.fields["k"])] = dict(e.fields)
    assert len(seen) == 2000
    for (t, k), fields in seen.items():
        assert fields == expected_all(t, k)
    child_pids = {e.fields["pid"] for e in events if e.name == "capi_child"}
    assert len(child_pids) == 1 and child_pids != {0}
    assert sorted(e.fields["k"] for e in events if e.name == "capi_plugin") == list(range(500))
    if BT2 is None:
        return
    bt = subprocess.run([BT2, str(out)], capture_output=True, text=True, timeout=60)
    assert bt.returncode == 0, bt.stderr
    names = Counter(m for m in re.findall(r"\] \(\+[^)]*\) \S+ (\w+):", bt.stdout))
    assert names == want
    for line in bt.stdout.splitlines():
        if " capi_all:" not in line:
            continue
        m = re.search(r"\{ t = (\d+), k = (\d+), .* s = \"([^\"]*)\" \}", line)
        assert m is not None, line
        t, k = int(m[1]), int(m[2])
        assert m[3] == f"t{t}-k{k}"
        fm = re.search(r" f = ([0-9.e+-]+),", line)
        assert fm is not None and float(fm[1]) == k + 0.25, line
        assert f"i = {-k}," in line and f"llu = {k << 33}," in line, line


def test_no_daemon_the_program_runs_unchanged(built, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TRACETUI_RUNTIME_DIR": str(tmp_path / "nobody")}
    r = subprocess.run(
        [built["known"], "2", "1000", "fork", "dlopen", built["plugin"]],
        capture_output=True, text=True, env=env, timeout=30,
    )
    assert r.returncode == 0 and r.stderr == ""
    assert emitted(r.stdout)["capi_all"] == 2000


def test_overload_recorded_plus_lost_is_emitted(daemon, built, tmp_path: Path) -> None:
    out = tmp_path / "small"
    setup_trace(daemon, out, subbuf_size="4K", n_subbuf="2", **{"global": "1"})
    r = subprocess.run([built["known"], "4", "20000"], capture_output=True, text=True,
                       env=daemon.env(), timeout=60)
    assert r.returncode == 0, r.stderr
    n = emitted(r.stdout)["capi_all"]
    daemon.client.write("c/start", "0")
    total = parse_stats(daemon.client.read("c/main/stats"))["total"]
    assert total.recorded + total.discarded == n
    assert total.discarded > 0
    items = list(TraceDirectory(out))
    events = sum(1 for i in items if isinstance(i, Event))
    lost = sum(i.lost for i in items if isinstance(i, Loss) and i.unit == "events")
    assert events + lost == n


def test_a_daemon_that_dies_never_stops_the_program(built, tmp_path: Path) -> None:
    handle = start_daemon(tmp_path / "run")
    try:
        setup_trace(handle, tmp_path / "t")
        p = subprocess.Popen([built["known"], "1", "10", "loop", "2"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=handle.env())
        time.sleep(0.5)
        handle.proc.kill()  # SIGKILL: no goodbye, the shared memory stays mapped
        handle.proc.wait(10)
        stdout, stderr = p.communicate(timeout=30)
        assert p.returncode == 0 and stderr == ""
        assert emitted(stdout)["capi_loop"] > 0
    finally:
        handle.client.close()
        if handle.proc.poll() is None:
            handle.proc.kill()
            handle.proc.wait(10)
        for f in glob.glob(f"/dev/shm/tracetui-{os.getuid()}-{handle.pid}-*"):
            os.unlink(f)


def test_registration_timeout_counts_early_events_as_lost(daemon, built, tmp_path: Path) -> None:
    # With no wait at load, the first events come before the markers' targets: they are
    # counted in the process and reported (TT_LOST), so recorded + lost = emitted still holds.
    out = tmp_path / "early"
    setup_trace(daemon, out, subbuf_size="1M", n_subbuf="8")
    env = {**daemon.env(), "TRACETUI_REGISTER_TIMEOUT": "0"}
    r = subprocess.run([built["known"], "2", "5000"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    n = emitted(r.stdout)["capi_all"]
    # The program reported its lost count before it exited (its exit waits for that).
    wait_accounted(daemon, n)
    daemon.client.write("c/start", "0")
    total = parse_stats(daemon.client.read("c/main/stats"))["total"]
    assert total.recorded + total.discarded == n, (total.recorded, total.discarded)


def test_early_events_of_a_program_done_before_its_targets_are_reported(
    daemon, built, tmp_path: Path
) -> None:
    # Every event is emitted before the daemon answers (it is stopped meanwhile), so all are
    # early; the program's own destructor unregisters its markers before the library's exit
    # flush runs, and that used to throw the count away: recorded 0, lost 0.
    out = tmp_path / "done-early"
    setup_trace(daemon, out, subbuf_size="1M", n_subbuf="8")
    env = {**daemon.env(), "TRACETUI_REGISTER_TIMEOUT": "0"}
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        proc = subprocess.Popen([built["known"], "2", "5000"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(0.5)  # the emits take milliseconds; the exit flush waits up to 3 s
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    n = emitted(stdout)["capi_all"]
    total = wait_accounted(daemon, n)
    assert (total.recorded, total.discarded) == (0, n)
