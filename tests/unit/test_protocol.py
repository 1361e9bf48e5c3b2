"""The wire format: committed golden bytes, the fast codec against pyroute2's, and bad input.

The hex dumps below are the protocol as documented in docs/PROTOCOL.md (x86-64, little endian).
If one changes, the protocol changed: bump PROTOCOL_VERSION and update the document.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracetui.core.wire import protocol as P
from tracetui.core.wire.protocol import Attrs, Change, Entry, ProtocolError

GOLDEN = {
    # hello request, seq 1: VERSION 1, CLIENT "cli"
    "hello": "24000000100001000100000000000000 01000000 0800040001000000 08000800636c6900",
    # read request, seq 7, PATH "mytrace/main/stats"
    "read": "2c000000140001000700000000000000 01000000"
    " 170001006d7974726163652f6d61696e2f73746174730000",
    # write request asking for an ack, seq 9: PATH "mytrace/start", VALUE "1"
    "write": "30000000150005000900000000000000 01000000"
    " 120001006d7974726163652f7374617274 00 0000 0600020031000000",
    # ls reply, seq 3: main (dir, read-only), start (file, writable)
    "ls_reply": "54000000110000000300000000000000 01000000"
    " 20000300 090001006d61696e000000 00 0500020001000000 0500030000000000"
    " 20000300 0a00010073746172740000 00 0500020000000000 0500030001000000",
    # EBUSY (-16) for the read request above, capped, with its sentence "busy"
    "error": "30000000020000030700000000000000 f0ffffff"
    " 2c000000140001000700000000000000 090001006275737900000000",
    # ack of the write request above
    "ack": "24000000020000010900000000000000 00000000 30000000150005000900000000000000",
    # change notification: OP "write", PATH "mytrace/start", VALUE "1"
    "change": "3c000000180000000000000000000000 01000000 0a0007007772697465000000"
    " 120001006d7974726163652f7374617274 00 0000 0600020031000000",
    # end of a multi-part reply, seq 7
    "done": "14000000030002000700000000000000 00000000",
}


def golden(name: str) -> bytes:
    return bytes.fromhex(GOLDEN[name].replace(" ", ""))


def header(data: bytes) -> tuple[int, int, int, int, int]:
    return struct.unpack_from("=IHHII", data)


def pyroute2_ttmsg(typ: int, flags: int, seq: int, attrs: Sequence[tuple[str, object]]) -> bytes:
    m = P.ttmsg()
    m["header"]["type"] = typ
    m["header"]["flags"] = flags
    m["header"]["sequence_number"] = seq
    m["header"]["pid"] = 0
    m["version"] = P.PROTOCOL_VERSION
    m["attrs"] = list(attrs)
    m.encode()
    return bytes(m.data)


def pyroute2_decode(data: bytes) -> object:
    m = P.ttmsg(data)
    m.decode()
    return m


# ---------------------------------------------------------------------------- golden bytes


def test_fast_codec_writes_the_golden_bytes() -> None:
    assert P.encode_hello(1, "cli") == golden("hello")
    assert P.encode_path_request(P.TT_READ, 7, "mytrace/main/stats") == golden("read")
    assert P.encode_write(9, "mytrace/start", "1") == golden("write")
    ls = P.encode_reply(
        P.TT_LS,
        3,
        [P.entry_attr(Entry("main", "dir", False)), P.entry_attr(Entry("start", "file", True))],
    )
    assert ls == [golden("ls_reply")]
    assert P.encode_error(golden("read")[:16], 16, "busy") == golden("error")
    assert P.encode_error(golden("write")[:16], 0, None) == golden("ack")
    assert P.encode_change(Change("write", "mytrace/start", "1")) == golden("change")
    assert P.encode_done(7) == golden("done")


def test_pyroute2_writes_the_golden_bytes() -> None:
    assert pyroute2_ttmsg(
        P.TT_HELLO, 1, 1, [("TT_A_VERSION", 1), ("TT_A_CLIENT", "cli")]
    ) == golden("hello")
    assert pyroute2_ttmsg(P.TT_READ, 1, 7, [("TT_A_PATH", "mytrace/main/stats")]) == golden("read")
    assert pyroute2_ttmsg(
        P.TT_WRITE, 5, 9, [("TT_A_PATH", "mytrace/start"), ("TT_A_VALUE", "1")]
    ) == golden("write")
    entries = [
        ("TT_A_ENTRY", {"attrs": [("TT_E_NAME", "main"), ("TT_E_KIND", 1), ("TT_E_WRITABLE", 0)]}),
        ("TT_A_ENTRY", {"attrs": [("TT_E_NAME", "start"), ("TT_E_KIND", 0), ("TT_E_WRITABLE", 1)]}),
    ]
    assert pyroute2_ttmsg(P.TT_LS, 0, 3, entries) == golden("ls_reply")
    change = [("TT_A_OP", "write"), ("TT_A_PATH", "mytrace/start"), ("TT_A_VALUE", "1")]
    assert pyroute2_ttmsg(P.TT_CHANGE, 0, 0, change) == golden("change")

    e = P.tterrmsg()
    e["header"]["type"] = P.NLMSG_ERROR
    e["header"]["flags"] = P.NLM_F_CAPPED | P.NLM_F_ACK_TLVS
    e["header"]["sequence_number"] = 7
    ln, typ, flags, seq, pid = header(golden("read"))
    e["error"] = -16
    e["orig_length"], e["orig_type"], e["orig_flags"], e["orig_seq"], e["orig_pid"] = (
        ln, typ, flags, seq, pid,
    )  # fmt: skip
    e["attrs"] = [("NLMSGERR_ATTR_MSG", "busy")]
    e.encode()
    assert bytes(e.data) == golden("error")


def test_pyroute2_reads_the_golden_bytes() -> None:
    m = pyroute2_decode(golden("read"))
    assert m["header"]["type"] == P.TT_READ and m["header"]["sequence_number"] == 7  # type: ignore[index]
    assert m["version"] == 1  # type: ignore[index]
    assert m.get_attr("TT_A_PATH") == "mytrace/main/stats"  # type: ignore[attr-defined]
    ls = pyroute2_decode(golden("ls_reply"))
    names = [e.get_attr("TT_E_NAME") for e in ls.get_attrs("TT_A_ENTRY")]  # type: ignore[attr-defined]
    assert names == ["main", "start"]
    err = P.tterrmsg(golden("error"))
    err.decode()
    assert err["error"] == -16 and err["orig_seq"] == 7
    assert err.get_attr("NLMSGERR_ATTR_MSG") == "busy"


def test_fast_codec_reads_the_golden_bytes() -> None:
    [(h, payload)] = list(P.iter_messages(golden("write")))
    assert (h.type, h.flags, h.seq) == (P.TT_WRITE, P.NLM_F_REQUEST | P.NLM_F_ACK, 9)
    assert P.check_version(payload) == 1
    a = Attrs.parse(payload)
    assert a.str(P.TT_A_PATH) == "mytrace/start" and a.joined_str(P.TT_A_VALUE) == "1"
    [(h, payload)] = list(P.iter_messages(golden("ls_reply")))
    assert P.decode_entries(Attrs.parse(payload)) == [
        Entry("main", "dir", False),
        Entry("start", "file", True),
    ]
    [(h, payload)] = list(P.iter_messages(golden("error")))
    assert P.decode_error(payload, h.flags) == (16, "busy")
    [(h, payload)] = list(P.iter_messages(golden("ack")))
    assert P.decode_error(payload, h.flags) == (0, "")
    [(h, payload)] = list(P.iter_messages(golden("change")))
    assert P.decode_change(Attrs.parse(payload)) == Change("write", "mytrace/start", "1")


# ---------------------------------------------------------------------------- round trips

text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=300
)


@settings(max_examples=150, deadline=None)
@given(path=text, value=text, seq=st.integers(0, 2**32 - 1))
def test_write_round_trips_through_both_codecs(path: str, value: str, seq: int) -> None:
    fast = P.encode_write(seq, path, value)
    assert fast == pyroute2_ttmsg(P.TT_WRITE, 5, seq, [("TT_A_PATH", path), ("TT_A_VALUE", value)])
    m = pyroute2_decode(fast)
    assert m.get_attr("TT_A_PATH") == path and m.get_attr("TT_A_VALUE") == value  # type: ignore[attr-defined]
    [(h, payload)] = list(P.iter_messages(fast))
    a = Attrs.parse(payload)
    assert h.seq == seq and a.str(P.TT_A_PATH) == path and a.joined_str(P.TT_A_VALUE) == value


@settings(max_examples=100, deadline=None)
@given(
    entries=st.lists(
        st.builds(Entry, text.filter(bool), st.sampled_from(["dir", "file"]), st.booleans()),
        max_size=20,
    )
)
def test_ls_reply_round_trips(entries: list[Entry]) -> None:
    [data] = P.encode_reply(P.TT_LS, 5, [P.entry_attr(e) for e in entries])
    [(_h, payload)] = list(P.iter_messages(data))
    assert P.decode_entries(Attrs.parse(payload)) == entries
    m = pyroute2_decode(data)
    decoded = [
        Entry(
            e.get_attr("TT_E_NAME"),
            "dir" if e.get_attr("TT_E_KIND") else "file",
            bool(e.get_attr("TT_E_WRITABLE")),
        )
        for e in m.get_attrs("TT_A_ENTRY")  # type: ignore[attr-defined]
    ]
    assert decoded == entries


def test_large_values_are_chunked_and_split_into_parts() -> None:
    value = "é" * 50_000 + "x" * 30_000  # 130 KB of UTF-8
    parts = P.encode_reply(P.TT_READ, 11, P.value_attrs(value))
    assert len(parts) >= 4
    *data_parts, done = parts
    assert header(done)[1] == P.NLMSG_DONE
    got = []
    for d in data_parts:
        ln, typ, flags, seq, _pid = header(d)
        assert typ == P.TT_READ and flags & P.NLM_F_MULTI and seq == 11
        assert ln <= P.MAX_PART + 1024
        [(_h, payload)] = list(P.iter_messages(d))
        got.append(Attrs.parse(payload).joined_str(P.TT_A_VALUE))
        for raw in Attrs.parse(payload).all(P.TT_A_VALUE):
            assert len(raw) <= 65_535 - 4
    assert "".join(got) == value


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "data",
    [
        b"\x01\x02\x03",  # shorter than a header
        struct.pack("=IHHII", 8, 0x14, 1, 1, 0),  # length below the header size
        struct.pack("=IHHII", 400, 0x14, 1, 1, 0),  # length beyond the datagram
    ],
)
def test_impossible_message_lengths_raise_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        list(P.iter_messages(data))


@pytest.mark.parametrize(
    "payload",
    [
        b"\x01\0\0\0" + struct.pack("=HH", 2, 1),  # attribute shorter than its header
        b"\x01\0\0\0" + struct.pack("=HH", 40, 1) + b"abcd",  # attribute beyond the payload
        b"\x01\0\0\0" + struct.pack("=HH", 8, 1) + b"abcd" + b"\x01\x02",  # stray bytes
    ],
)
def test_malformed_attributes_raise_protocol_error(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        Attrs.parse(memoryview(payload))


@pytest.mark.parametrize(
    "raw",
    [b"abcd", b"ab\0d\0", b"\xff\xfe\0", b""],  # no NUL, inner NUL, not UTF-8, empty
)
def test_bad_text_attributes_raise_protocol_error(raw: bytes) -> None:
    a = Attrs.parse(memoryview(b"\x01\0\0\0" + P.nla(P.TT_A_PATH, raw)))
    with pytest.raises(ProtocolError):
        a.str(P.TT_A_PATH)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_protocol_error(data: bytes) -> None:
    try:
        for _h, payload in P.iter_messages(data):
            a = Attrs.parse(payload)
            for t in a.types():
                try:
                    a.str(t)
                except ProtocolError:
                    continue
    except ProtocolError as e:
        assert str(e)
