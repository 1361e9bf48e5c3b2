"""The probe API as a program uses it, without a daemon: definition, arguments, encoding.

Targets are set on a marker the way the probe's daemon link sets them (NativeMarker), so what
the marker writes can be read back from a real channel and decoded with the marker's format.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterator

import pytest

from tracetui import probe
from tracetui.core import ring


@pytest.fixture(autouse=True)
def no_daemon(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    # The probe's link looks for a daemon here and finds none: markers stay disabled.
    monkeypatch.setenv("TRACETUI_RUNTIME_DIR", str(tmp_path / "nobody"))


@pytest.fixture
def channel() -> Iterator[ring.Channel]:
    ch = ring.Channel.create(f"/tracetui-test-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                                4096, 4, is_global=True)  # fmt: skip
    yield ch
    ch.unlink()
    ch.close()


def unique(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:8]}"


def attach(m, ch: ring.Channel, mid: int) -> None:  # type: ignore[no-untyped-def]
    m.native.set_id(mid)
    m.native.set_targets([ch])
    m.enabled = True


def records(ch: ring.Channel) -> list[tuple[int, bytes]]:
    ch.flush()
    pkt = ch.get_packet(0)
    assert pkt is not None
    data = bytes(pkt)
    ch.put_packet(0)
    end = struct.unpack_from("<Q", data, 40)[0] // 8
    return [(struct.unpack_from("<H", data, 76)[0], data[86:end])]


def test_bad_names_and_formats_fail_at_definition() -> None:
    with pytest.raises(ValueError, match="must be a C identifier"):
        probe.marker("bad name", "x %d")
    with pytest.raises(ValueError, match="has type '%q'"):
        probe.marker(unique("fmt"), "a %q")
    name = unique("twice")
    m = probe.marker(name, "a %d")
    assert probe.marker(name, "a %d") is m
    with pytest.raises(ValueError, match="already defined with format"):
        probe.marker(name, "a %u")


def test_a_marker_is_disabled_until_a_trace_wants_it() -> None:
    m = probe.marker(unique("off"), "a %d b %s")
    assert m.enabled is False
    m(1, "x")  # nothing to record, nothing raised


@pytest.mark.parametrize(
    ("fmt", "args", "payload"),
    [
        ("a %d b %u c %lu", (-1, 7, 2**64 - 1), struct.pack("<iIQ", -1, 7, 2**64 - 1)),
        ("pid %d comm %s", (42, "bash"), struct.pack("<i", 42) + b"bash\0"),
        (
            "x %x p %p c %c f %f",
            (0xBEEF, 0x1000, "z", 1.5),
            struct.pack("<IQBd", 0xBEEF, 0x1000, ord("z"), 1.5),
        ),
        (
            "n %lld s %s t %s",
            (-(2**63), "é", ""),
            struct.pack("<q", -(2**63)) + "é".encode() + b"\0\0",
        ),
    ],
)
def test_events_are_encoded_as_the_format_says(
    channel, fmt: str, args: tuple, payload: bytes
) -> None:  # type: ignore[no-untyped-def]
    m = probe.marker(unique("enc"), fmt)
    attach(m, channel, 9)
    m(*args)
    assert records(channel) == [(9, payload)]
    assert m.format.decode(payload, 0, len(payload))[0] == args


def test_wrong_arguments_are_the_programmers_bug(channel) -> None:  # type: ignore[no-untyped-def]
    ints = probe.marker(unique("ints"), "a %d b %d c %lu")
    mixed = probe.marker(unique("mixed"), "pid %d comm %s")
    attach(ints, channel, 1)
    attach(mixed, channel, 2)
    with pytest.raises(TypeError):
        ints(1, 2)
    with pytest.raises(TypeError):
        ints(1, "2", 3)
    with pytest.raises(OverflowError):
        ints(2**31, 0, 0)  # the fast integer path: cffi checks the C type's range
    with pytest.raises(OverflowError):
        ints(0, 0, -1)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'comm'"):
        mixed(1)
    with pytest.raises(TypeError, match="field 'comm' \\(%s\\)"):
        mixed(1, 2)
    with pytest.raises(TypeError, match="field 'pid' \\(%d\\)"):
        mixed(2**40, "x")
    assert channel.stats().recorded == 0  # nothing half-written
    mixed(pid=5, comm="kw")  # fields by name
    assert channel.stats().recorded == 1


def test_full_buffers_lose_events_and_count_them_never_raise(channel) -> None:  # type: ignore[no-untyped-def]
    m = probe.marker(unique("flood"), "a %lu b %lu c %lu")
    attach(m, channel, 3)
    for i in range(5000):
        m(i, i, i)
    s = channel.stats()
    assert s.discarded > 0
    assert s.recorded + s.discarded == 5000
