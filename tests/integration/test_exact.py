"""Exact accounting on real processes and a real daemon: every event recorded or counted.

Covers issue 8: short-lived programs (registration waits for the targets), start/stop and
filter changes while several processes emit (a change is in force when its reply returns),
overload (recorded + lost = emitted, for the reader, babeltrace2 and the stats), stopped
writers (waited for, never reclaimed) and dead ones (reclaimed and counted).
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tracetui.core.model.stats import parse_stats
from tracetui.core.trace.packets import Event, Loss
from tracetui.core.trace.reader import TraceDirectory

HELPER = str(Path(__file__).parents[1] / "helpers" / "exact_emitter.py")
BT2 = shutil.which("babeltrace2")
needs_bt2 = pytest.mark.skipif(BT2 is None, reason="babeltrace2 is not installed")


def spawn(daemon, *args: str) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, HELPER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=daemon.env(),
    )


def expect(proc: subprocess.Popen[str], word: str, timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(word):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
    raise AssertionError(f"helper did not say {word!r}: {err}")


def kill_all(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGCONT)
                p.kill()
        p.wait(10)


def setup(daemon, name: str, out: Path, **settings: str) -> None:  # type: ignore[no-untyped-def]
    c = daemon.client
    c.mkdir(name)
    c.write(f"{name}/output", str(out))
    for k, v in settings.items():
        c.write(f"{name}/main/{k}", v)


def account(out: Path) -> tuple[list[Event], int]:
    """Events and events lost, as tracetui's reader sees the trace."""
    items = list(TraceDirectory(out))
    events = [i for i in items if isinstance(i, Event)]
    lost = sum(i.lost for i in items if isinstance(i, Loss) and i.unit == "events")
    assert not [i for i in items if isinstance(i, Loss) and i.unit != "events"]
    return events, lost


