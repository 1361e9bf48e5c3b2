"""Golden bytes and round trips of the recording messages (docs/PROTOCOL.md, "Recording")."""

from __future__ import annotations

from tracetui.core.wire import protocol as P
from tracetui.core.wire import recording as R


def one(data: bytes) -> tuple[P.Header, memoryview]:
    msgs = list(P.iter_messages(data))
    assert len(msgs) == 1
    return msgs[0]


def test_marker_request_golden_bytes() -> None:
    data = R.encode_marker(3, "sched_switch", "prev_pid %d")
    # nlmsghdr: len 56, type 0x21, flags REQUEST, seq 3, pid 0 | ttmsg v1 |
    # NAME (20) "sched_switch\0" padded | FORMAT (21) "prev_pid %d\0"
    assert data.hex() == (
        "38000000" "2100" "0100" "03000000" "00000000"
        "01000000"
        "1100" "1400" "73636865645f737769746368" "00" "000000"
        "1000" "1500" "707265765f706964202564" "00"
    )  # fmt: skip
    hdr, payload = one(data)
    attrs = P.Attrs.parse(payload)
    assert (hdr.type, hdr.seq) == (R.TT_MARKER, 3)
    assert attrs.str(R.TT_A_NAME) == "sched_switch"
    assert attrs.str(R.TT_A_FORMAT) == "prev_pid %d"


def test_marker_reply_golden_bytes() -> None:
    data = R.encode_marker_reply(3, 5, "sched_switch", port=77)
    assert data.hex() == (
        "30000000" "2100" "0000" "03000000" "4d000000"
        "01000000"
        "0800" "1600" "05000000"
        "1100" "1400" "73636865645f737769746368" "00" "000000"
    )  # fmt: skip
    _, payload = one(data)
    assert P.Attrs.parse(payload).u32(R.TT_A_ID) == 5


def test_targets_golden_bytes_and_round_trip() -> None:
    data = R.encode_targets({5: ["/tt-a"]}, port=77, gen=3)
    assert data.hex() == (
        "34000000" "2200" "0000" "00000000" "4d000000"
        "01000000"
        "0800" "1f00" "03000000"  # GEN 3
        "1800" "1700"  # TARGET, nested
        "0800" "0100" "05000000"  # ID 5
        "0a00" "0200" "2f74742d6100" "0000"  # SHM "/tt-a"
    )  # fmt: skip
    table = {1: ["/a", "/b"], 7: [], 9: ["/c"]}
    _, payload = one(R.encode_targets(table))
    assert R.decode_targets(P.Attrs.parse(payload)) == table


def test_targets_ack_and_lost_golden_bytes() -> None:
    assert R.encode_targets_ack(9, 3).hex() == (
        "1c000000" "2700" "0100" "09000000" "00000000"
        "01000000"
        "0800" "1f00" "03000000"  # GEN 3
    )  # fmt: skip
    data = R.encode_lost(4, 5, 1000)
    assert data.hex() == (
        "28000000" "2800" "0100" "04000000" "00000000"
        "01000000"
        "0800" "1600" "05000000"  # ID 5
        "0c00" "2000" "e803000000000000"  # COUNT 1000
    )  # fmt: skip
    attrs = P.Attrs.parse(one(data)[1])
    assert (attrs.u32(R.TT_A_ID), R.attr_u64(attrs, R.TT_A_COUNT)) == (5, 1000)


def test_live_packet_is_cut_into_parts_and_joins_back() -> None:
    records = bytes(range(256)) * 500  # 128,000 bytes: three parts
    msgs = R.encode_live_packet("t/main", 1, 42, 7, records)
    assert len(msgs) == 3
    parts = [R.decode_live_part(P.Attrs.parse(one(m)[1])) for m in msgs]
    assert [(p.part, p.parts, p.seq, p.cpu, p.dropped, p.path) for p in parts] == [
        (i, 3, 42, 1, 7, "t/main") for i in range(3)
    ]
    assert all(len(m) < 65_536 for m in msgs)
    assert b"".join(p.data for p in parts) == records


def test_a_drop_notice_carries_the_count_and_no_packet() -> None:
    part = R.decode_live_part(P.Attrs.parse(one(R.encode_live_drops("t/main", 12))[1]))
    assert (part.path, part.parts, part.dropped, part.data) == ("t/main", 0, 12, b"")
