"""Streaming tracetui traces to a real lttng-relayd (the per-trace ``relay`` file).

Three tracetui daemons (runtime directories of their own, distinct TRACETUI_HOSTNAME) stream
to one relayd started on loopback ports of its own; babeltrace2 reading the relayd's output
directory shows exactly each host's events; a relayd that is not there is an error state with
a sentence, never a stuck writer; a bad URL is refused in one line and changes nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import finish_daemon, start_daemon
from test_relay import _free_ports, relayd  # noqa: F401  (the fixture)

from tracetui.core.trace.traces import open_trace

BT2 = shutil.which("babeltrace2")

EMIT = "from tracetui import probe\nm = probe.marker('relay_ev', 'host %s k %d')\n" \
       "import sys\nfor k in range(int(sys.argv[2])): m(sys.argv[1], k)\n"


def relay_status(handle, trace: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return json.loads(handle.client.read("recording"))["relays"][trace]


def wait_sent(handle, trace: str, timeout: float = 20, state: str = "") -> dict:  # type: ignore[no-untyped-def,type-arg]
    deadline = time.monotonic() + timeout
    while True:
        s = relay_status(handle, trace)
        if s["packets_sent"] and not s["queued_bytes"] and s["state"] == (state or s["state"]):
            return s
        assert time.monotonic() < deadline, s
        time.sleep(0.1)


@pytest.mark.skipif(BT2 is None, reason="babeltrace2 is not installed")
def test_three_hosts_stream_exact_events_to_one_relayd(relayd, tmp_path: Path,  # noqa: F811
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ctrl, data, out = relayd
    handles, counts = [], {"hostA": 300, "hostB": 500, "hostC": 700}
    try:
        for host in counts:
            monkeypatch.setenv("TRACETUI_HOSTNAME", host)
            handles.append(start_daemon(tmp_path / host))
        for h, (host, n) in zip(handles, counts.items(), strict=True):
            c = h.client
            c.mkdir("fleet")
            c.write("fleet/output", str(tmp_path / f"local-{host}"))
            c.write("fleet/relay", f"net://127.0.0.1:{ctrl}:{data}")
            c.write("fleet/start", "1")
            r = subprocess.run([sys.executable, "-c", EMIT, host, str(n)], env=h.env(),
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            c.write("fleet/start", "0")
        for h in handles:
            # `start 0` ended the relay session once every packet was in.
            s = wait_sent(h, "fleet", state="closed")
            assert s["packets_lost"] == 0 and s["sessions"] == 1, s
        for host, n in counts.items():
            # One session, one directory: HOST/TRACE-YYYYMMDD-HHMMSS.
            (d,) = {m.parent for m in (out / host).glob("fleet-*/metadata")}
            assert d.name.startswith("fleet-2"), d
            bt = subprocess.run([BT2, str(d)], capture_output=True, text=True, timeout=60)
            assert bt.returncode == 0, bt.stderr
            lines = [ln for ln in bt.stdout.splitlines() if " relay_ev:" in ln]
            assert len(lines) == n
            assert all(f'host = "{host}"' in ln for ln in lines)
            ks = sorted(int(ln.rsplit("k = ", 1)[1].rstrip(" }")) for ln in lines)
            assert ks == list(range(n))
    finally:
        for h in handles:
            finish_daemon(h)


def test_unreachable_relayd_is_a_state_not_a_stall(daemon, tmp_path: Path) -> None:
    (port,) = _free_ports(1)
    c = daemon.client
    c.mkdir("lonely")
    c.write("lonely/output", str(tmp_path / "local"))
    c.write("lonely/relay", f"net://127.0.0.1:{port}")
    c.write("lonely/start", "1")
    r = subprocess.run([sys.executable, "-c", EMIT, "x", "2000"], env=daemon.env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    c.write("lonely/start", "0")
    deadline = time.monotonic() + 10
    while relay_status(daemon, "lonely")["state"] != "error":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    s = relay_status(daemon, "lonely")
    assert "refused" in s["error"] and "\n" not in s["error"]
    # The local trace is complete whatever the relay does.
    dump = daemon.cli("dump", str(tmp_path / "local"))
    assert sum(" relay_ev:" in ln for ln in dump.stdout.splitlines()) == 2000
    assert "relay" in daemon.log()


def test_bad_relay_url_is_refused_in_one_line(daemon) -> None:
    daemon.client.mkdir("t")
    r = daemon.cli("write", "t/relay", "http://x")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "net://" in r.stderr
    assert daemon.client.read("t/relay") == ""
    assert daemon.cli("write", "t/relay", "net://h:1:2:3").returncode == 1
    daemon.client.write("t/relay", "net://127.0.0.1:9")
    assert daemon.client.read("t/relay") == "net://127.0.0.1:9:10"
    daemon.client.write("t/relay", "")
    assert daemon.client.read("t/relay") == ""


def test_a_layout_keeps_the_relay_and_applies_it(daemon, tmp_path: Path) -> None:
    import asyncio

    from tracetui.core import layout as L
    from tracetui.core.client import AsyncClient
    from tracetui.core.model.layout import dumps, loads

    daemon.client.mkdir("kept")
    daemon.client.write("kept/relay", "net://127.0.0.1:9")

    async def roundtrip() -> str:
        c = AsyncClient(str(daemon.runtime_dir))
        await c.connect()
        try:
            text = dumps(await L.capture(c))
            daemon.client.write("kept/relay", "")
            daemon.client.rmdir("kept")
            for t in loads(text).traces:
                await L.create_trace(c, t)
            return text
        finally:
            await c.close()

    text = asyncio.run(roundtrip())
    assert 'relay = "net://127.0.0.1:9:10"' in text
    assert daemon.client.read("kept/relay") == "net://127.0.0.1:9:10"


def test_a_restarted_relayd_is_reconnected_and_the_gap_counted(tmp_path: Path, daemon) -> None:
    exe = shutil.which("lttng-relayd")
    if not exe:
        pytest.skip("lttng-relayd is not installed (Debian package lttng-tools)")
    c, d, live = _free_ports(3)
    out = tmp_path / "relayd"

    def start() -> subprocess.Popen[bytes]:
        p = subprocess.Popen([exe, "-C", f"tcp://127.0.0.1:{c}", "-D", f"tcp://127.0.0.1:{d}",
                              "-L", f"tcp://127.0.0.1:{live}", "-o", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        return p

    rp = start()
    try:
        cl = daemon.client
        cl.mkdir("r")
        cl.write("r/output", str(tmp_path / "local"))
        cl.write("r/main/subbuf_size", "4K")
        cl.write("r/relay", f"net://127.0.0.1:{c}:{d}")
        cl.write("r/start", "1")
        emit = lambda n: subprocess.run(  # noqa: E731
            [sys.executable, "-c", EMIT, "h", str(n)], env=daemon.env(), check=True, timeout=60)
        emit(2000)
        first = wait_sent(daemon, "r")
        rp.kill()
        rp.wait(5)
        emit(2000)  # streamed into the void: the connection breaks, the gap is counted
        deadline = time.monotonic() + 10
        while relay_status(daemon, "r")["state"] != "error":
            assert time.monotonic() < deadline, relay_status(daemon, "r")
            emit(200)
            time.sleep(0.2)
        rp = start()
        deadline = time.monotonic() + 15
        while True:
            emit(200)
            s = relay_status(daemon, "r")
            if s["state"] == "connected" and s["packets_sent"] > first["packets_sent"] + 1:
                break
            assert time.monotonic() < deadline, s
            time.sleep(0.3)
        cl.write("r/start", "0")
        s = wait_sent(daemon, "r")
        assert s["reconnects"] >= 1
        # Every packet of the local trace was acknowledged by a relayd or counted lost: packets
        # in flight when it died are lost; those queued while it was away went to the new one.
        local = open_trace(tmp_path / "local")
        packets = sum(len(local.packet_index(st)) for st in local.streams)
        assert s["packets_sent"] + s["packets_lost"] == packets, (s, packets)
        assert s["packets_sent"] > first["packets_sent"]  # streaming resumed after the restart
    finally:
        rp.terminate()
        rp.wait(5)
