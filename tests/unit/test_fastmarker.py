"""Markers as C objects (tracetui.core._ttpy): exact encoding, errors, threads and fork.

Every payload a C marker writes is compared with the Python encoder of its format
(tracetui.core.model.formats), the definition of the encoding; values come from hypothesis.
Targets are set as the probe's daemon link sets them, on real channels.
"""

from __future__ import annotations

import os
import struct
import threading
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracetui import probe
from tracetui.core import cmarker, ring

pytestmark = pytest.mark.skipif(not cmarker.available(), reason="_ttpy is not built")


@pytest.fixture(autouse=True)
def no_daemon(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TRACETUI_RUNTIME_DIR", str(tmp_path / "nobody"))


@pytest.fixture
def channel() -> Iterator[ring.Channel]:
    ch = ring.Channel.create(f"/tracetui-test-fm-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                                1 << 16, 4, is_global=True)  # fmt: skip
    yield ch
    ch.unlink()
    ch.close()


def unique(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:8]}"


def attach(m, ch: ring.Channel, mid: int = 7) -> None:  # type: ignore[no-untyped-def]
    m.native.set_id(mid)
    m.native.set_targets([ch])
    m.enabled = True


def payloads(ch: ring.Channel) -> list[bytes]:
    """Payloads of the records in the channel's packets (all the same known format)."""
    ch.flush()
    out = []
    while (pkt := ch.get_packet(0)) is not None:
        data = bytes(pkt)
        ch.put_packet(0)
        end = struct.unpack_from("<Q", data, 40)[0] // 8
        out.append(data[76:end])
    return out


def split(blob: bytes, fmt) -> list[bytes]:  # type: ignore[no-untyped-def]
    out, pos = [], 0
    while pos < len(blob):
        _, new = fmt.decode(blob, pos + 10, len(blob))
        out.append(blob[pos + 10 : new])
        pos = new
    return out


def test_a_marker_is_a_c_object_with_the_marker_attributes() -> None:
    name = unique("attrs")
    m = probe.marker(name, "a %d s %s")
    assert type(m).__module__ == "tracetui.core._ttpy"
    assert (m.name, m.format.text, m.id, m.enabled) == (name, "a %d s %s", None, False)
    assert repr(m) == f"<marker {name} 'a %d s %s' id=None disabled>"
    m._id = 12
    m.enabled = True
    assert m.id == 12 and repr(m).endswith("id=12 enabled>")
    m.enabled = False
    with pytest.raises(AttributeError):
        m.name = "other"  # type: ignore[misc]
    # Deleting what the probe sets leaves a marker that records nothing and never crashes.
    del m.enabled, m._id
    assert m.id is None and repr(m).endswith("id=None disabled>")
    m(1, "x")
    m.enabled = False


FORMATS = {
    "a %d b %u c %ld d %lu": st.tuples(
        st.integers(-(2**31), 2**31 - 1), st.integers(0, 2**32 - 1),
        st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**64 - 1),
    ),
    "x %x p %p q %lld r %llu": st.tuples(
        st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1),
        st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**64 - 1),
    ),
    "s %s c %c f %f n %d": st.tuples(
        st.text(max_size=40) | st.binary(max_size=40),
        st.characters(max_codepoint=127),
        st.floats(allow_nan=False) | st.integers(-(2**53), 2**53),
        st.integers(-(2**31), 2**31 - 1),
    ),
    "t %s u %s": st.tuples(st.text(max_size=700), st.text(max_size=5)),
}  # fmt: skip


@pytest.mark.parametrize("fmt_text", list(FORMATS))
def test_payloads_are_what_the_format_encoder_says(fmt_text: str) -> None:
    m = probe.marker(unique("enc"), fmt_text)
    seen: list[tuple] = []

    @settings(max_examples=60, deadline=None)
    @given(FORMATS[fmt_text])
    def check(args: tuple) -> None:
        ch = ring.Channel.create(f"/tracetui-test-fm-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                                    1 << 16, 4, is_global=True)  # fmt: skip
        try:
            attach(m, ch)
            m(*args)
            m.native.set_targets([])
            got = split(b"".join(payloads(ch)), m.format)
        finally:
            ch.unlink()
            ch.close()
        assert got == [m.format.encode(*args)]
        seen.append(args)

    check()
    assert seen


def test_strings_end_at_nul_and_bad_utf8_is_replaced(channel) -> None:  # type: ignore[no-untyped-def]
    m = probe.marker(unique("str"), "s %s c %c")
    attach(m, channel)
    m("ab\0cd", b"z")
    m("\udcff!", "y")
    m(bytearray(b"raw"), "x")
    got = split(b"".join(payloads(channel)), m.format)
    assert got == [b"ab\0z", b"?!" + b"\0y", b"raw\0x"]


def test_wrong_arguments_raise_type_or_overflow_error_and_write_nothing(channel) -> None:  # type: ignore[no-untyped-def]
    ints = probe.marker(unique("ints"), "a %d b %u c %lu")
    mixed = probe.marker(unique("mixed"), "n %d s %s c %c f %f")
    attach(ints, channel)
    attach(mixed, channel, 8)

    class Index:
        def __index__(self) -> int:
            return 1

    cases_type = [
        (ints, (1, 2)), (ints, (1.0, 2, 3)), (ints, ("1", 2, 3)), (ints, (Index(), 2, 3)),
        (mixed, (1, 2, "c", 1.0)), (mixed, (1, "s", "cc", 1.0)), (mixed, (1, "s", "é", 1.0)),
        (mixed, (1, "s", "c", "1.0")), (mixed, (1, "s", "c", 10**400)), (mixed, (1,)),
    ]  # fmt: skip
    for m, args in cases_type:
        with pytest.raises(TypeError):
            m(*args)
    for m, args in [(ints, (2**31, 0, 0)), (ints, (0, -1, 0)), (ints, (0, 0, 2**64)),
                    (mixed, (2**40, "s", "c", 1.0))]:  # fmt: skip
        with pytest.raises(OverflowError):
            m(*args)
    with pytest.raises(TypeError, match="unexpected keyword argument 'zz'"):
        ints(1, 2, zz=3)
    with pytest.raises(TypeError, match="multiple values"):
        ints(1, 2, a=3)
    assert channel.stats().recorded == 0
    ints(c=3, b=2, a=1)
    mixed(1, s="kw", c="c", f=0.5)
    assert channel.stats().recorded == 2
    # Disabled, a marker still checks its arguments: the bug shows without a trace.
    ints.enabled = False
    with pytest.raises(TypeError):
        ints(1, 2)


def test_threads_write_every_event(channel) -> None:  # type: ignore[no-untyped-def]
    m = probe.marker(unique("thr"), "t %d i %lu")
    attach(m, channel)
    n = 2000

    def work(t: int) -> None:
        for i in range(n):
            m(t, i)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = [m.format.decode(p, 0, len(p))[0] for p in split(b"".join(payloads(channel)), m.format)]
    assert sorted(got) == sorted((t, i) for t in range(4) for i in range(n))


def test_a_forked_child_writes_through_the_same_emitters(channel) -> None:  # type: ignore[no-untyped-def]
    m = probe.marker(unique("fork"), "pid %d")
    attach(m, channel)
    m(1)
    pid = os.fork()
    if pid == 0:
        # The probe disabled every marker in the child (its daemon link is new); attached
        # again, the C marker writes into the mapping the child inherited.
        code = 1
        try:
            if not m.enabled:
                attach(m, channel)
                m(2)
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    got = [m.format.decode(p, 0, len(p))[0] for p in split(b"".join(payloads(channel)), m.format)]
    assert got == [(1,), (2,)]
