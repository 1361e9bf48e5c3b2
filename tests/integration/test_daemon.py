"""The daemon as a process: rendezvous, signals, who may talk to it, bad input, stuck clients.

Everything runs against a real ``tracetui daemon`` on a real netlink socket. Tests that need a
second uid create a throwaway system user when run as root and fork a child that setuid()s to
it (the interpreter lives under /root, which other users cannot enter, so no exec is involved).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import pwd
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tracetui.core import ring
from tracetui.core.client import AsyncClient, Change, Client, rendezvous, spawn
from tracetui.core.errors import DaemonNotRunning, DaemonUnreachable, TraceError
from tracetui.core.model.stats import Stats, parse_stats
from tracetui.core.wire import protocol as P

if TYPE_CHECKING:
    from conftest import DaemonHandle

THROWAWAY_USER = "tracetui-test"


class Raw:
    """A bare netlink socket talking to the daemon, for messages the client would never send."""

    def __init__(self, port: int, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, P.NETLINK_USERSOCK)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind((0, 0))
        self.sock.connect((port, 0))

    def send(self, data: bytes) -> None:
        self.sock.send(data)

    def replies(self, timeout: float = 0.3) -> list[tuple[P.Header, bytes]]:
        out: list[tuple[P.Header, bytes]] = []
        self.sock.settimeout(timeout)
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                return out
            out += [(h, bytes(p)) for h, p in P.iter_messages(data)]

    def error_of(self, data: bytes, timeout: float = 0.2) -> int | None:
        """Send DATA; the errno of the first error reply, or None when none came back."""
        self.send(data)
        self.sock.settimeout(timeout)
        while True:
            try:
                reply = self.sock.recv(1 << 20)
            except TimeoutError:
                return None
            for h, payload in P.iter_messages(reply):
                if h.type == P.NLMSG_ERROR:
                    return P.decode_error(payload, h.flags)[0]

    def close(self) -> None:
        self.sock.close()


def port_of(d: DaemonHandle) -> int:
    return rendezvous.read_port_file(d.runtime_dir).port


def daemon_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ------------------------------------------------------------------------------ rendezvous


def test_runtime_dir_and_port_file_are_private(daemon: DaemonHandle) -> None:
    assert daemon.runtime_dir.stat().st_mode & 0o777 == 0o700
    port_file = daemon.runtime_dir / rendezvous.PORT_FILE
    assert port_file.stat().st_mode & 0o777 == 0o600
    info = json.loads(port_file.read_text())
    assert info["pid"] == daemon.pid and info["protocol"] == P.PROTOCOL_VERSION
    assert daemon.client.daemon_pid == daemon.pid
    assert daemon.status()["port"] == str(info["port"])


def test_a_second_daemon_on_the_same_directory_refuses(daemon: DaemonHandle) -> None:
    r = daemon.cli("daemon", "--runtime-dir", str(daemon.runtime_dir))
    assert r.returncode == 1
    assert f"(pid {daemon.pid}) already runs" in r.stderr and "Traceback" not in r.stderr
    assert daemon.client.read("status")  # the first one is untouched


def test_no_daemon_is_one_sentence_saying_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning) as exc:
        Client(str(tmp_path))
    assert "tracetui daemon --detach" in str(exc.value) and str(tmp_path) in str(exc.value)


def test_a_killed_daemon_is_detected_and_its_leftovers_cleaned(tmp_path: Path) -> None:
    directory = tmp_path / "run"
    proc = spawn.spawn_daemon(directory)
    with Client(str(directory)) as c:
        c.mkdir("t")
        c.write("t/main/subbuf_size", "4K")
        c.write("t/main/allocate", "1")
    leftover = f"/dev/shm/tracetui-{os.getuid()}-{proc.pid}-t-main"
    assert os.path.exists(leftover)
    proc.kill()
    proc.wait()
    with pytest.raises(DaemonNotRunning):  # the port file is stale: nobody is bound to it
        Client(str(directory))
    second = spawn.spawn_daemon(directory)  # the lock died with the first one
    try:
        assert not os.path.exists(leftover)
        with Client(str(directory)) as c:
            assert c.daemon_pid == second.pid
    finally:
        spawn.stop_daemon(second)
    assert second.returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_and_flush_traces_then_clean_up(tmp_path: Path, sig: int) -> None:
    directory = tmp_path / "run"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    proc = spawn.spawn_daemon(directory, env=env)
    with Client(str(directory)) as c:
        c.mkdir("t")
        c.write("t/main/global", "1")
        c.write("t/main/subbuf_size", "1M")
        c.write("t/start", "1")
    shm = f"/tracetui-{os.getuid()}-{proc.pid}-t-main"
    buf = ring.Channel.open(shm)
    try:
        assert buf.write(3, b"last words")
        proc.send_signal(sig)
        assert proc.wait(10) == 0
        assert buf.stats().packets == 1  # the open sub-buffer was closed on the way out
    finally:
        buf.close()
    assert not os.path.exists("/dev/shm" + shm)
    assert not (directory / rendezvous.PORT_FILE).exists()
    log = (directory / rendezvous.LOG_FILE).read_text()
    assert "stopped" in log and "Traceback" not in log


def test_detached_daemon_outlives_its_starter(tmp_path: Path) -> None:
    directory = tmp_path / "run"
    proc = spawn.spawn_daemon(directory, detach=True)
    try:
        assert os.getsid(proc.pid) == proc.pid  # a session of its own
        with Client(str(directory)) as c:
            assert c.daemon_pid == proc.pid
    finally:
        spawn.stop_daemon(proc)


# ------------------------------------------------------------------------------ other uids


@pytest.fixture(scope="module")
def other_uid() -> Iterator[tuple[int, int]]:
    if os.getuid() != 0:
        pytest.skip("needs root to create a throwaway user and setuid() to it; not root here")
    created = False
    try:
        pw = pwd.getpwnam(THROWAWAY_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                THROWAWAY_USER,
            ],
            check=True,
            capture_output=True,
        )
        created = True
        pw = pwd.getpwnam(THROWAWAY_USER)
    yield pw.pw_uid, pw.pw_gid
    if created:
        subprocess.run(["userdel", THROWAWAY_USER], check=False, capture_output=True)


def as_user(uid: int, gid: int, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run FN in a forked child that became UID; its JSON-able result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            result = fn()
        except BaseException as e:
            result = {"exception": repr(e)}
        os.write(w, (json.dumps(result) + "\n").encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    os.waitpid(pid, 0)
    return json.loads(text.strip().splitlines()[-1])


def test_another_uid_is_refused_with_eperm(
    daemon: DaemonHandle, other_uid: tuple[int, int]
) -> None:
    uid, gid = other_uid
    # The other user must be able to read a port file: give it a copy in a directory of its own.
    theirs = Path(tempfile.mkdtemp(prefix="tracetui-other-"))
    try:
        shutil.copy(daemon.runtime_dir / rendezvous.PORT_FILE, theirs / rendezvous.PORT_FILE)
        for p in (theirs, theirs / rendezvous.PORT_FILE):
            os.chown(p, uid, gid)

        def attempt() -> dict[str, Any]:
            try:
                Client(str(theirs))
            except TraceError as e:
                return {"errno": e.errno, "message": e.message, "type": type(e).__name__}
            return {"errno": 0}

        got = as_user(uid, gid, attempt)
    finally:
        shutil.rmtree(theirs)
    assert got["errno"] == errno.EPERM, got
    assert got["type"] == "TraceError" and f"uid {uid} may not use" in got["message"]
    assert int(daemon.status()["refused"]) >= 1
    assert daemon.client.read("status")  # still serving its owner


def test_a_squatted_port_is_detected(tmp_path: Path, other_uid: tuple[int, int]) -> None:
    uid, gid = other_uid
    directory = tmp_path / "run"
    rendezvous.ensure_runtime_dir(directory)

    # A squatter of another uid binds a port and answers the hello like a daemon would.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, P.NETLINK_USERSOCK)
            s.bind((0, 0))
            os.write(w, f"{s.getsockname()[0]}\n".encode())
            s.settimeout(10)
            data, addr = s.recvfrom(65536)
            seq = struct.unpack_from("=IHHII", data)[3]
            s.sendto(P.encode_hello_reply(seq, os.getpid(), uid), addr)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        port = int(f.readline())
    # A port file of ours (root) that points at the squatter's port.
    (directory / rendezvous.PORT_FILE).write_text(
        json.dumps({"port": port, "pid": pid, "protocol": 1})
    )
    try:
        with pytest.raises(DaemonUnreachable) as exc:
            Client(str(directory))
    finally:
        os.waitpid(pid, 0)
    assert exc.value.errno == errno.EPERM
    assert f"runs as uid {uid}" in str(exc.value) and "squatted" in str(exc.value)


# ------------------------------------------------------------------------------ bad input


def test_protocol_fuzz_leaves_the_daemon_serving(daemon: DaemonHandle) -> None:
    raw = Raw(port_of(daemon))
    req = P.NLM_F_REQUEST
    rng = random.Random(20070915)
    try:
        # Random bytes: the daemon may answer with errors or drop them, and must survive.
        for _ in range(500):
            raw.send(rng.randbytes(rng.randint(1, 300)))
        for _ in range(300):  # random bodies behind a plausible header
            body = rng.randbytes(rng.randint(0, 200))
            typ = rng.choice([P.TT_LS, P.TT_READ, P.TT_WRITE, P.TT_MKDIR, P.TT_HELLO, 0x25, 0x7F])
            raw.send(struct.pack("=IHHII", 16 + len(body), typ, req, 1, 0) + body)
        raw.replies(0.2)

        def path_msg(typ: int, attrs: bytes, version: int = 1, flags: int = req) -> bytes:
            return P.message(typ, flags, 42, attrs, version=version)

        path = P.nla_str(P.TT_A_PATH, "status")
        assert raw.error_of(path_msg(0x7F, path)) == errno.EOPNOTSUPP  # unknown type
        assert raw.error_of(path_msg(P.TT_READ, path, version=9)) == errno.EPROTO  # version
        assert raw.error_of(path_msg(P.TT_READ, b"")) == errno.EINVAL  # no PATH
        assert raw.error_of(path_msg(P.TT_READ, P.nla(P.TT_A_PATH, b"status"))) == errno.EINVAL
        assert raw.error_of(path_msg(P.TT_READ, P.nla(P.TT_A_PATH, b"\xff\0"))) == errno.EINVAL
        assert raw.error_of(path_msg(P.TT_READ, struct.pack("=HH", 60, 1) + b"ab")) == errno.EINVAL
        assert (
            raw.error_of(struct.pack("=IHHII", 18, P.TT_READ, req, 1, 0) + b"\x01\0")
            == errno.EPROTO
        )
        assert (
            raw.error_of(struct.pack("=IHHII", 99, P.TT_READ, req, 1, 0) + b"\x01\0\0\0")
            == errno.EPROTO
        )
        big = P.nla_str(P.TT_A_VALUE, "x" * 31_000)
        too_long = path_msg(P.TT_WRITE, P.nla_str(P.TT_A_PATH, "a/filter") + big + big)
        assert raw.error_of(too_long) == errno.E2BIG
        huge = path_msg(P.TT_READ, path + P.nla_str(P.TT_A_VALUE, "x" * 60_000) * 2)
        assert raw.error_of(huge) == errno.EMSGSIZE
        hello2 = P.encode_hello(5, "future", version=2)
        assert raw.error_of(hello2) == errno.EPROTO
        # Never answered: too short for a header, not a request, netlink control types.
        assert raw.error_of(b"\x01\x02") is None
        assert raw.error_of(path_msg(P.TT_READ, path, flags=0)) is None
        assert raw.error_of(P.encode_error(path_msg(P.TT_READ, path)[:16], 5, "echo?")) is None
        assert raw.error_of(P.encode_done(3)) is None
        # Two requests in one datagram get two answers.
        raw.send(
            P.encode_path_request(P.TT_READ, 1, "status") + P.encode_path_request(P.TT_LS, 2, "")
        )
        assert sorted(h.seq for h, _ in raw.replies()) == [1, 2]
    finally:
        raw.close()
    # Still correct for everyone.
    c = daemon.client
    c.mkdir("afterfuzz")
    assert c.read("afterfuzz/main/flight") == "0"
    status = daemon.status()
    assert int(status["malformed"]) > 0 and status["internal_errors"] == "0"
    assert daemon.proc.poll() is None


def test_a_client_that_never_reads_does_not_stall_the_daemon(daemon: DaemonHandle) -> None:
    c = daemon.client
    c.mkdir("t")
    long_output = "/" + "o" * 30_000  # 30 KB replies fill a small receive buffer quickly
    c.write("t/output", long_output)
    stuck = Raw(port_of(daemon), rcvbuf=4096)
    request = P.encode_path_request(P.TT_READ, 1, "t/output")
    latencies = []
    try:
        for i in range(600):
            stuck.send(request)
            if i % 20 == 0:
                t0 = time.perf_counter()
                assert c.read("t/main/flight") == "0"
                latencies.append(time.perf_counter() - t0)
        deadline = time.monotonic() + 5
        while int(daemon.status()["clients_dropped"]) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert int(daemon.status()["clients_dropped"]) >= 1
        assert max(latencies) < 0.25, latencies
        # A subscriber that never reads is dropped too; everyone else keeps being served.
        sub = Raw(port_of(daemon), rcvbuf=4096)
        sub.send(P.message(P.TT_SUBSCRIBE, P.NLM_F_REQUEST | P.NLM_F_ACK, 7))
        time.sleep(0.05)
        dropped = int(daemon.status()["clients_dropped"])
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < DROP_WAIT:
            c.write("t/filter", "sched_switch" if n % 2 else "!sched_switch")
            n += 1
        assert int(daemon.status()["clients_dropped"]) > dropped
        assert daemon.status()["subscribers"] == "0"
        sub.close()
    finally:
        stuck.close()


DROP_WAIT = 1.5  # longer than the daemon's DROP_AFTER_S


def test_large_values_and_listings_cross_in_several_parts(daemon: DaemonHandle) -> None:
    c = daemon.client
    c.mkdir("big")
    path = "/" + "/".join(["segment-é" * 10] * 500)  # ~50 K characters, more in UTF-8
    c.write("big/output", path)
    assert c.read("big/output") == path
    for i in range(1500):
        c.mkdir(f"trace{i:04d}")
    dirs = [e.name for e in c.ls() if e.kind == "dir"]
    assert dirs == ["big"] + [f"trace{i:04d}" for i in range(1500)]


def test_memory_stays_flat_over_many_requests(daemon: DaemonHandle) -> None:
    c = daemon.client
    c.mkdir("m")
    for _ in range(3000):
        c.read("m/main/stats")
    before = daemon_rss_kb(daemon.pid)
    for _ in range(20_000):
        c.read("m/main/stats")
    growth = daemon_rss_kb(daemon.pid) - before
    assert growth < 1024, f"the daemon grew by {growth} KiB over 20k requests"


# ------------------------------------------------------------------------------ async client


async def test_a_request_cancelled_as_its_reply_lands_stays_cancelled(
    daemon: DaemonHandle,
) -> None:
    """A poller cancelled in the instant its reply arrives ends (Textual stops timers so at exit).

    The cancel is made by a callback of the reply's own future, so it lands after the reply and
    before the request's task resumes: the window where 3.11's asyncio.wait_for returned the
    reply and dropped the cancellation, and the poller (and the console's exit) ran forever."""
    c = await AsyncClient.connect(daemon.runtime_dir)
    try:
        loop = asyncio.get_running_loop()
        made = loop.create_future

        async def poller() -> None:
            while True:
                await c.read("status")

        task = asyncio.create_task(poller())

        def create_future() -> asyncio.Future[Any]:
            fut = made()
            fut.add_done_callback(lambda _f: task.cancel())
            return fut

        c._loop.create_future = create_future  # type: ignore[method-assign]
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(5):
                await asyncio.shield(task)
        assert task.cancelled()
    finally:
        c._loop.create_future = made  # type: ignore[method-assign]
        await c.close()


async def test_async_client_verbs_and_changes_made_by_the_cli(daemon: DaemonHandle) -> None:
    c = await AsyncClient.connect(daemon.runtime_dir)
    try:
        changes = c.changes()
        await c.subscribe()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tracetui", "mkdir", "fromcli", env=daemon.env()
        )
        assert await proc.wait() == 0
        assert await asyncio.wait_for(changes.__anext__(), 2) == Change("mkdir", "fromcli", "")
        daemon.client.write("fromcli/main/subbuf_size", "256K")  # another (sync) client
        got = await asyncio.wait_for(changes.__anext__(), 2)
        assert got == Change("write", "fromcli/main/subbuf_size", "262144")
        # its own verbs
        assert [e.name for e in await c.ls("fromcli") if e.kind == "dir"] == ["main"]
        await c.write("fromcli/main/flight", "1")
        assert await c.read("fromcli/main/flight") == "1"
        assert await asyncio.wait_for(changes.__anext__(), 2) == Change(
            "write", "fromcli/main/flight", "1"
        )
        with pytest.raises(TraceError) as exc:
            await c.rmdir("fromcli/main")
        assert exc.value.errno == errno.EPERM
        await c.mkdir("fromcli/extra")
        await c.rmdir("fromcli/extra")
        assert [ch.op for ch in [await changes.__anext__(), await changes.__anext__()]] == [
            "mkdir",
            "rmdir",
        ]
        # Several verbs in flight at once are matched to their replies.
        values = await asyncio.gather(*(c.read("fromcli/main/subbuf_size") for _ in range(50)))
        assert set(values) == {"262144"}
        # The daemon announces its end to subscribers.
        spawn.stop_daemon(daemon.proc)
        assert await asyncio.wait_for(changes.__anext__(), 2) == Change("state", "", "shutdown")
        with pytest.raises(DaemonNotRunning):
            await c.read("fromcli/main/flight")
    finally:
        await c.close()


async def test_async_client_without_daemon(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning):
        await AsyncClient.connect(tmp_path)


def test_parse_stats_round_trip(daemon: DaemonHandle) -> None:
    daemon.client.mkdir("s")
    assert parse_stats(daemon.client.read("s/main/stats")) == {"total": Stats()}
