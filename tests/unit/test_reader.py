"""The trace reader and ``tracetui dump``: merging, losses, decoding, errors.

Traces are recorded through real ring buffers (tracetui.core.buffers) and
written by the real TraceWriter; ``tracetui dump`` runs as a process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.tracefiles import TraceBuilder

from tracetui.cli.render import event_json
from tracetui.core.model.clock import TraceClock
from tracetui.core.model.markers import Marker
from tracetui.core.model.packet import PACKET_HEADER_SIZE
from tracetui.core.trace.metadata import METADATA, TraceFormatError
from tracetui.core.trace.packets import Event, EventDecoder, Loss, Stream
from tracetui.core.trace.reader import TraceDirectory
from tracetui.core.trace.traces import open_trace

BT2 = shutil.which("babeltrace2") or "/usr/bin/babeltrace2"

SWITCH = Marker.make(0, "sched_switch", "prev_pid %d next_pid %d comm %s")
TICK = Marker.make(1, "timer_tick", "n %llu mask %x ptr %p c %c f %f")


@pytest.fixture
def rec(tmp_path: Path) -> Iterator[TraceBuilder]:
    r = TraceBuilder(tmp_path / "trace", [SWITCH, TICK])
    yield r
    r.close()


def busy_trace(rec: TraceBuilder, n: int = 3000) -> list[tuple[str, int, int]]:
    """Three streams interleaving finely; returns (channel, cpu, seq) in emit order."""
    rec.channel("main", nbuf=2)
    rec.channel("irq", nbuf=1)
    order = []
    for i in range(n):
        if i % 5 == 4:
            rec.emit("irq", TICK, i, 0xFF, 0xDEAD0000 + i, "t", i * 0.5)
            order.append(("irq", 0, i))
        else:
            b = (i // 3) % 2
            rec.emit("main", SWITCH, i, b, f"task-{i % 13}", buffer=b)
            order.append(("main", b, i))
        if i % 500 == 0:
            rec.drain(flush=True)
    rec.drain(flush=True)
    rec.close()
    return order


def dump(path: Path, *opts: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracetui", "dump", *opts, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        **kw,
    )


# -- merging and decoding -----------------------------------------------------------


def test_streams_merge_in_timestamp_order(rec: TraceBuilder) -> None:
    order = busy_trace(rec)
    trace = TraceDirectory(rec.path)
    assert trace.channels == ["irq", "main"] and len(trace.streams) == 3
    events = list(trace)
    assert all(isinstance(e, Event) for e in events)
    ticks = [e.tsc for e in events]
    assert ticks == sorted(ticks)
    # One thread emitted them: time order is emit order.
    got = [(e.channel, e.cpu, e.values[0]) for e in events if isinstance(e, Event)]
    assert got == order
    # Batches concatenate to the same sequence.
    assert [e.tsc for batch in trace.batches() for e in batch] == ticks


def test_event_fields_and_clocks(rec: TraceBuilder) -> None:
    rec.channel("irq", nbuf=1)
    rec.emit("irq", TICK, 2**64 - 1, 0xABC, 0x7FFF0000, "Z", -0.25)
    rec.drain(flush=True)
    rec.close()
    (e,) = list(TraceDirectory(rec.path))
    assert isinstance(e, Event)
    assert (e.name, e.id, e.channel, e.cpu) == ("timer_tick", 1, "irq", 0)
    assert e.fields == {"n": 2**64 - 1, "mask": 0xABC, "ptr": 0x7FFF0000, "c": "Z", "f": -0.25}
    assert abs(e.ts_ns - TraceClock.from_calibration(rec.cal).mono_ns(e.tsc)) < 2_000
    assert abs(e.wall_ns - TraceClock.from_calibration(rec.cal).wall_ns(e.tsc)) < 2_000
    assert "timer_tick" in repr(e) and "'c': 'Z'" in repr(e)


def test_losses_are_reported_where_they_happened(rec: TraceBuilder) -> None:
    ch = rec.channel("main", nbuf=1, n_subbuf=2)
    emitted = 0
    for rnd in range(4):
        # About 3 sub-buffers' worth (the rest is discarded), then a few
        # records whose packet carries the count of the last discards.
        for i in range(1200 if rnd < 3 else 5):
            rec.emit("main", SWITCH, i, rnd, "x")
            emitted += 1
        rec.drain(flush=True)
    assert ch.stats().discarded > 0
    rec.close()
    items = list(TraceDirectory(rec.path))
    losses = [x for x in items if isinstance(x, Loss)]
    events = [x for x in items if isinstance(x, Event)]
    assert losses and all(x.unit == "events" and x.channel == "main" for x in losses)
    assert len(events) + sum(x.lost for x in losses) == emitted
    # Each loss sits between the events before it and after it, in time too.
    for k, x in enumerate(items):
        if isinstance(x, Loss):
            before = [e for e in items[:k] if isinstance(e, Event)]
            after = [e for e in items[k + 1 :] if isinstance(e, Event)]
            assert before and after
            assert before[-1].values[1] < after[0].values[1]  # a new round began
            assert before[-1].ts_ns <= x.ts_ns <= after[0].ts_ns
    assert "Loss(" in repr(losses[0])


def test_packet_index_and_items_rebuild_each_stream(rec: TraceBuilder) -> None:
    """The explorer's face (core/trace/source.py): packets from headers, then one at a time."""
    ch = rec.channel("main", nbuf=1, n_subbuf=2)
    for rnd in range(4):
        for i in range(1200 if rnd < 3 else 5):
            rec.emit("main", SWITCH, i, rnd, "x")
        rec.drain(flush=True)
    discarded = ch.stats().discarded
    assert discarded > 0
    rec.close()
    trace = open_trace(rec.path)
    (stream,) = trace.streams
    index = trace.packet_index(stream)
    assert [p.index for p in index] == list(range(len(index))) and len(index) > 3
    assert [p.offset for p in index] == sorted(p.offset for p in index)
    assert all(p.begin_ns <= p.end_ns and p.content_size <= p.packet_size for p in index)
    whole = list(trace)
    # Any packet read alone gives what the whole read gives there, losses included; read in a
    # scrambled order, they still concatenate to the stream.
    by_packet = {p.index: trace.packet_items(stream, p) for p in reversed(index)}
    assert [repr(x) for i in range(len(index)) for x in by_packet[i]] == list(map(repr, whole))
    losses = [x for x in whole if isinstance(x, Loss)]
    assert sum(x.lost for x in losses) == discarded == index[-1].events_discarded


