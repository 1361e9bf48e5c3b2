"""The relayd client against a real lttng-relayd on loopback ports of its own."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tracetui.core.wire.relayd import RelaydClient, RelaydError, parse_url


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture
def relayd(tmp_path: Path):
    exe = shutil.which("lttng-relayd")
    if not exe:
        pytest.skip("lttng-relayd is not installed (Debian package lttng-tools)")
    c, d, live = _free_ports(3)
    out = tmp_path / "out"
    p = subprocess.Popen(
        [
            exe,
            "-C",
            f"tcp://127.0.0.1:{c}",
            "-D",
            f"tcp://127.0.0.1:{d}",
            "-L",
            f"tcp://127.0.0.1:{live}",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", c), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield c, d, out
    p.terminate()
    p.wait(5)


def test_parse_url_defaults_and_errors() -> None:
    u = parse_url("net://example.org")
    assert (u.host, u.control_port, u.data_port) == ("example.org", 5342, 5343)
    assert parse_url("net://h:7000").data_port == 7001
    assert parse_url("net://h:7000:9000").data_port == 9000
    for bad in ("http://h", "net://", "net://h:0", "net://h:1:2:3", "net://h:x"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_refused_connection_is_one_sentence() -> None:
    (port,) = _free_ports(1)
    with pytest.raises(RelaydError, match="refused the control connection"):
        RelaydClient(parse_url(f"net://127.0.0.1:{port}")).connect()


def test_session_streams_packets_reach_relayd_disk(relayd) -> None:
    c, d, out = relayd
    cl = RelaydClient(parse_url(f"net://127.0.0.1:{c}:{d}"))
    cl.connect()
    assert cl.minor == 10
    cl.create_session("t1", "hostA", 100_000)
    m = cl.add_stream("metadata", "hostA/t1")
    s = cl.add_stream("chan_0", "hostA/t1")
    cl.streams_sent()
    cl.send_metadata(m, b"/* CTF 1.8 */\n")
    for i in range(3):
        cl.send_packet(
            s,
            bytes([i]) * 4096,
            packet_size_bits=32768,
            content_size_bits=32768,
            timestamp_begin=i,
            timestamp_end=i + 1,
            events_discarded=0,
            stream_id=0,
            stream_instance_id=0,
            packet_seq_num=i,
        )
    cl.beacon(s, 10, 0, 0)
    cl.close_stream(s)
    cl.close_stream(m)
    cl.close()
    deadline = time.monotonic() + 5
    f = out / "hostA" / "t1" / "chan_0"
    while time.monotonic() < deadline and not (f.exists() and f.stat().st_size == 3 * 4096):
        time.sleep(0.05)
    assert f.read_bytes() == b"\0" * 4096 + b"\1" * 4096 + b"\2" * 4096
    assert (out / "hostA" / "t1" / "metadata").read_bytes() == b"/* CTF 1.8 */\n"
    assert (out / "hostA" / "t1" / "index" / "chan_0.idx").stat().st_size > 0
