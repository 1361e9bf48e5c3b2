"""`tracetui export`: Perfetto and Chrome JSON of real traces, parsed back and compared exactly.

Fixture traces are written through real ring buffers and the real TraceWriter
(helpers/tracefiles.py); one is recorded by the real daemon from a traced process that
overloads its channel, so the export carries losses.  The .pftrace is parsed with the
``perfetto`` package's protos, the JSON with ``json``.
"""

from __future__ import annotations

import collections
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.tracefiles import TraceBuilder

from tracetui.core.model.markers import Marker
from tracetui.core.pytrace import EVENTS as PY_EVENTS
from tracetui.core.trace.export import export_chrome_json, export_perfetto
from tracetui.core.trace.packets import Event, Loss
from tracetui.core.trace.traces import open_trace

pb = pytest.importorskip("perfetto.protos.perfetto.trace.perfetto_trace_pb2")

EMITTER = str(Path(__file__).parents[1] / "helpers" / "emitter.py")
SCHED = Marker.make(0, "sched_switch", "prev_pid %d next_pid %d comm %s")
WORK = Marker.make(1, "work", "vtid %d vpid %d load %d ratio %f")
PY = {name: Marker.make(10 + i, name, fmt) for i, (name, fmt) in enumerate(PY_EVENTS.items())}
PID = 4321
F1, F2 = PID << 32 | 1, PID << 32 | 2


def build(path: Path) -> None:
    """Two CPUs of sched_switch, thread events, and nested function calls on two threads."""
    b = TraceBuilder(path, [SCHED, WORK, *PY.values()])
    b.channel("main", nbuf=2)
    b.emit("main", PY["py_func"], F1, 1, "app.outer", "app.py", buffer=0)
    b.emit("main", PY["py_func"], F2, 5, "app.inner", "app.py", buffer=0)
    for i in range(300):
        b.emit("main", SCHED, i, i + 1, f"task{i % 7}", buffer=i & 1)
        b.emit("main", WORK, 100 + i % 3, 99, i * 2, i / 4, buffer=(i >> 1) & 1)
        tid = 7 + (i & 1)
        b.emit("main", PY["py_call"], tid, F1, buffer=i & 1)
        b.emit("main", PY["py_call"], tid, F2, buffer=i & 1)
        b.emit("main", PY["py_return"], tid, F2, buffer=i & 1)
        if i % 50:  # every 50th outer call is left open: the export must close it
            b.emit("main", PY["py_raise"], tid, F1, "ValueError", buffer=i & 1)
        if i % 40 == 0:
            b.drain()
    b.finish()


@pytest.fixture(scope="module")
def fixture_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "trace"
    build(path)
    return path


def source_items(path: Path) -> list[Any]:
    return list(open_trace(path))


def parse_pftrace(data: bytes) -> list[Any]:
    t = pb.Trace()
    t.ParseFromString(data)
    return list(t.packet)


def perfetto_view(data: bytes) -> dict[str, Any]:
    """Resolve interned names and tracks: instants/slices/counters as plain tuples."""
    names: dict[int, str] = {}
    args: dict[int, str] = {}
    tracks: dict[int, Any] = {}
    instants, begins, ends, counters = [], [], [], []
    for p in parse_pftrace(data):
        if p.HasField("track_descriptor"):
            tracks[p.track_descriptor.uuid] = p.track_descriptor
        if p.HasField("interned_data"):
            for n in p.interned_data.event_names:
                names[n.iid] = n.name
            for n in p.interned_data.debug_annotation_names:
                args[n.iid] = n.name
        if not p.HasField("track_event"):
            continue
        te = p.track_event
        assert te.track_uuid in tracks  # its descriptor came first
        fields = {}
        for a in te.debug_annotations:
            kind = a.WhichOneof("value")
            fields[args[a.name_iid]] = getattr(a, kind)
        name = names.get(te.name_iid)
        rec = (p.timestamp, name, te.track_uuid, fields)
        if te.type == pb.TrackEvent.TYPE_INSTANT:
            instants.append(rec)
        elif te.type == pb.TrackEvent.TYPE_SLICE_BEGIN:
            begins.append(rec)
        elif te.type == pb.TrackEvent.TYPE_SLICE_END:
            ends.append(rec)
        elif te.type == pb.TrackEvent.TYPE_COUNTER:
            value = te.counter_value if te.HasField("counter_value") else te.double_counter_value
            counters.append((p.timestamp, tracks[te.track_uuid].name, value))
    return {
        "instants": instants,
        "begins": begins,
        "ends": ends,
        "counters": counters,
        "tracks": tracks,
    }