@pytest.mark.skipif(not os.path.exists(BT2), reason="babeltrace2 is not installed")
def test_an_empty_packet_carries_the_last_losses(rec: TraceBuilder) -> None:
    """Discards after the last packet reach a trace only in a later packet.

    The backend cannot close an empty sub-buffer yet, so this stands in for
    one: a copy of the last real packet with no records and a larger
    events_discarded, as a flush of an empty sub-buffer would produce.
    Both readers must report those losses.
    """
    rec.channel("main", nbuf=1)
    for i in range(20):
        rec.emit("main", SWITCH, i, 0, "x")
    rec.drain(flush=True)
    rec.close()
    stream = rec.path / "main_0"
    last = bytearray(stream.read_bytes()[-4096:])
    seq = int.from_bytes(last[56:64], "little")
    now = (int.from_bytes(last[32:40], "little") + 1).to_bytes(8, "little")
    last[24:40] = now + now  # opened and closed after the last packet ended
    last[40:48] = (PACKET_HEADER_SIZE * 8).to_bytes(8, "little")  # content: header only
    last[56:64] = (seq + 1).to_bytes(8, "little")
    last[64:72] = (int.from_bytes(last[64:72], "little") + 42).to_bytes(8, "little")
    with stream.open("ab") as f:
        f.write(last)
    items = list(TraceDirectory(rec.path))
    assert isinstance(items[-1], Loss) and items[-1].lost == 42
    assert sum(isinstance(x, Event) for x in items) == 20
    bt = subprocess.run([BT2, str(rec.path)], capture_output=True, text=True, check=True)
    assert "Tracer discarded 42 events" in bt.stderr
    assert bt.stdout.count("\n") == 20
    assert dump(rec.path).stdout.splitlines()[-1].endswith("cpu 0 main LOST 42 events")


