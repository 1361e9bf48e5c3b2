"""The ring-buffer backend on real shared memory, with real processes and threads."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import stat
import struct
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracetui.core import ring
from tracetui.core.model.clock import TraceClock
from tracetui.core.model.geometry import parse_size
from tracetui.core.model.packet import EVENT_HEADER_SIZE, MAGIC, PACKET_HEADER_SIZE
from tracetui.core.ring import Channel, InvalidConfig

HDR = struct.Struct("<I16sIQQQQQQI")
EV = struct.Struct("<HQ")
REC = struct.Struct("<QQQ")  # writer id, sequence, checksum
CTX = mp.get_context("fork")


def shm_name(tag: str) -> str:
    return f"/tracetui-test-{os.getpid()}-{tag}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def chan_factory() -> Iterator:
    made: list[Channel] = []

    def make(tag: str = "c", size: int = 4096, n: int = 4, **kw: object) -> Channel:
        ch = Channel.create(shm_name(tag), size, n, **kw)  # type: ignore[arg-type]
        made.append(ch)
        return ch

    yield make
    for ch in made:
        ch.unlink()
        ch.close()


def parse_packet(pkt: bytes, payload_len: int) -> tuple[tuple, list[tuple[int, int, bytes]]]:
    """Test-side parser for fixed-length payloads: (header fields, [(id, ts, payload)])."""
    h = HDR.unpack_from(pkt, 0)
    assert h[0] == MAGIC
    content = h[5] // 8
    assert h[6] // 8 == len(pkt)
    recs = []
    off = PACKET_HEADER_SIZE
    while off < content:
        eid, ts = EV.unpack_from(pkt, off)
        off += EV.size
        recs.append((eid, ts, bytes(pkt[off : off + payload_len])))
        off += payload_len
    assert off == content, "records must end exactly at content_size"
    return h, recs


def drain(ch: Channel, payload_len: int) -> list[tuple[int, list]]:
    """Consume every complete packet of every buffer: [(buffer, records)]."""
    out = []
    for b in range(ch.nbuf):
        while (pkt := ch.get_packet(b)) is not None:
            _, recs = parse_packet(bytes(pkt), payload_len)
            ch.put_packet(b)
            out.append((b, recs))
    return out


def checksum(wid: int, seq: int) -> int:
    return (wid * 0x9E3779B97F4A7C15 ^ seq * 0xC2B2AE3D27D4EB4F) & 0xFFFFFFFFFFFFFFFF


# -- configuration ------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "n", "words"),
    [
        (3000, 4, "power of two"),
        (1024, 4, "between 4 KiB"),
        (1 << 27, 4, "between 4 KiB and 64 MiB"),
        (4096, 3, "sub-buffer count 3"),
        (4096, 1, "between 2 and 4096"),
        (4096, 8192, "between 2 and 4096"),
    ],
)
def test_bad_sizes_are_refused_with_a_sentence(size: int, n: int, words: str) -> None:
    with pytest.raises(InvalidConfig) as exc:
        Channel.create(shm_name("bad"), size, n)
    assert words in str(exc.value)
    assert exc.value.errno == 22


def test_parse_size() -> None:
    assert parse_size("256K") == 262144
    assert parse_size("1M") == 1 << 20
    assert parse_size("4096") == 4096
    assert parse_size("2MiB") == 2 << 20
    with pytest.raises(ValueError, match="is not a size"):
        parse_size("lots")


def test_bad_name_is_refused() -> None:
    with pytest.raises(InvalidConfig, match="shared-memory name"):
        Channel.create("no-slash", 4096, 2)


def test_memory_is_exactly_as_configured_and_private(chan_factory) -> None:
    ch = chan_factory(size=8192, n=4, is_global=False, nbuf=2)
    path = "/dev/shm" + ch.name
    st_ = os.stat(path)
    assert stat.S_IMODE(st_.st_mode) == 0o600
    assert ch.nbuf == 2
    data = 2 * 4 * 8192
    # Data is exact; control is one page of channel header plus one cache
    # line per buffer and per sub-buffer, rounded to a page.
    assert st_.st_size == ch.map_size
    assert data < ch.map_size <= data + 3 * 4096
    before = ch.map_size
    for i in range(20000):
        ch.write(1, b"x" * 20, buffer=i % 2)
    assert os.stat(path).st_size == before


def test_name_taken_is_eexist(chan_factory) -> None:
    ch = chan_factory()
    with pytest.raises(ring.RingError, match="already exists"):
        Channel.create(ch.name, 4096, 2)


def test_open_missing_is_enoent() -> None:
    with pytest.raises(ring.RingError, match="no channel buffers named"):
        Channel.open(shm_name("missing"))


# -- modes --------------------------------------------------------------------


def test_discard_mode_drops_newest_and_counts(chan_factory) -> None:
    ch = chan_factory(size=4096, n=4, is_global=True)
    payload_len = 24
    emitted = 2000
    ok = sum(ch.write(5, REC.pack(1, i, checksum(1, i))) for i in range(emitted))
    ch.flush()
    got = drain(ch, payload_len)
    seqs = [REC.unpack(p)[1] for _, recs in got for _, _, p in recs]
    s = ch.stats()
    assert len(seqs) == ok == s.recorded == s.consumed
    # Discard keeps the oldest: what was read is a prefix of what was emitted.
    assert seqs == list(range(ok))
    assert emitted == len(seqs) + s.discarded + s.overwritten + s.too_big
    assert s.discarded == emitted - ok > 0
    assert s.overwritten == 0


def test_flight_mode_keeps_newest(chan_factory) -> None:
    ch = chan_factory(size=4096, n=4, is_global=True, flight=True)
    emitted = 3000
    for i in range(emitted):
        assert ch.write(5, REC.pack(1, i, checksum(1, i)))
    ch.flush()
    snap = ch.snapshot(0)
    assert len(snap) % 4096 == 0 and len(snap) > 0
    seqs = []
    for off in range(0, len(snap), 4096):
        _, recs = parse_packet(snap[off : off + 4096], 24)
        seqs += [REC.unpack(p)[1] for _, _, p in recs]
    # The newest records, oldest first, contiguous, ending with the last one.
    assert seqs[-1] == emitted - 1
    assert seqs == list(range(seqs[0], emitted))
    # Snapshot does not consume: a consumer still sees the same data.
    got = drain(ch, 24)
    read = sum(len(r) for _, r in got)
    s = ch.stats()
    assert read == len(seqs)
    assert emitted == read + s.discarded + s.overwritten + s.too_big
    assert s.overwritten > 0


def test_snapshot_from_a_sequence_number_leaves_older_packets_out(chan_factory) -> None:
    ch = chan_factory(size=4096, n=4, is_global=True, flight=True)
    for i in range(3000):
        ch.write(5, REC.pack(1, i, 0))
    ch.flush()
    snap = ch.snapshot(0)
    seqs = [HDR.unpack_from(snap, off)[7] for off in range(0, len(snap), 4096)]
    assert len(seqs) == 4 and seqs == list(range(seqs[0], seqs[0] + 4))
    part = ch.snapshot(0, first_seq=seqs[2])
    assert part == snap[2 * 4096 :]
    assert ch.snapshot(0, first_seq=seqs[-1] + 1) == b""


def test_flight_toggles_while_writing(chan_factory) -> None:
    ch = chan_factory(size=4096, n=4, is_global=True)
    for i in range(1000):
        ch.write(5, REC.pack(1, i, 0))
    discarded_before = ch.stats().discarded
    assert discarded_before > 0
    ch.flight = True
    assert ch.flight
    for i in range(1000, 2000):
        assert ch.write(5, REC.pack(1, i, 0))
    assert ch.stats().discarded == discarded_before
    ch.flight = False
    for i in range(2000, 3000):
        ch.write(5, REC.pack(1, i, 0))
    s = ch.stats()
    assert s.discarded > discarded_before
    ch.flush()
    read = sum(len(r) for _, r in drain(ch, 24))
    assert read + s.discarded + s.overwritten + s.too_big == 3000


def test_too_big_is_refused_and_counted(chan_factory) -> None:
    ch = chan_factory(size=4096, n=2, is_global=True)
    assert not ch.write(1, b"x" * 4096)
    assert ch.write(1, b"x" * (4096 - 76 - 10))  # the largest record that fits
    s = ch.stats()
    assert s.too_big == 1 and s.recorded == 1


def test_flush_closes_partial_packet_with_end_timestamp(chan_factory) -> None:
    ch = chan_factory(size=4096, n=2, is_global=True)
    assert ch.get_packet(0) is None
    assert ch.flush() == 0  # nothing open
    t0 = ring.clock_now()
    ch.write(9, REC.pack(1, 1, 1))
    assert ch.get_packet(0) is None  # not complete yet
    assert ch.flush() == 1
    pkt = ch.get_packet(0)
    assert pkt is not None
    h, recs = parse_packet(bytes(pkt), 24)
    ch.put_packet(0)
    assert [(r[0], REC.unpack(r[2])) for r in recs] == [(9, (1, 1, 1))]
    ts_begin, ts_end = h[3], h[4]
    assert t0 <= ts_begin == recs[0][1] <= ts_end <= ring.clock_now()
    assert h[7] == 0  # sequence number
    assert h[8] == 0  # events discarded
    assert h[9] == 0  # cpu id of a global buffer


def test_losses_after_the_last_packet_reach_an_empty_packet(chan_factory) -> None:
    ch = chan_factory(size=4096, n=2, is_global=True)
    per_packet = (4096 - PACKET_HEADER_SIZE) // EVENT_HEADER_SIZE
    for _ in range(2 * per_packet):  # both sub-buffers exactly full: none is open
        assert ch.write(1, b"")
    for _ in range(5):
        assert not ch.write(1, b"")
    assert ch.flush() == 0  # no free sub-buffer yet: nothing can carry the count
    got = drain(ch, 0)
    assert [len(r) for _, r in got] == [per_packet, per_packet]
    assert ch.flush() == 1
    pkt = ch.get_packet(0)
    assert pkt is not None
    h, recs = parse_packet(bytes(pkt), 0)
    ch.put_packet(0)
    assert recs == [] and h[7] == 2  # an empty packet, the third of the buffer
    assert h[8] == 5  # events_discarded: the five records lost after the last packet
    assert h[3] <= h[4]
    assert ch.flush() == 0  # reported once


def test_get_twice_without_put_is_ebusy(chan_factory) -> None:
    ch = chan_factory(size=4096, n=2, is_global=True)
    ch.write(1, b"abc")
    ch.flush()
    ch.write(1, b"abc")
    ch.flush()
    assert ch.get_packet(0) is not None
    with pytest.raises(ring.RingError, match="already held"):
        ch.get_packet(0)
    ch.put_packet(0)
    with pytest.raises(ring.RingError, match="is held"):
        ch.put_packet(0)


def test_flight_writer_never_overwrites_a_held_packet(chan_factory) -> None:
    ch = chan_factory(size=4096, n=2, is_global=True, flight=True)
    for i in range(200):
        ch.write(1, REC.pack(1, i, checksum(1, i)))
    held = ch.get_packet(0)
    assert held is not None
    copy = bytes(held)
    for i in range(200, 2000):
        ch.write(1, REC.pack(1, i, checksum(1, i)))
    assert bytes(held) == copy
    ch.put_packet(0)
    assert ch.stats().discarded > 0  # writers dropped rather than tear it


def test_timestamps_convert_to_monotonic_and_wall_time(chan_factory) -> None:
    cal = ring.calibrate()
    assert 1e8 < cal.freq_hz < 1e11
    ch = chan_factory(size=4096, n=2, is_global=True)
    mono = time.monotonic_ns()
    wall = time.time_ns()
    ch.write(1, b"x")
    ch.flush()
    pkt = ch.get_packet(0)
    assert pkt is not None
    _, recs = parse_packet(bytes(pkt), 1)
    ch.put_packet(0)
    ts = recs[0][1]
    assert abs(TraceClock.from_calibration(cal).mono_ns(ts) - mono) < 5_000_000
    assert abs(TraceClock.from_calibration(cal).wall_ns(ts) - wall) < 5_000_000


# -- other processes ------------------------------------------------------------


def _child_writes(name: str, wid: int, count: int, q: mp.Queue) -> None:
    ch = Channel.open(name)
    ok = sum(ch.write(2, REC.pack(wid, i, checksum(wid, i))) for i in range(count))
    ch.close()
    q.put((wid, count, ok))


def test_another_process_maps_by_name(chan_factory) -> None:
    ch = chan_factory(size=4096, n=8, is_global=True)
    q = CTX.Queue()
    p = CTX.Process(target=_child_writes, args=(ch.name, 7, 50, q))
    p.start()
    p.join(10)
    assert q.get(timeout=5) == (7, 50, 50)
    ch.flush()
    got = [REC.unpack(r[2]) for _, recs in drain(ch, 24) for r in recs]
    assert got == [(7, i, checksum(7, i)) for i in range(50)]


def _stress_writer(name: str, wid0: int, threads: int, count: int, q: mp.Queue) -> None:
    ch = Channel.open(name)
    results = []

    def run(wid: int) -> None:
        ok = 0
        for i in range(count):
            ok += ch.write(3, REC.pack(wid, i, checksum(wid, i)))
        results.append((wid, count, ok))

    ts = [threading.Thread(target=run, args=(wid0 + t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    ch.close()
    q.put(results)


@pytest.mark.parametrize("is_global", [False, True], ids=["percpu", "global"])
@pytest.mark.parametrize("flight", [False, True], ids=["discard", "flight"])
def test_multiprocess_stress_is_exact_intact_and_ordered(
    chan_factory, is_global: bool, flight: bool
) -> None:
    """Processes x threads write while a consumer drains; every count adds up."""
    ch = chan_factory("stress", size=8192, n=4, is_global=is_global, flight=flight)
    procs, threads, count = 3, 3, 15000
    q = CTX.Queue()
    ps = [
        CTX.Process(target=_stress_writer, args=(ch.name, p * 100, threads, count, q))
        for p in range(procs)
    ]
    for p in ps:
        p.start()
    read: list[tuple[int, list]] = []
    results: list[tuple[int, int, int]] = []
    deadline = time.monotonic() + 60
    while len(results) < procs * threads and time.monotonic() < deadline:
        read += drain(ch, 24)
        while not q.empty():
            results += q.get()
        time.sleep(0.001)
    for p in ps:
        p.join(10)
    assert len(results) == procs * threads, "writers did not finish"
    ch.flush()
    read += drain(ch, 24)

    emitted = sum(r[1] for r in results)
    committed = sum(r[2] for r in results)
    s = ch.stats()
    n_read = sum(len(r) for _, r in read)
    assert s.recorded == committed
    assert emitted == n_read + s.discarded + s.overwritten + s.too_big
    assert s.too_big == 0
    assert n_read == s.consumed
    print(f"stress: emitted={emitted} read={n_read} {s}")
    if not flight:
        assert s.overwritten == 0

    last_ts: dict[int, int] = {}
    last_seq: dict[tuple[int, int], int] = {}
    for b, recs in read:
        for eid, ts, payload in recs:
            wid, seq, check = REC.unpack(payload)
            assert eid == 3
            assert check == checksum(wid, seq), "torn or corrupted record"
            assert ts >= last_ts.get(b, 0), "timestamps go backwards in a buffer"
            last_ts[b] = ts
            # A thread's records stay in program order within a buffer.
            assert seq > last_seq.get((b, wid), -1)
            last_seq[(b, wid)] = seq


def _dead_writer(name: str, ready: mp.Event) -> None:
    ch = Channel.open(name)
    ch.write(4, REC.pack(99, 0, checksum(99, 0)))
    ch.reserve(4, REC.pack(99, 1, checksum(99, 1)))  # never committed
    ready.set()
    time.sleep(60)


def test_writer_killed_between_reserve_and_commit_does_not_wedge(chan_factory) -> None:
    ch = chan_factory(size=4096, n=2, is_global=True)
    ready = CTX.Event()
    p = CTX.Process(target=_dead_writer, args=(ch.name, ready))
    p.start()
    assert ready.wait(10)
    os.kill(p.pid, signal.SIGKILL)
    p.join(5)
    # Others keep writing; the dead sub-buffer blocks the consumer until
    # check_stuck sees it idle for the timeout.
    for i in range(400):
        ch.write(4, REC.pack(1, i, checksum(1, i)))
    ch.flush()
    assert ch.get_packet(0) is None
    assert ch.check_stuck(timeout_s=0.05) == 0  # first sighting starts the clock
    time.sleep(0.1)
    assert ch.check_stuck(timeout_s=0.05) == 1
    s = ch.stats()
    assert s.stuck_packets == 1 and s.lost_dead >= 1
    # The buffer moves again: new records are read intact.
    got = drain(ch, 24)
    for i in range(400, 500):
        ch.write(4, REC.pack(1, i, checksum(1, i)))
    ch.flush()
    got += drain(ch, 24)
    recs = [REC.unpack(r[2]) for _, rs in got for r in rs]
    assert all(c == checksum(w, q) for w, q, c in recs)
    assert (1, 499, checksum(1, 499)) in recs
    assert (99, 1, checksum(99, 1)) not in recs
    s = ch.stats()
    # Exactness with the dead writer's committed record counted as lost.
    # Emitted: the dead writer's committed record and 500 attempts here.
    assert len(recs) + s.discarded + s.overwritten + s.too_big == 1 + 500


# -- round trip ------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 0xFFFE), st.binary(min_size=0, max_size=300)),
        min_size=1,
        max_size=60,
    )
)
def test_round_trip_write_read(records: list[tuple[int, bytes]]) -> None:
    ch = Channel.create(shm_name("hyp"), 4096, 16, is_global=True)
    try:
        for eid, payload in records:
            # Length-prefix so the test parser can find record ends.
            assert ch.write(eid, struct.pack("<H", len(payload)) + payload)
        ch.flush()
        got = []
        while (pkt := ch.get_packet(0)) is not None:
            data = bytes(pkt)
            ch.put_packet(0)
            content = HDR.unpack_from(data)[5] // 8
            off = PACKET_HEADER_SIZE
            while off < content:
                eid, _ = EV.unpack_from(data, off)
                (n,) = struct.unpack_from("<H", data, off + EV.size)
                start = off + EV.size + 2
                got.append((eid, data[start : start + n]))
                off = start + n
        assert got == records
    finally:
        ch.unlink()
        ch.close()