def expected_instants(items: list[Any]) -> list[tuple[int, str]]:
    """(ts_ns, name) of every item that the exports show as an instant."""
    out = []
    for it in items:
        if isinstance(it, Loss):
            out.append((it.ts_ns, f"lost {it.lost} {it.unit}"))
        elif it.name not in ("py_call", "py_return", "py_raise", "py_c_call", "py_c_return"):
            out.append((it.ts_ns, it.name))
    return out


def check_balanced(begins: list[Any], ends: list[Any], key: Any) -> None:
    """Per track, every end closes the latest open begin, and none stays open."""
    stacks: dict[Any, int] = collections.defaultdict(int)
    events = sorted([(r[0], 0, key(r)) for r in begins] + [(r[0], 1, key(r)) for r in ends])
    for _, is_end, k in events:
        stacks[k] += -1 if is_end else 1
        assert stacks[k] >= 0
    assert all(v == 0 for v in stacks.values())


def test_perfetto_export_matches_the_trace(fixture_trace: Path) -> None:
    items = source_items(fixture_trace)
    buf = io.BytesIO()
    n = export_perfetto(open_trace(fixture_trace), buf, counters=["work.load", "ratio"])
    v = perfetto_view(buf.getvalue())
    assert n == len(v["instants"]) + len(v["begins"]) + len(v["ends"]) + len(v["counters"])

    assert sorted((ts, name) for ts, name, _, _ in v["instants"]) == sorted(
        expected_instants(items)
    )
    by_name = collections.Counter(name for _, name, _, _ in v["instants"])
    assert by_name["sched_switch"] == 300 and by_name["work"] == 300 and by_name["py_func"] == 2

    # sched_switch has no thread field: per-CPU tracks; work has vtid/vpid: thread tracks.
    tracks = v["tracks"]
    for _, name, uuid, fields in v["instants"]:
        td = tracks[uuid]
        if name == "sched_switch":
            assert td.name.startswith("CPU ")
            assert fields["comm"].startswith("task")
        elif name == "work":
            assert td.thread.tid == fields["vtid"] and td.thread.pid == 99
            assert isinstance(fields["ratio"], float)

    # Function calls: 600 calls of each function, slices named and balanced per thread.
    assert collections.Counter(name for _, name, _, _ in v["begins"]) == {
        "app.outer": 300,
        "app.inner": 300,
    }
    assert len(v["ends"]) == 600
    check_balanced(v["begins"], v["ends"], key=lambda r: r[2])
    calls = [it for it in items if isinstance(it, Event) and it.name == "py_call"]
    assert sorted(r[0] for r in v["begins"]) == sorted(e.ts_ns for e in calls)
    for _, _, uuid, _ in v["begins"]:
        assert tracks[uuid].thread.pid == PID  # from the function id

    works = [it for it in items if isinstance(it, Event) and it.name == "work"]
    assert [(ts, value) for ts, tn, value in v["counters"] if tn == "work.load"] == [
        (e.ts_ns, e.fields["load"]) for e in works
    ]
    assert [(ts, value) for ts, tn, value in v["counters"] if tn == "ratio"] == [
        (e.ts_ns, e.fields["ratio"]) for e in works
    ]


