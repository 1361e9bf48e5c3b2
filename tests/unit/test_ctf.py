"""The CTF writer against babeltrace2: every trace tracetui writes, babeltrace2 reads
with the same events, fields, timestamps and loss counts as tracetui's own reader.

Packets come from real ring buffers (tracetui.core.buffers.Channel in shared
memory), drained with get_packet/put_packet as the daemon's consumer does, and
/usr/bin/babeltrace2 runs for real.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.tracefiles import TraceBuilder

from tracetui.core import ring
from tracetui.core.model.clock import TraceClock
from tracetui.core.model.formats import parse_format
from tracetui.core.model.markers import Marker
from tracetui.core.model.packet import PACKET_HEADER
from tracetui.core.trace.metadata import (
    METADATA,
    TraceFormatError,
    parse_metadata,
    render_event,
    render_metadata,
    stream_file_name,
)
from tracetui.core.trace.packets import Event, Loss
from tracetui.core.trace.reader import TraceDirectory
from tracetui.core.trace.writer import OutputError, TraceWriter

BT2 = shutil.which("babeltrace2") or "/usr/bin/babeltrace2"
needs_bt2 = pytest.mark.skipif(
    not os.path.exists(BT2), reason="babeltrace2 is not installed (.ci/run installs it)"
)

SWITCH = Marker.make(0, "sched_switch", "prev_pid %d next_pid %d comm %s")
ALL = Marker.make(
    1,
    "test_all",
    "d %d u %u ld %ld lu %lu lld %lld llu %llu x %x p %p c %c f %f s %s",
)
LATE = Marker.make(7, "late_marker", "string %s event %u")  # TSDL keywords as names
EMPTY = Marker.make(3, "empty_event", "")


@pytest.fixture
def rec(tmp_path: Path) -> Iterator[TraceBuilder]:
    r = TraceBuilder(tmp_path / "trace", [SWITCH, ALL, EMPTY])
    yield r
    r.close()


# -- babeltrace2 output ------------------------------------------------------------

_LINE_RE = re.compile(r"^\[(\d+)\] \(\S+\) \S+ (\w+): \{ cpu_id = (\d+) \}, \{ ?(.*?) ?\}$")
_FIELD_RE = re.compile(r'(\w+) = ("(?:[^"\\]|\\.)*"|[^,]+)(?:, |$)')
_ESC = {"n": "\n", "t": "\t", "r": "\r", "e": "\x1b", "\\": "\\", '"': '"', "v": "\v", "f": "\f"}
_LOSS_RE = re.compile(
    r"Tracer (discarded (\d+)|may have discarded) (events?|packets?) between .*? "
    r'within stream "([^"]+)"'
)


def _bt2_value(text: str) -> Any:
    if text.startswith('"'):
        return re.sub(r"\\(.)", lambda m: _ESC.get(m.group(1), m.group(1)), text[1:-1])
    if text.startswith("0x"):
        return int(text, 16)
    try:
        return int(text)
    except ValueError:
        return float(text)


def babeltrace2(path: Path, *opts: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(events as (cycles, cpu, name, {field: value}), losses as (n|None, unit, stream))."""
    out = subprocess.run(
        [BT2, "--clock-cycles", *opts, str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    events = []
    for line in out.stdout.splitlines():
        m = _LINE_RE.match(line)
        assert m, f"unexpected babeltrace2 line: {line!r}"
        fields = {k: _bt2_value(v) for k, v in _FIELD_RE.findall(m.group(4))}
        events.append((int(m.group(1)), int(m.group(3)), m.group(2), fields))
    losses = [
        (int(m[2]) if m[2] else None, m[3].rstrip("s"), os.path.basename(m[4]))
        for m in _LOSS_RE.finditer(out.stderr)
    ]
    return events, losses


def ours(path: Path) -> tuple[list[tuple[Any, ...]], list[Loss]]:
    events, losses = [], []
    for e in TraceDirectory(path):
        if isinstance(e, Event):
            events.append((e.tsc, e.cpu, e.name, e.fields))
        else:
            losses.append(e)
    return events, losses


def same_fields(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """babeltrace2 prints doubles with %g: compare those to 6 digits."""
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, float) or isinstance(y, float):
            if float(f"{float(x):g}") != float(y) and not (x != x and y != y):
                return False
        elif x != y:
            return False
    return True


def assert_same_events(bt: list[tuple[Any, ...]], mine: list[tuple[Any, ...]]) -> None:
    assert len(bt) == len(mine)
    # Both are in time order; within one tick the order is either's choice.
    assert [e[0] for e in bt] == [e[0] for e in mine]
    key = lambda e: (e[0], e[1], e[2], sorted(map(str, e[3].items())))  # noqa: E731
    for b, m in zip(sorted(bt, key=key), sorted(mine, key=key), strict=True):
        assert b[:3] == m[:3]
        assert same_fields(m[3], b[3]), (b, m)


# -- tests ----------------------------------------------------------------------------


@needs_bt2
def test_babeltrace2_reads_what_the_reader_reads(rec: TraceBuilder) -> None:
    rec.channel("main", nbuf=2)
    rec.channel("io", is_global=True)
    expected = []
    for i in range(400):
        rec.emit("main", SWITCH, i, -i, f"proc{i}", buffer=i % 2)
        expected.append(
            ("main", i % 2, "sched_switch", {"prev_pid": i, "next_pid": -i, "comm": f"proc{i}"})
        )
        if i % 7 == 0:
            vals = (
                -i,
                i,
                -(2**40),
                2**63 + i,
                -5,
                2**64 - 1,
                0xBEEF,
                0xFFFF0000 + i,
                "Q",
                i / 3,
                "é",
            )
            rec.emit("io", ALL, *vals)
            expected.append(("io", 0, "test_all", dict(zip(ALL.format.names, vals, strict=True))))
        if i == 200:
            rec.emit("main", EMPTY, buffer=1)
            expected.append(("main", 1, "empty_event", {}))
        if i % 100 == 0:
            rec.drain()  # a consumer that keeps up: several packets per stream
    rec.finish()
    trace = TraceDirectory(rec.path)
    assert {(s.channel, s.cpu) for s in trace.streams} == {("main", 0), ("main", 1), ("io", 0)}
    got = [(e.channel, e.cpu, e.name, e.fields) for e in trace if isinstance(e, Event)]
    assert got == expected  # one thread emitted them in this order
    bt, bt_losses = babeltrace2(rec.path)
    mine, losses = ours(rec.path)
    assert_same_events(bt, mine)
    assert bt_losses == [] and losses == []


@needs_bt2
def test_wall_clock_matches_babeltrace2_to_the_nanosecond(rec: TraceBuilder) -> None:
    rec.channel("main", nbuf=1)
    for i in range(50):
        rec.emit("main", SWITCH, i, i, "x")
    rec.finish()
    out = subprocess.run(
        [BT2, "--clock-seconds", str(rec.path)], capture_output=True, text=True, check=True
    )
    bt_ns = [int(s.replace(".", "")) for s in re.findall(r"^\[(\d+\.\d{9})\]", out.stdout, re.M)]
    events = [e for e in TraceDirectory(rec.path) if isinstance(e, Event)]
    assert [e.wall_ns for e in events] == bt_ns
    # The wall clock and the monotonic clock both follow the calibration.
    cal = rec.cal
    for e in events:
        assert abs(e.wall_ns - TraceClock.from_calibration(cal).wall_ns(e.tsc)) < 2_000
        assert abs(e.ts_ns - TraceClock.from_calibration(cal).mono_ns(e.tsc)) < 2_000


@needs_bt2
def test_marker_registered_after_start_is_appended(rec: TraceBuilder) -> None:
    rec.channel("main", nbuf=1)
    rec.emit("main", SWITCH, 1, 2, "before")
    rec.drain()  # nothing to drain yet: the packet is still open
    rec.channels["main"].flush()
    rec.drain()
    size_before = (rec.path / METADATA).stat().st_size
    rec.emit("main", LATE, "after", 9)  # TraceBuilder.emit declares it first
    rec.finish()
    text = (rec.path / METADATA).read_text()
    assert len(text) > size_before and text.count("event {") == 4
    assert text.rstrip().endswith(render_event(LATE).rstrip())
    bt, _ = babeltrace2(rec.path)
    assert [(e[2], e[3]) for e in bt] == [
        ("sched_switch", {"prev_pid": 1, "next_pid": 2, "comm": "before"}),
        ("late_marker", {"string": "after", "event": 9}),
    ]
    assert TraceDirectory(rec.path).markers[7] == LATE


@needs_bt2
def test_discarded_events_counted_alike(rec: TraceBuilder) -> None:
    ch = rec.channel("main", nbuf=2, n_subbuf=2)
    emitted = [0, 0]
    # No consumer for a while: both sub-buffers fill, later records are dropped.
    for round_ in range(3):
        for i in range(1500):
            b = i % 2
            rec.emit("main", SWITCH, i, round_, "overload", buffer=b)
            emitted[b] += 1
        rec.drain()
    for ch_ in rec.channels.values():
        ch_.flush()
    rec.drain()
    # The buffer's own counters agree: emitted = recorded + discarded.
    for b in range(2):
        st = ch.stats(b)
        assert st.recorded + st.discarded == emitted[b] and st.discarded > 0
    rec.close()
    bt, bt_losses = babeltrace2(rec.path)
    mine, losses = ours(rec.path)
    assert_same_events(bt, mine)
    for b in range(2):
        read = sum(1 for e in mine if e[1] == b)
        lost = sum(x.lost for x in losses if x.cpu == b and x.unit == "events")
        assert lost > 0
        assert read + lost == emitted[b]
        bt_lost = sum(n for n, unit, s in bt_losses if unit == "event" and s == f"main_{b}")
        assert bt_lost == lost
    assert not [x for x in losses if x.unit == "packets"]


@needs_bt2
def test_flight_snapshots_report_overwritten_packets_alike(rec: TraceBuilder) -> None:
    ch = rec.channel("flight", nbuf=1, n_subbuf=4, flight=True)
    n = 0

    def snapshot() -> None:
        ch.flush()
        data = ch.snapshot(0)
        for off in range(0, len(data), ch.subbuf_size):
            rec.writer.write_packet("flight", 0, data[off : off + ch.subbuf_size])

    for _ in range(2):
        for _ in range(2000):  # about 15 packets: most are overwritten
            rec.emit("flight", SWITCH, n, 0, "fl")
            n += 1
        snapshot()
    snapshot()  # nothing new: every packet was written already
    rec.close()
    bt, bt_losses = babeltrace2(rec.path)
    mine, losses = ours(rec.path)
    assert_same_events(bt, mine)
    # The newest events are there, in order, without duplicates.
    pids = [e[3]["prev_pid"] for e in mine]
    assert pids == sorted(set(pids)) and pids[-1] == n - 1
    gaps = [x.lost for x in losses if x.unit == "packets"]
    assert gaps and gaps == [c for c, unit, _ in bt_losses if unit == "packet"]


def test_metadata_roundtrip_keeps_every_marker_exactly() -> None:
    clock = TraceClock(
        freq=2_600_000_123, offset_s=1_700_000_000, offset=12345, tsc0=99, mono_ns0=7
    )
    markers = [SWITCH, ALL, LATE, EMPTY, Marker.make(9, "ld_vs_lld", "a %ld b %lld c %lu d %llu")]
    u = uuid.uuid4().bytes
    text = render_metadata(u, clock, markers, hostname="box", trace_name="t")
    meta = parse_metadata(text)
    assert meta.uuid == u and meta.clock == clock
    assert meta.markers == {m.id: m for m in markers}
    assert meta.env["hostname"] == "box" and meta.env["tracer_name"] == "tracetui"
    # A block being appended right now (cut short) is ignored, not an error.
    cut = text + render_event(Marker.make(10, "half", "a %d"))[:-8]
    assert set(parse_metadata(cut).markers) == {m.id for m in markers}


def test_clock_places_tick_zero_on_the_epoch() -> None:
    class Cal:
        freq_hz = 2_000_000_000.4
        tsc0 = 6_000_000_000  # 3 s after tick 0
        mono_ns0 = 50_000_000_000
        real_ns0 = 1_700_000_000_250_000_000

    c = TraceClock.from_calibration(Cal())
    assert c.freq == 2_000_000_000
    assert c.wall_ns(Cal.tsc0) == Cal.real_ns0
    assert c.mono_ns(Cal.tsc0 + 2_000_000_000) == Cal.mono_ns0 + 1_000_000_000
    assert 0 <= c.offset < c.freq


def test_writer_resumes_its_own_trace_and_refuses_others(tmp_path: Path) -> None:
    path = tmp_path / "t"
    u = uuid.uuid4().bytes
    cal = ring.calibrate(0.005)
    TraceWriter(path, uuid=u, calibration=cal, markers=[SWITCH]).close()
    with TraceWriter(path, uuid=u, calibration=cal, markers=[SWITCH, LATE]) as w:
        assert set(w.markers) == {0, 7}
    assert (path / METADATA).read_text().count("event {") == 2  # LATE appended once
    assert set(parse_metadata((path / METADATA).read_text()).markers) == {0, 7}
    with pytest.raises(OutputError, match="another trace") as err:
        TraceWriter(path, uuid=uuid.uuid4().bytes, calibration=cal)
    assert err.value.errno == 17
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(OutputError, match="not empty"):
        TraceWriter(tmp_path / "junk", uuid=u, calibration=cal)
    with (
        pytest.raises(ValueError, match="already 'sched_switch'"),
        TraceWriter(path, uuid=u, calibration=cal) as w,
    ):
        w.add_marker(Marker.make(0, "other", "a %d"))


def test_writer_skips_packets_already_written_and_resumes_sequence(rec: TraceBuilder) -> None:
    ch = rec.channel("main", nbuf=1)
    rec.emit("main", SWITCH, 1, 1, "a")
    ch.flush()
    packet = bytes(ch.snapshot(0))
    assert rec.writer.write_packet("main", 0, packet) is True
    assert rec.writer.write_packet("main", 0, packet) is False
    rec.close()
    # A writer reopened on the same trace knows what each stream holds.
    w = TraceWriter(rec.path, uuid=rec.uuid, calibration=rec.cal)
    assert w.write_packet("main", 0, packet) is False
    w.close()
    assert (rec.path / "main_0").stat().st_size == len(packet)


def test_writer_rejects_what_is_not_a_packet_of_this_trace(rec: TraceBuilder) -> None:
    ch = rec.channel("main", nbuf=1)
    rec.emit("main", SWITCH, 1, 1, "a")
    ch.flush()
    packet = bytearray(ch.snapshot(0))
    with pytest.raises(ValueError, match="not a packet"):
        rec.writer.write_packet("main", 0, packet[:-1])
    other = bytearray(packet)
    other[4:20] = bytes(16)
    with pytest.raises(ValueError, match="another trace"):
        rec.writer.write_packet("main", 0, other)
    with pytest.raises(ValueError, match="channel name"):
        rec.writer.write_packet("../x", 0, packet)
    assert stream_file_name("io.disk-2", 3) == "io.disk-2_3"


def test_packets_are_stored_exactly_as_the_buffer_made_them(rec: TraceBuilder) -> None:
    ch = rec.channel("main", nbuf=1)
    rec.emit("main", SWITCH, 5, 6, "raw")
    ch.flush()
    p = ch.get_packet(0)
    assert p is not None
    raw = bytes(p)
    rec.writer.write_packet("main", 0, p)
    ch.put_packet(0)
    assert (rec.path / "main_0").read_bytes() == raw
    h = PACKET_HEADER.unpack_from(raw)
    assert h[1] == rec.uuid and h[6] == ch.subbuf_size * 8


def test_metadata_errors_are_one_sentence() -> None:
    for text, words in [
        ("", "not CTF 1.8"),
        ("/* CTF 1.8 */\nenv { x = 1; };", "no trace block"),
        ("/* CTF 1.8 */\ntrace { major = 1; byte_order = le; uuid = \"nope\"; };", "uuid"),
        (render_metadata(bytes(16), TraceClock(1, 0, 0, 0, 0))
         + render_event(SWITCH).replace("tt_s _comm", "bogus_t _comm"), "cannot read"),
    ]:  # fmt: skip
        with pytest.raises(TraceFormatError) as err:
            parse_metadata(text, "X/metadata")
        assert words in str(err.value) and "\n" not in str(err.value)


def test_formats_in_metadata_match_the_probe_encoding() -> None:
    # What the probe encodes is what the metadata declares: sizes agree.
    for m in (SWITCH, ALL, LATE):
        declared = parse_metadata(
            render_metadata(bytes(16), TraceClock(1, 0, 0, 0, 0), [m])
        ).markers[m.id]
        assert declared.format is parse_format(m.format.text)