def bt2_account(out: Path) -> tuple[int, int]:
    """Events and events lost, as babeltrace2 sees the trace."""
    assert BT2 is not None
    r = subprocess.run([BT2, str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lost = sum(int(n) for n in re.findall(r"Tracer discarded (\d+) events?", r.stderr))
    return len(r.stdout.splitlines()), lost


def dump_account(daemon, out: Path) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Events and events lost, as `tracetui dump` prints them."""
    r = daemon.cli("dump", str(out))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    lost = [int(ln.split(" LOST ")[1].split()[0]) for ln in lines if " LOST " in ln]
    return len(lines) - len(lost), sum(lost)


def total_stats(daemon, path: str):  # type: ignore[no-untyped-def]
    return parse_stats(daemon.client.read(f"{path}/stats"))["total"]


def recording(daemon) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return json.loads(daemon.client.read("recording"))


# ------------------------------------------------------------------------------------------------


@needs_bt2
@pytest.mark.slow
def test_many_short_lived_processes_are_exact_from_their_first_event(
    daemon, tmp_path: Path
) -> None:
    big, small = tmp_path / "big", tmp_path / "small"
    # Two traces record the same bursts: one holds them all, one is small enough that the
    # bursts overflow it (losses happen and must be counted).
    setup(daemon, "big", big, subbuf_size="1M", n_subbuf="8", **{"global": "1"})
    setup(daemon, "small", small, subbuf_size="4K", n_subbuf="4", **{"global": "1"})
    daemon.client.write("big/start", "1")
    daemon.client.write("small/start", "1")
    n, per = 12, 3000
    procs = [spawn(daemon, "burst", str(per)) for _ in range(n)]
    try:
        emitted = sum(int(expect(p, "done").split()[1]) for p in procs)
        for p in procs:
            assert p.wait(30) == 0, p.stderr.read() if p.stderr else ""
    finally:
        kill_all(procs)
    daemon.client.write("big/start", "0")
    daemon.client.write("small/start", "0")
    assert emitted == n * per

    # Every process's every event, from its first one on.
    events, lost = account(big)
    assert lost == 0
    by_pid: dict[int, list[int]] = defaultdict(list)
    for e in events:
        by_pid[e.fields["pid"]].append(e.fields["seq"])
    assert sorted(by_pid) == sorted(p.pid for p in procs)
    for seqs in by_pid.values():
        assert seqs == list(range(per))

    events, lost = account(small)
    assert lost > 0
    assert len(events) + lost == emitted
    st = total_stats(daemon, "small/main")
    assert (st.recorded, st.discarded) == (len(events), lost)
    assert bt2_account(small) == (len(events), lost)


@needs_bt2
def test_two_flooding_processes_overloaded_count_every_loss(daemon, tmp_path: Path) -> None:
    out = tmp_path / "trace"
    stop = tmp_path / "stop"
    setup(daemon, "over", out, subbuf_size="4K", n_subbuf="2")  # per-CPU, tiny: overload
    daemon.client.write("over/start", "1")
    procs = [spawn(daemon, "flood", str(stop)) for _ in range(2)]
    try:
        for p in procs:
            expect(p, "ready")
        time.sleep(1.5)
        stop.touch()
        emitted = sum(int(expect(p, "done").split()[1]) for p in procs)
    finally:
        kill_all(procs)
    daemon.client.write("over/start", "0")
    events, lost = account(out)
    assert lost > 0
    assert len(events) + lost == emitted
    st = total_stats(daemon, "over/main")
    assert (st.recorded, st.discarded, st.lost_dead) == (len(events), lost, 0)
    assert bt2_account(out) == (len(events), lost)
    assert dump_account(daemon, out) == (len(events), lost)


def test_start_stop_and_filter_changes_take_effect_when_their_reply_returns(
    daemon, tmp_path: Path
) -> None:
    out = tmp_path / "trace"
    setup(daemon, "win", out, subbuf_size="256K", n_subbuf="32")
    c = daemon.client
    c.mkdir("win/side")  # routes nothing ("0") until told to take win_a
    c.write("win/side/subbuf_size", "256K")
    c.write("win/side/n_subbuf", "32")
    nproc = 3
    shared = tmp_path / "counters"
    shared.write_bytes(bytes(8 * nproc))
    with open(shared, "r+b") as f:
        mm = mmap.mmap(f.fileno(), 0)

    def counters() -> list[int]:
        return [struct.unpack_from("<q", mm, 8 * i)[0] for i in range(nproc)]

    procs = [spawn(daemon, "window", str(shared), str(i)) for i in range(nproc)]
    try:
        for p in procs:
            expect(p, "ready")
        time.sleep(0.3)
        before_start = counters()
        assert c.write("win/start", "1") == ""
        after_start = counters()
        time.sleep(0.4)
        before_filter = counters()
        assert c.write("win/filter", "!win_b") == ""
        after_filter = counters()
        time.sleep(0.4)
        before_route = counters()
        assert c.write("win/side/filter", "win_a") == ""
        after_route = counters()
        time.sleep(0.4)
        before_stop = counters()
        assert c.write("win/start", "0") == ""
        after_stop = counters()
        time.sleep(0.3)
        assert all(p.poll() is None for p in procs)
    finally:
        kill_all(procs)

    events, lost = account(out)
    assert lost == 0
    got: dict[tuple[str, int], set[int]] = defaultdict(set)
    side: dict[int, set[int]] = defaultdict(set)
    for e in events:
        got[(e.name, e.fields["slot"])].add(e.fields["seq"])
        if e.channel == "side":
            side[e.fields["slot"]].add(e.fields["seq"])
        else:
            assert e.channel == "main"

    for i in range(nproc):
        a, b = got[("win_a", i)], got[("win_b", i)]
        # Emitted before the start write was sent (both calls returned): not in the trace.
        assert not [s for s in a | b if s <= before_start[i]]
        # Begun after a reply returned (seq >= counter + 2) follows the new settings; what
        # returned before a write was sent (seq <= counter) followed the old ones.
        assert set(range(after_start[i] + 2, before_stop[i] + 1)) <= a
        assert set(range(after_start[i] + 2, before_filter[i] + 1)) <= b
        assert not [s for s in b if s >= after_filter[i] + 2]
        assert not [s for s in a if s >= after_stop[i] + 2]
        assert before_stop[i] - after_start[i] > 1000  # the windows were not empty
        # Routing: win_a goes to "side" from the route reply on, to "main" before it.
        assert set(range(after_route[i] + 2, before_stop[i] + 1)) <= side[i]
        assert not [s for s in side[i] if s <= before_route[i]]
        mine = {
            e.fields["seq"]
            for e in events
            if e.channel == "main" and e.name == "win_a" and e.fields["slot"] == i
        }
        assert not [s for s in mine if s >= after_route[i] + 2]
        assert side[i] | mine == a and not side[i] & mine


@needs_bt2
def test_events_before_a_late_registration_are_counted_as_lost(daemon, tmp_path: Path) -> None:
    out = tmp_path / "trace"
    setup(daemon, "late", out, subbuf_size="1M", n_subbuf="4", **{"global": "1"})
    c = daemon.client
    c.write("late/start", "1")
    # The daemon cannot answer (stopped): registration times out and the program goes on.
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        p = subprocess.Popen(
            [sys.executable, HELPER, "early", "500", "300"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**daemon.env(), "TRACETUI_REGISTER_TIMEOUT": "0.3"},
        )
        expect(p, "early")
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    try:
        # Once its targets came, the 500 early events were reported and charged as lost.
        deadline = time.monotonic() + 15
        while total_stats(daemon, "late/main").discarded < 500:
            assert time.monotonic() < deadline, "the early events were never reported"
            time.sleep(0.05)
        assert p.stdin is not None
        p.stdin.write("\n")
        p.stdin.flush()
        assert expect(p, "done") == "done 800"
        assert p.wait(10) == 0
    finally:
        kill_all([p])
    c.write("late/start", "0")
    events, lost = account(out)
    assert [e.fields["seq"] for e in events] == list(range(500, 800))
    assert lost == 500
    assert bt2_account(out) == (300, 500)
    r = daemon.cli("dump", str(out))
    assert r.returncode == 0, r.stderr
    assert [ln.split("LOST ")[1] for ln in r.stdout.splitlines() if " LOST " in ln] == [
        "500 events"
    ]
    assert sum("early_ev" in ln for ln in r.stdout.splitlines()) == 300


def test_a_forked_child_emitting_at_once_is_counted(daemon, tmp_path: Path) -> None:
    out = tmp_path / "trace"
    setup(daemon, "fork", out, subbuf_size="1M", n_subbuf="4", **{"global": "1"})
    daemon.client.write("fork/start", "1")
    p = spawn(daemon, "forkburst", "20000")
    try:
        emitted = int(expect(p, "done").split()[1])
        assert p.wait(30) == 0
    finally:
        kill_all([p])
    daemon.client.write("fork/start", "0")
    events, lost = account(out)
    assert len(events) + lost == emitted == 40000
    parent = [e.fields["seq"] for e in events if e.fields["pid"] == p.pid]
    assert parent == list(range(20000))  # the parent registered before its first event


def test_defining_markers_without_a_daemon_does_not_wait(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    # A port file left by a daemon that is gone: nobody to wait for either.
    dead = subprocess.Popen(["true"])
    dead.wait()
    port = {"port": 1, "pid": dead.pid, "uid": os.getuid(), "protocol": 1}
    (run / "daemon.port").write_text(json.dumps(port))
    os.chmod(run / "daemon.port", 0o600)
    for directory in (tmp_path / "nobody", run):
        env = {**os.environ, "TRACETUI_RUNTIME_DIR": str(directory)}
        env["TRACETUI_REGISTER_TIMEOUT"] = "5"
        r = subprocess.run(
            [sys.executable, HELPER, "markers", "20"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        assert float(r.stdout.split()[1]) < 1.0, r.stdout


def check_flood(events: list[Event], pids: set[int]) -> None:
    """Every record intact: fields consistent, each process's seqs increasing."""
    last: dict[int, int] = {}
    for e in events:
        f = e.fields
        assert f["pid"] in pids and f["x"] == 7 * f["seq"], f
        assert f["seq"] > last.get(f["pid"], -1)
        last[f["pid"]] = f["seq"]


@needs_bt2
@pytest.mark.slow
def test_writers_stopped_mid_flood_are_waited_for_and_nothing_is_torn(
    daemon, tmp_path: Path
) -> None:
    out = tmp_path / "trace"
    stop = tmp_path / "stop"
    setup(daemon, "stp", out, subbuf_size="16K", n_subbuf="4")
    c = daemon.client
    c.write("stp/start", "1")
    procs = [spawn(daemon, "flood", str(stop)) for _ in range(3)]
    try:
        for p in procs:
            expect(p, "ready")
        time.sleep(0.5)
        # Longer than every timeout of the probe (3.5 s), the daemon's acknowledgement wait
        # (1 s) and the old stuck-writer timeout (2 s); then two at once, again.
        for group, pause in (([procs[0]], 5.5), (procs[1:], 2.5), ([procs[0], procs[2]], 2.5)):
            for p in group:
                p.send_signal(signal.SIGSTOP)
            time.sleep(pause)
            assert recording(daemon)["reclaimed"] == 0
            for p in group:
                p.send_signal(signal.SIGCONT)
            time.sleep(0.5)
        stop.touch()
        emitted = sum(int(expect(p, "done").split()[1]) for p in procs)
    finally:
        kill_all(procs)
    assert c.write("stp/start", "0") == ""
    events, lost = account(out)
    assert len(events) + lost == emitted
    check_flood(events, {p.pid for p in procs})
    st = total_stats(daemon, "stp/main")
    assert (st.recorded, st.discarded, st.lost_dead, st.stuck_packets) == (
        len(events),
        lost,
        0,
        0,
    )
    assert {e.fields["pid"] for e in events} == {p.pid for p in procs}
    assert bt2_account(out) == (len(events), lost)


@needs_bt2
@pytest.mark.slow
def test_writer_held_mid_record_is_waited_for_while_stopped_and_reclaimed_once_dead(
    daemon, tmp_path: Path
) -> None:
    out = tmp_path / "trace"
    stop = tmp_path / "stop"
    setup(daemon, "hold", out, subbuf_size="4K", n_subbuf="4", **{"global": "1"})
    c = daemon.client
    c.write("hold/start", "1")
    holder = spawn(daemon, "hold")
    flooder = None
    try:
        expect(holder, "held")
        flooder = spawn(daemon, "flood", str(stop))
        expect(flooder, "ready")
        time.sleep(0.5)
        holder.send_signal(signal.SIGSTOP)
        time.sleep(2.5)
        # The sub-buffer behind the held record cannot complete: the channel filled behind
        # it and the flood's records are counted as discarded, exactly; nothing reclaimed.
        st = total_stats(daemon, "hold/main")
        assert st.discarded > 0 and st.lost_dead == 0 and st.stuck_packets == 0
        assert recording(daemon)["reclaimed"] == 0
        # A write that moves no event waits for nobody, stopped or not.
        t0 = time.monotonic()
        assert c.write("hold/main/flight", "0") == ""
        assert time.monotonic() - t0 < 0.5
        stop.touch()
        emitted = int(expect(flooder, "done").split()[1])
        # Stopping the trace now: the held process cannot acknowledge, and is named.
        r = daemon.cli("write", "hold/start", "0")
        assert r.returncode == 0, r.stderr
        assert f"process {holder.pid} did not acknowledge" in r.stderr
        assert f"process {holder.pid} did not acknowledge" in daemon.log()
        time.sleep(1.0)
        rec = recording(daemon)
        assert rec["lingering"] == ["hold"] and rec["reclaimed"] == 0
        # Killed: now it is dead, its sub-buffer is reclaimed and counted, the trace closes.
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        deadline = time.monotonic() + 10
        while recording(daemon)["lingering"]:
            assert time.monotonic() < deadline, "the dead writer's sub-buffer was not reclaimed"
            time.sleep(0.1)
        assert recording(daemon)["reclaimed"] == 1
    finally:
        kill_all([holder] + ([flooder] if flooder else []))
    st = total_stats(daemon, "hold/main")
    assert st.stuck_packets == 1
    events, lost = account(out)
    # The held record's emit never returned: it was not emitted.  Everything else was.
    assert len(events) + lost == emitted, (st, daemon.log())
    assert (st.recorded - st.lost_dead, st.discarded) == (len(events), lost)
    check_flood(events, {flooder.pid})
    assert bt2_account(out) == (len(events), lost)