def test_chrome_json_export_matches_the_trace(fixture_trace: Path) -> None:
    items = source_items(fixture_trace)
    buf = io.StringIO()
    n = export_chrome_json(open_trace(fixture_trace), buf, counters=["sched_switch.next_pid"])
    doc = json.loads(buf.getvalue())
    assert doc["displayTimeUnit"] == "ns"
    evs = [e for e in doc["traceEvents"] if e["ph"] != "M"]
    assert len(evs) == n

    def ns(e: dict[str, Any]) -> int:
        return round(e["ts"] * 1000)

    instants = [e for e in evs if e["ph"] == "i"]
    assert sorted((ns(e), e["name"]) for e in instants) == sorted(expected_instants(items))
    scheds = [it for it in items if isinstance(it, Event) and it.name == "sched_switch"]
    assert [e["args"] for e in instants if e["name"] == "sched_switch"] == [
        s.fields for s in scheds
    ]
    for e in instants:
        if e["name"] == "work":
            assert (e["pid"], e["tid"]) == (99, e["args"]["vtid"])
    b = [e for e in evs if e["ph"] == "B"]
    en = [e for e in evs if e["ph"] == "E"]
    assert len(b) == len(en) == 600
    for tid in (7, 8):
        check_balanced(
            [(ns(e), e) for e in b if e["tid"] == tid],
            [(ns(e), e) for e in en if e["tid"] == tid],
            key=lambda r: r[1]["tid"],
        )
    assert all(e["pid"] == PID for e in b + en)
    cs = [e for e in evs if e["ph"] == "C"]
    assert [(ns(e), e["args"]["sched_switch.next_pid"]) for e in cs] == [
        (s.ts_ns, s.fields["next_pid"]) for s in scheds
    ]


def tracetui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracetui", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_formats_from_suffix_and_flag(fixture_trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.pftrace"
    r = tracetui("export", str(fixture_trace), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert parse_pftrace(out.read_bytes())
    out2 = tmp_path / "t.json"
    r = tracetui("export", str(fixture_trace), "-o", str(out2), "--counter", "load")
    assert r.returncode == 0, r.stderr
    assert any(e["ph"] == "C" for e in json.loads(out2.read_text())["traceEvents"])
    out3 = tmp_path / "t.trace"
    r = tracetui("export", "--format", "chrome-json", str(fixture_trace), "-o", str(out3))
    assert r.returncode == 0, r.stderr
    json.loads(out3.read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.pftrace", "t.trace"]


@pytest.mark.parametrize(
    "case",
    ["bad-dir", "bad-format", "bad-counter", "no-suffix", "unwritable"],
)
def test_cli_errors_are_one_line_and_leave_nothing(
    case: str, fixture_trace: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "x.pftrace"
    out.parent.mkdir()
    args = [str(fixture_trace), "-o", str(out)]
    if case == "bad-dir":
        args[0] = str(tmp_path)  # no metadata
    elif case == "bad-format":
        args += ["--format", "svg"]
    elif case == "bad-counter":
        args += ["--counter", "sched_switch.nope"]
    elif case == "no-suffix":
        out = out.with_suffix(".bin")
        args[2] = str(out)
    else:
        args[2] = str(tmp_path / "missing" / "x.pftrace")
    r = tracetui("export", *args)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracetui export: "), r.stderr
    assert "Traceback" not in r.stderr
    assert list(out.parent.iterdir()) == []


def test_daemon_recording_with_losses_exports(daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "trace"
    c = daemon.client
    c.mkdir("ex")
    c.write("ex/output", str(out))
    for k, v in {"subbuf_size": "4K", "n_subbuf": "2", "global": "1"}.items():
        c.write(f"ex/main/{k}", v)
    c.write("ex/start", "1")
    proc = subprocess.Popen(
        [sys.executable, EMITTER, "flood", "30000"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=daemon.env(),
    )
    try:
        stdout, stderr = proc.communicate("\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "done 30000" in stdout, stderr
    c.write("ex/start", "0")

    items = source_items(out)
    losses = [it for it in items if isinstance(it, Loss)]
    assert losses, "the overloaded channel reported no loss"
    buf = io.BytesIO()
    export_perfetto(open_trace(out), buf)
    v = perfetto_view(buf.getvalue())
    assert sorted((ts, name) for ts, name, _, _ in v["instants"]) == sorted(
        expected_instants(items)
    )
    assert sum(name.startswith("lost ") for _, name, _, _ in v["instants"]) == len(losses)
    jbuf = io.StringIO()
    export_chrome_json(open_trace(out), jbuf)
    evs = json.loads(jbuf.getvalue())["traceEvents"]
    assert sorted((round(e["ts"] * 1000), e["name"]) for e in evs if e["ph"] == "i") == sorted(
        expected_instants(items)
    )