def test_decode_all_reads_bare_record_batches(rec: TraceBuilder) -> None:
    ch = rec.channel("main", nbuf=1)
    for i in range(10):
        rec.emit("main", SWITCH, i, -i, f"c{i}")
    ch.flush()
    p = ch.get_packet(0)
    assert p is not None
    raw = bytes(p)
    ch.put_packet(0)
    content = int.from_bytes(raw[40:48], "little") // 8
    stream = Stream("main", 0, "", TraceClock.from_calibration(rec.cal))
    dec = EventDecoder({m.id: m for m in (SWITCH, TICK)}, stream)
    events = dec.decode_all(raw[PACKET_HEADER_SIZE:content])
    assert [e.fields["comm"] for e in events if isinstance(e, Event)] == [
        f"c{i}" for i in range(10)
    ]
    with pytest.raises(TraceFormatError, match="cut short"):
        dec.decode_all(raw[PACKET_HEADER_SIZE : content - 1])
    dec.update({TICK.id: TICK})
    with pytest.raises(TraceFormatError, match=r"event id 0 .* not declared"):
        dec.decode_all(raw[PACKET_HEADER_SIZE:content])


def test_empty_trace_reads_as_nothing(rec: TraceBuilder) -> None:
    rec.close()
    assert list(TraceDirectory(rec.path)) == []
    r = dump(rec.path)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


# -- errors ---------------------------------------------------------------------------


def one_sentence(err: pytest.ExceptionInfo[TraceFormatError]) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg
    return msg


def test_not_a_trace(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError) as err:
        TraceDirectory(tmp_path / "missing")
    assert "does not exist" in one_sentence(err)
    (tmp_path / "file").write_text("x")
    with pytest.raises(TraceFormatError) as err:
        TraceDirectory(tmp_path / "file")
    assert "not a directory" in one_sentence(err)
    with pytest.raises(TraceFormatError) as err:
        TraceDirectory(tmp_path)
    assert "no metadata file" in one_sentence(err)
    (tmp_path / METADATA).write_text("hello")
    with pytest.raises(TraceFormatError) as err:
        TraceDirectory(tmp_path)
    assert "not CTF 1.8" in one_sentence(err)
    (tmp_path / METADATA).write_bytes(b"\x75\x57\x1d\xc1" + bytes(40))
    with pytest.raises(TraceFormatError) as err:
        TraceDirectory(tmp_path)
    assert "packetized" in one_sentence(err)


def test_corrupt_streams(rec: TraceBuilder, tmp_path: Path) -> None:
    busy_trace(rec, 1200)
    good = (rec.path / "main_0").read_bytes()
    assert len(good) >= 2 * 4096

    def broken(data: bytes) -> Path:
        d = tmp_path / f"bad{uuid.uuid4().hex[:6]}"
        shutil.copytree(rec.path, d)
        (d / "main_0").write_bytes(data)
        return d

    cases = [
        (b"\0" * 4 + good[4:], "bad magic"),
        (good[:4] + bytes(16) + good[20:], "uuid is not the trace's"),
        (good[: 4096 + 100], "ends inside the packet"),
        (good[:4096] + good[4096 : 4096 + 40], "ends inside a packet header"),
    ]
    for data, words in cases:
        with pytest.raises(TraceFormatError) as err:
            list(TraceDirectory(broken(data)))
        assert words in one_sentence(err) and "main_0" in str(err.value)
    # A record whose id the metadata does not declare.
    bad = bytearray(good)
    bad[PACKET_HEADER_SIZE : PACKET_HEADER_SIZE + 2] = (999).to_bytes(2, "little")
    with pytest.raises(TraceFormatError) as err:
        list(TraceDirectory(broken(bytes(bad))))
    assert "event id 999" in one_sentence(err)
    # The dump says the same in one line on stderr, exit status 1.
    r = dump(broken(bytes(bad)))
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "event id 999" in r.stderr
    assert "Traceback" not in r.stderr


