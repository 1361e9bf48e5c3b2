"""Recording for real: a traced process, the daemon's consumer, CTF on disk, babeltrace2, live.

Every test runs a real daemon (conftest's ``daemon`` fixture) and separate traced processes
(tests/helpers/emitter.py) that use tracetui.probe exactly as a program would.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tracetui.core.client import rendezvous, spawn
from tracetui.core.trace.packets import Event, Loss
from tracetui.core.trace.reader import TraceDirectory

EMITTER = str(Path(__file__).parents[1] / "helpers" / "emitter.py")
BT2 = shutil.which("babeltrace2")
needs_bt2 = pytest.mark.skipif(BT2 is None, reason="babeltrace2 is not installed")


class Emitter:
    """A traced process running one scenario of tests/helpers/emitter.py."""

    def __init__(self, daemon, scenario: str, *args: str) -> None:  # type: ignore[no-untyped-def]
        self.proc = subprocess.Popen(
            [sys.executable, EMITTER, scenario, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=daemon.env(),
        )

    def expect(self, word: str, timeout: float = 15.0) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith(word):
                return line.strip()
            if not line and self.proc.poll() is not None:
                break
        err = self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else ""
        raise AssertionError(f"emitter did not say {word!r}: {err}")

    def done(self) -> int:
        return int(self.expect("done").split()[1])

    def tell(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError):
                self.tell()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def setup_trace(daemon, name: str, out: Path, **channels: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    c = daemon.client
    c.mkdir(name)
    c.write(f"{name}/output", str(out))
    for chan, settings in channels.items():
        if chan != "main":
            c.mkdir(f"{name}/{chan}")
        for k, v in settings.items():
            c.write(f"{name}/{chan}/{k}", v)


def bt2_events(path: Path) -> tuple[list[tuple[str, dict[str, str]]], str]:
    """babeltrace2's view: [(name, {field: text})] and its stderr (discard warnings)."""
    assert BT2 is not None
    r = subprocess.run([BT2, str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    events = []
    for line in r.stdout.splitlines():
        m = re.match(r"^\[[^\]]+\] \([^)]*\) \S+ (\w+): \{ cpu_id = \d+ \}, \{ (.*) \}$", line)
        assert m, line
        fields = dict(kv.split(" = ", 1) for kv in m.group(2).split(", "))
        events.append((m.group(1), fields))
    return events, r.stderr


def test_known_events_with_routing_and_filter(daemon, tmp_path: Path) -> None:
    out = tmp_path / "trace"
    setup_trace(daemon, "known", out, procs={"filter": "proc_*"})
    c = daemon.client
    c.write("known/filter", "0")
    c.write("known/filter", "sched_*")
    c.write("known/filter", "proc_exec")
    c.write("known/start", "1")
    em = Emitter(daemon, "known")
    try:
        em.expect("ready")
        n = em.done()
    finally:
        em.finish()
    assert n == 55
    c.write("known/start", "0")

    trace = TraceDirectory(out)
    items = list(trace)
    assert not [i for i in items if isinstance(i, Loss)]
    events = [i for i in items if isinstance(i, Event)]
    expected = []
    for i in range(50):
        expected.append(
            ("sched_switch", "main", {"prev_pid": i, "next_pid": i + 1, "comm": f"task{i}"})
        )
        if i % 10 == 0:
            expected.append(("proc_exec", "procs", {"pid": 1000 + i, "path": f"/bin/prog{i}"}))
    assert [(e.name, e.channel, e.fields) for e in events] == expected
    assert all(a.ts_ns <= b.ts_ns for a, b in itertools.pairwise(events))
    # The markers table names every marker, filtered ones included.
    assert {m.name for m in trace.markers.values()} >= {"sched_switch", "proc_exec", "irq_entry"}

    if BT2 is not None:
        bt, err = bt2_events(out)
        assert "discarded" not in err
        assert [(n, f) for n, f in bt] == [
            (name, {k: (f'"{v}"' if isinstance(v, str) else str(v)) for k, v in fields.items()})
            for name, _, fields in expected
        ]


@needs_bt2
def test_overloaded_discard_channel_counts_every_loss(daemon, tmp_path: Path) -> None:
    out = tmp_path / "trace"
    setup_trace(daemon, "load", out, main={"subbuf_size": "4K", "n_subbuf": "2", "global": "1"})
    daemon.client.write("load/start", "1")
    em = Emitter(daemon, "flood", "50000")
    try:
        em.expect("ready")
        emitted = em.done()
    finally:
        em.finish()
    daemon.client.write("load/start", "0")

    items = list(TraceDirectory(out))
    recorded = sum(isinstance(i, Event) for i in items)
    lost = sum(i.lost for i in items if isinstance(i, Loss) and i.unit == "events")
    assert lost > 0
    assert recorded + lost == emitted

    bt, err = bt2_events(out)
    bt_lost = sum(int(n) for n in re.findall(r"Tracer discarded (\d+) events?", err))
    assert len(bt) == recorded
    assert bt_lost == lost

    stats = daemon.client.read("load/main/stats").splitlines()[-1]
    assert f"recorded={recorded}" in stats and f"discarded={lost}" in stats


def test_flight_snapshot_holds_newest_while_tracing_goes_on(daemon, tmp_path: Path) -> None:
    out = tmp_path / "trace"
    setup_trace(
        daemon, "fl", out, main={"subbuf_size": "4K", "n_subbuf": "4", "global": "1", "flight": "1"}
    )
    c = daemon.client
    c.write("fl/start", "1")
    em = Emitter(daemon, "flood", "20000")
    try:
        em.expect("ready")
        emitted = em.done()
        c.write("fl/snapshot", "1")
        assert c.read("fl/start") == "1"  # still tracing
        events = [i for i in TraceDirectory(out) if isinstance(i, Event)]
        seqs = [e.fields["seq"] for e in events]
        assert seqs[-1] == emitted - 1  # the newest event is there
        assert seqs == list(range(seqs[0], emitted))  # contiguous, oldest first
        assert len(seqs) < emitted  # the oldest were overwritten
        assert c.read("fl/snapshot") == "1"
    finally:
        em.finish()
    c.write("fl/start", "0")


def test_marker_registered_after_start_is_in_metadata(daemon, tmp_path: Path) -> None:
    out = tmp_path / "trace"
    setup_trace(daemon, "late", out)
    daemon.client.write("late/start", "1")
    em = Emitter(daemon, "late")
    try:
        em.expect("ready")
        before = (out / "metadata").read_text()
        assert "early_one" in before and "late_one" not in before
        em.tell()
        em.expect("ready")
        em.done()
    finally:
        em.finish()
    daemon.client.write("late/start", "0")
    assert "late_one" in (out / "metadata").read_text()
    names = [(e.name, e.fields) for e in TraceDirectory(out) if isinstance(e, Event)]
    assert names == [
        ("early_one", {"x": 1}),
        ("late_one", {"y": 2, "name": "late"}),
        ("early_one", {"x": 3}),
    ]
    if BT2 is not None:
        assert [n for n, _ in bt2_events(out)[0]] == ["early_one", "late_one", "early_one"]


def test_threads_and_a_forked_child_record(daemon, tmp_path: Path) -> None:
    out = tmp_path / "trace"
    setup_trace(daemon, "fork", out)
    daemon.client.write("fork/start", "1")
    em = Emitter(daemon, "fork", "200")
    try:
        em.expect("ready")
        child_line = em.expect("child").split()
        assert child_line[2] == "0", "the child never got its own targets"
        em.done()
        parent = em.proc.pid
        child = int(child_line[1])
    finally:
        em.finish()
    daemon.client.write("fork/start", "0")
    events = [e for e in TraceDirectory(out) if isinstance(e, Event)]
    by_writer: dict[tuple[int, int], list[int]] = {}
    for e in events:
        f = e.fields
        by_writer.setdefault((f["pid"], f["thread"]), []).append(f["step"])
    assert sorted(by_writer) == sorted((p, t) for p in (parent, child) for t in (0, 1))
    for steps in by_writer.values():
        assert steps == list(range(200))


def test_traced_process_killed_mid_run(daemon, tmp_path: Path) -> None:
    out = tmp_path / "trace"
    setup_trace(daemon, "kill", out)
    daemon.client.write("kill/start", "1")
    em = Emitter(daemon, "forever", "0")
    em.expect("ready")
    time.sleep(0.2)
    em.proc.send_signal(signal.SIGKILL)
    em.proc.wait(5)
    daemon.client.write("kill/start", "0")
    items = list(TraceDirectory(out))
    events = [e for e in items if isinstance(e, Event)]
    assert events, "what the process recorded before dying is in the trace"
    seqs = [e.fields["seq"] for e in events]
    assert all(a < b for a, b in itertools.pairwise(seqs))
    # A flood at full speed loses events to full buffers: the gaps are reported as losses.
    if seqs[-1] + 1 > len(seqs):
        assert any(isinstance(i, Loss) for i in items)
    # The daemon forgets the dead process (pid check within a few seconds).
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        if em.proc.pid not in json.loads(daemon.client.read("recording"))["probe_pids"]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the daemon still counts the dead process")


def test_markers_survive_a_daemon_restart(daemon, tmp_path: Path) -> None:
    em = Emitter(daemon, "forever", "2000")
    try:
        # No trace yet: the marker registers but stays disabled.
        deadline = time.monotonic() + 10
        while "load_tick" not in daemon.client.read("markers"):
            assert time.monotonic() < deadline, "marker never registered"
            time.sleep(0.05)
        daemon.client.close()
        spawn.stop_daemon(daemon.proc)
        daemon.proc = spawn.spawn_daemon(daemon.runtime_dir)
        from tracetui.core.client import Client

        daemon.client = Client(str(daemon.runtime_dir))
        out = tmp_path / "after"
        setup_trace(daemon, "again", out)
        daemon.client.write("again/start", "1")
        deadline = time.monotonic() + 10
        while "recorded=0 " in daemon.client.read("again/main/stats").splitlines()[-1]:
            assert time.monotonic() < deadline, "the marker did not come back after the restart"
            time.sleep(0.1)
        daemon.client.write("again/start", "0")
        assert any(isinstance(e, Event) and e.name == "load_tick" for e in TraceDirectory(out))
    finally:
        em.proc.kill()
        em.proc.wait()


def test_watch_shows_events_within_250ms(daemon, tmp_path: Path) -> None:
    setup_trace(daemon, "live", tmp_path / "trace")
    daemon.client.write("live/start", "1")
    watch = subprocess.Popen(
        [sys.executable, "-m", "tracetui", "watch", "live/main", "--json", "--count", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=daemon.env(),
    )
    em = Emitter(daemon, "forever", "5")  # one event every 200 ms: a slow channel
    try:
        em.expect("ready")
        assert watch.stdout is not None
        delays = []
        for _ in range(3):
            line = watch.stdout.readline()
            assert line, watch.stderr.read() if watch.stderr else ""
            ev = json.loads(line)
            delays.append(time.monotonic_ns() - ev["ts_ns"])
            assert ev["name"] == "load_tick" and ev["channel"] == "main"
        assert watch.wait(5) == 0
        # Seen within 250 ms of being recorded (periodic flush + consumer tick + transit).
        assert max(delays) < 250_000_000, delays
    finally:
        em.proc.kill()
        em.proc.wait()
        if watch.poll() is None:
            watch.kill()
    daemon.client.write("live/start", "0")


def test_slow_live_subscriber_loses_batches_counted_and_never_slows_tracing(
    daemon, tmp_path: Path
) -> None:
    from tracetui.core.client.live import LiveBatch, LiveWatch

    # The buffer holds the whole flood: any loss would be the subscriber's doing.
    setup_trace(
        daemon,
        "slow",
        tmp_path / "trace",
        main={"subbuf_size": "64K", "n_subbuf": "128", "global": "1"},
    )
    daemon.client.write("slow/start", "1")
    seen: list[LiveBatch] = []

    def slow(batch: LiveBatch) -> None:
        seen.append(batch)
        time.sleep(0.05)  # a terminal far slower than the trace

    lw = LiveWatch("slow/main", slow, daemon.runtime_dir, rcvbuf=64 * 1024).start()
    em = Emitter(daemon, "flood", "200000")
    try:
        em.expect("ready")
        em.done()
        # The daemon keeps answering at once while it feeds a stuck subscriber.
        t0 = time.monotonic()
        daemon.client.read("slow/main/stats")
        assert time.monotonic() - t0 < 0.5
        deadline = time.monotonic() + 10
        while lw.dropped == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lw.dropped > 0, "the subscriber must be told what it lost"
        time.sleep(0.3)
        assert seen and seen[-1].dropped_batches > 0
    finally:
        lw.close()
        em.finish()
    daemon.client.write("slow/start", "0")
    # The trace itself lost nothing to the slow subscriber: every event reached disk.
    stats = daemon.client.read("slow/main/stats").splitlines()[-1]
    assert " discarded=0 " in stats, stats
    assert sum(isinstance(e, Event) for e in TraceDirectory(tmp_path / "trace")) == 200000


def test_live_view_of_a_flight_channel(daemon, tmp_path: Path) -> None:
    from tracetui.core.client.live import LiveBatch, LiveWatch

    setup_trace(daemon, "fw", tmp_path / "trace", main={"flight": "1", "global": "1"})
    daemon.client.write("fw/start", "1")
    seen: list[LiveBatch] = []
    lw = LiveWatch("fw/main", seen.append, daemon.runtime_dir).start()
    em = Emitter(daemon, "forever", "200")
    try:
        em.expect("ready")
        deadline = time.monotonic() + 5
        while sum(len(b.events) for b in seen) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        lw.close()
        em.proc.kill()
        em.proc.wait()
    daemon.client.write("fw/start", "0")
    seqs = [e.fields["seq"] for b in seen for e in b.events]
    assert len(seqs) >= 20, "a flight channel feeds its live views too"
    assert seqs == sorted(set(seqs)), "each packet is sent once, in order"


def test_output_that_cannot_be_written_is_reported_not_hidden(daemon, tmp_path: Path) -> None:
    out = tmp_path / "trace"
    setup_trace(daemon, "full", out, main={"global": "1"})
    daemon.client.write("full/start", "1")
    # The disk is full for this stream: every write of it fails with ENOSPC.
    (out / "main_0").symlink_to("/dev/full")
    em = Emitter(daemon, "flood", "2000")
    try:
        em.expect("ready")
        em.done()
    finally:
        em.finish()
    daemon.client.write("full/start", "0")  # the daemon keeps serving
    status = json.loads(daemon.client.read("recording"))
    assert status["write_errors"]["full"] >= 1
    assert status["last_write_error"]["full"].startswith(f"cannot write to {out}: ")
    assert f"trace 'full': cannot write to {out}: No space left on device" in daemon.log()


def test_watch_of_missing_channel_is_one_sentence(daemon) -> None:
    r = daemon.cli("watch", "nope/main")
    assert r.returncode == 1
    assert r.stderr.strip() == "tracetui watch: there is no trace 'nope'"


def test_probe_without_daemon_records_nothing_and_carries_on(tmp_path: Path) -> None:
    env = {**os.environ, rendezvous.ENV: str(tmp_path / "nobody")}
    code = (
        "from tracetui import probe\n"
        "m = probe.marker('x_y', 'a %d s %s')\n"
        "for i in range(1000): m(i, 'z')\n"
        "print('ok', m.enabled)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok False"
    assert r.stderr == ""