def test_dump_of_a_non_trace_is_one_sentence(tmp_path: Path) -> None:
    r = dump(tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == f"tracetui dump: {tmp_path} is not a trace: it has no metadata file\n"


# -- tracetui dump ----------------------------------------------------------------------

_DUMP_RE = re.compile(r"^\[(\d\d:\d\d:\d\d\.\d{9})\] cpu (\d+) (\w+) (\w+)(: .*)?$")


def test_dump_text_lines(rec: TraceBuilder) -> None:
    order = busy_trace(rec, 600)
    r = dump(rec.path)
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert len(lines) == len(order)
    parsed = [_DUMP_RE.match(line) for line in lines]
    assert all(parsed), lines[:3]
    assert [(m[3], int(m[2])) for m in parsed if m] == [(c, cpu) for c, cpu, _ in order]
    assert lines[0].endswith('prev_pid=0, next_pid=0, comm="task-0"')
    irq = next(line for line in lines if " timer_tick" in line)
    assert re.search(r': n=4, mask=0xff, ptr=0xdead0004, c="t", f=2\.0$', irq)


@pytest.mark.skipif(not os.path.exists(BT2), reason="babeltrace2 is not installed")
def test_dump_times_are_babeltrace2_times(rec: TraceBuilder) -> None:
    busy_trace(rec, 600)
    env = {**os.environ, "TZ": "UTC"}
    bt = subprocess.run([BT2, str(rec.path)], capture_output=True, text=True, env=env, check=True)
    mine = dump(rec.path, env=env)
    bt_times = re.findall(r"^\[([\d:.]+)\]", bt.stdout, re.M)
    assert re.findall(r"^\[([\d:.]+)\]", mine.stdout, re.M) == bt_times


def test_dump_json(rec: TraceBuilder) -> None:
    rec.channel("main", nbuf=1, n_subbuf=2)
    rec.emit("main", TICK, 1, 2, 3, "\0", float("inf"))
    for i in range(1500):
        rec.emit("main", SWITCH, i, 0, 'q"uote\n')
    rec.drain(flush=True)
    for i in range(5):
        rec.emit("main", SWITCH, i, 1, "after")
    rec.drain(flush=True)
    rec.close()
    r = dump(rec.path, "--json")
    assert r.returncode == 0
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    events = [d for d in docs if "name" in d]
    losses = [d for d in docs if "lost" in d]
    assert all(set(d) == {"ts_ns", "cpu", "channel", "name", "fields"} for d in events)
    assert all(set(d) == {"lost", "channel", "cpu", "ts_ns", "unit"} for d in losses)
    assert losses and losses[0]["unit"] == "events" and losses[0]["channel"] == "main"
    assert events[1]["fields"] == {"prev_pid": 0, "next_pid": 0, "comm": 'q"uote\n'}
    tick = next(d for d in events if d["name"] == "timer_tick")
    assert tick["fields"] == {"n": 1, "mask": 2, "ptr": 3, "c": "", "f": "inf"}
    assert [d["ts_ns"] for d in docs] == sorted(d["ts_ns"] for d in docs)
    # The generated per-class formatters say what the plain encoder says.
    assert docs == [event_json(x) for x in TraceDirectory(rec.path)]


def test_dump_escapes_what_could_drive_a_terminal(rec: TraceBuilder) -> None:
    rec.channel("main", nbuf=1)
    rec.emit("main", SWITCH, 1, 2, "red\x1b[31m\\ \u00e9")
    rec.drain(flush=True)
    rec.close()
    r = dump(rec.path)
    assert "\x1b" not in r.stdout
    assert r.stdout.rstrip("\n").endswith('comm="red\\u001b[31m\\\\ \u00e9"')


def test_dump_into_a_closed_pipe_is_quiet(rec: TraceBuilder) -> None:
    busy_trace(rec, 3000)
    p = subprocess.Popen(
        [sys.executable, "-m", "tracetui", "dump", str(rec.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stderr is not None
    first = p.stdout.readline()
    p.stdout.close()  # like `| head -1`
    err = p.stderr.read()
    assert p.wait(timeout=30) == 0
    assert first.startswith(b"[") and err == b""


def test_dump_text_is_the_one_rendering(rec: TraceBuilder) -> None:
    """The dump's generated fast path writes exactly what cli/render.py renders (watch too)."""
    from tracetui.cli.render import item_line

    rec.channel("main", nbuf=1, n_subbuf=2)
    rec.emit("main", TICK, 1, 0xAB, 3, "x", 0.5)
    for i in range(1500):  # more than the buffer holds: loss rows
        rec.emit("main", SWITCH, i, 0, 'q"uote\x1b')
    rec.drain(flush=True)
    rec.emit("main", TICK, 2, 1, 2, "\0", float("nan"))
    rec.drain(flush=True)
    rec.close()
    r = dump(rec.path)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert any(" LOST " in line for line in lines)
    assert lines == [item_line(x) for x in TraceDirectory(rec.path)]
