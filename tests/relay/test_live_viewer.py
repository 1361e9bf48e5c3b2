"""tracetui as an lttng-live viewer of a real lttng-relayd (core/wire/lttng_live.py,
core/client/remote.py, ``tracetui watch net://...``).

Three tracetui daemons (TRACETUI_HOSTNAME hostA/B/C) stream a trace each through their ``relay``
file to one lttng-relayd on private loopback ports; tracetui's viewer lists the three sessions
and reads exactly each host's events live; babeltrace2's lttng-live source reads exactly the
events of another session while ``tracetui watch`` prints two more; bad URLs, a refused port and
an unknown session are one sentence each.  A real LTTng-UST session streamed to the same relayd
is read by the same viewer.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import DaemonHandle, finish_daemon, start_daemon
from helpers.lttng_provider import build_provider
from test_relay import _free_ports

from tracetui.core.client.live import LiveBatch
from tracetui.core.client.remote import RemoteWatch, list_sessions
from tracetui.core.trace.packets import Loss
from tracetui.core.wire.lttng_live import LiveError, LiveUnreachable, parse_live_url

RELAYD = shutil.which("lttng-relayd")
BT2 = shutil.which("babeltrace2")
pytestmark = pytest.mark.skipif(RELAYD is None, reason="lttng-relayd is not installed")

EMIT = (
    "from tracetui import probe\nm = probe.marker('relay_ev', 'host %s k %d')\n"
    "import sys\nfor k in range(int(sys.argv[2])): m(sys.argv[1], k)\n"
)
# Writers pinned to each CPU in turn: every per-CPU stream of a session gets events.
CPUS = sorted(os.sched_getaffinity(0))
EMIT_RANGE = (
    "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "from tracetui import probe\nm = probe.marker('relay_ev', 'host %s k %d')\n"
    "for k in range(int(sys.argv[3]), int(sys.argv[4])): m(sys.argv[2], k)\n"
)
COUNTS = {"hostA": 300, "hostB": 500, "hostC": 700}


@dataclass
class Relayd:
    ctrl: int
    data: int
    live: int
    out: Path
    proc: subprocess.Popen[bytes]

    @property
    def producer_url(self) -> str:
        return f"net://127.0.0.1:{self.ctrl}:{self.data}"

    @property
    def live_url(self) -> str:
        return f"net://127.0.0.1:{self.live}"


def start_relayd(out: Path) -> Relayd:
    assert RELAYD is not None
    c, d, lv = _free_ports(3)
    p = subprocess.Popen(
        [
            RELAYD,
            "-C",
            f"tcp://127.0.0.1:{c}",
            "-D",
            f"tcp://127.0.0.1:{d}",
            "-L",
            f"tcp://127.0.0.1:{lv}",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while True:
        try:
            list_sessions(f"net://127.0.0.1:{lv}", timeout=1)
            return Relayd(c, d, lv, out, p)
        except LiveError:
            assert time.monotonic() < deadline and p.poll() is None, "lttng-relayd did not start"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def relayd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relayd]:
    r = start_relayd(tmp_path_factory.mktemp("relayd") / "out")
    try:
        yield r
    finally:
        r.proc.terminate()
        r.proc.wait(5)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DaemonHandle]]:
    tmp = tmp_path_factory.mktemp("hosts")
    out: dict[str, DaemonHandle] = {}
    old = os.environ.get("TRACETUI_HOSTNAME")
    try:
        for host in COUNTS:
            os.environ["TRACETUI_HOSTNAME"] = host  # the daemon reports it to the relayd
            out[host] = start_daemon(tmp / host)
        yield out
    finally:
        if old is None:
            os.environ.pop("TRACETUI_HOSTNAME", None)
        else:
            os.environ["TRACETUI_HOSTNAME"] = old
        for h in out.values():
            finish_daemon(h)


def start_streaming(h: DaemonHandle, trace: str, relayd: Relayd, local: Path) -> None:
    c = h.client
    c.mkdir(trace)
    c.write(f"{trace}/output", str(local))
    c.write(f"{trace}/relay", relayd.producer_url)
    c.write(f"{trace}/start", "1")


def stop_streaming(h: DaemonHandle, trace: str) -> None:
    """Stop recording: the relay session ends with the output (its viewers end once they
    have read it all); the ``relay`` file stays as it is."""
    h.client.write(f"{trace}/start", "0")


def emit(h: DaemonHandle, host: str, n: int) -> None:
    r = subprocess.run(
        [sys.executable, "-c", EMIT, host, str(n)],
        env=h.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr


def emit_on_every_cpu(h: DaemonHandle, host: str, n: int) -> None:
    """Events k = 0..N-1 of HOST, written by one process per CPU (each pinned to its CPU)."""
    cuts = [n * i // len(CPUS) for i in range(len(CPUS) + 1)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", EMIT_RANGE, str(cpu), host, str(a), str(b)],
            env=h.env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for cpu, a, b in zip(CPUS, cuts, cuts[1:], strict=False)
    ]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err


def wait_sessions(
    relayd: Relayd, want: set[tuple[str, str]], timeout: float = 10, streams: int = 1
) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        have = {(s.hostname, s.name): s for s in list_sessions(relayd.live_url)}
        if want <= set(have) and all(have[k].streams >= streams for k in want):
            return have
        assert time.monotonic() < deadline, (want, set(have))
        time.sleep(0.05)


def wait_clients(relayd: Relayd, key: tuple[str, str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        have = {(s.hostname, s.name): s for s in list_sessions(relayd.live_url)}
        if key in have and have[key].clients >= 1:
            return
        assert time.monotonic() < deadline, f"no viewer attached to {key}"
        time.sleep(0.05)


def ks_of(lines: list[str]) -> list[int]:
    return sorted(int(ln.rsplit("k = ", 1)[1].rstrip(" }")) for ln in lines)


# -- tracetui's own viewer -------------------------------------------------------------------


def test_viewer_lists_the_hosts_and_reads_each_hosts_events_exactly(
    relayd: Relayd, hosts: dict[str, DaemonHandle], tmp_path: Path
) -> None:
    for host, h in hosts.items():
        start_streaming(h, "fleet", relayd, tmp_path / f"local-{host}")
    have = wait_sessions(relayd, {(host, "fleet") for host in COUNTS})
    assert all(have[(host, "fleet")].live_timer_us == 100_000 for host in COUNTS)

    # The listing through the CLI: one line per session.
    h0 = next(iter(hosts.values()))
    r = h0.cli("watch", relayd.live_url)
    assert r.returncode == 0, r.stderr
    listed = [ln for ln in r.stdout.splitlines() if " fleet " in ln + " "]
    assert {ln.split()[0] for ln in listed} >= set(COUNTS), r.stdout

    got: dict[str, list[LiveBatch]] = {host: [] for host in COUNTS}
    done = {host: threading.Event() for host in COUNTS}
    watches = [
        RemoteWatch(
            f"{relayd.live_url}/host/{host}/fleet",
            got[host].append,
            on_end=lambda _w, e=done[host]: e.set(),
        ).start()
        for host in COUNTS
    ]
    try:
        for host, h in hosts.items():
            emit(h, host, COUNTS[host])
        # Seen live, while the sessions run.  (A stream that a producer adds and closes before
        # a viewer asks for new streams is never shown to it by relayd 2.13: so the sessions
        # end only once the views have their streams.)
        deadline = time.monotonic() + 20
        while any(sum(len(b.events) for b in got[host]) < n for host, n in COUNTS.items()):
            assert time.monotonic() < deadline, {h: sum(len(b.events) for b in got[h]) for h in got}
            time.sleep(0.05)
        for h in hosts.values():
            stop_streaming(h, "fleet")
        for host in COUNTS:
            assert done[host].wait(20), f"the view of {host} did not end"
    finally:
        for w in watches:
            w.close()
    for w in watches:
        assert w.error == "" and w.ended
    for host, n in COUNTS.items():
        events = [e for b in got[host] for e in b.events if e.name == "relay_ev"]
        errors = [m for b in got[host] for m in b.errors]
        assert sorted(e.fields["k"] for e in events) == list(range(n)), (
            host,
            len(got[host]),
            errors,
            list(watches[list(COUNTS).index(host)].trail),
            [ln for ln in hosts[host].log().splitlines() if "relay" in ln],
        )
        assert {e.fields["host"] for e in events} == {host}
        assert all(b.path == f"{host}/fleet/main" for b in got[host])
        assert not [it for b in got[host] for it in b.items if hasattr(it, "lost")]
        assert not [m for b in got[host] for m in b.errors]


def test_babeltrace2_and_tracetui_watch_read_live_sessions(
    hosts: dict[str, DaemonHandle], tmp_path: Path
) -> None:
    if BT2 is None:
        pytest.skip("babeltrace2 is not installed")
    relayd = start_relayd(tmp_path / "relayd")  # a relayd of its own
    try:
        _bt2_and_watch(relayd, hosts, tmp_path)
    finally:
        relayd.proc.terminate()
        relayd.proc.wait(5)


def _bt2_and_watch(relayd: Relayd, hosts: dict[str, DaemonHandle], tmp_path: Path) -> None:
    for host, h in hosts.items():
        start_streaming(h, "again", relayd, tmp_path / f"local-{host}")
    # Every per-CPU stream is announced at the session's start (1 metadata + one per CPU).
    have = wait_sessions(relayd, {(host, "again") for host in COUNTS}, streams=2)
    nstreams = {have[(host, "again")].streams for host in COUNTS}
    assert len(nstreams) == 1 and nstreams.pop() >= 1 + len(CPUS), have
    env = hosts["hostA"].env()
    # One viewer per relay session (relayd's rule): bt2 on hostA, tracetui watch on B and C.
    # bt2 2.0 attaches "from now" (only packets after it attached); with
    # session-not-found-action=end it ends once the session closed (by default it waits for
    # another session of that name for ever).
    bt = subprocess.Popen(
        [
            BT2,
            "--input-format=lttng-live",
            f"{relayd.live_url}/host/hostA/again",
            '--params=session-not-found-action="end"',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    tw_json = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tracetui",
            "watch",
            "--json",
            f"{relayd.live_url}/host/hostB/again",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    tw_text = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tracetui",
            "watch",
            "--count",
            "200",
            f"{relayd.live_url}/host/hostC/again",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    procs = (bt, tw_json, tw_text)
    try:
        for host in COUNTS:
            wait_clients(relayd, (host, "again"))
        for host, h in hosts.items():
            emit_on_every_cpu(h, host, COUNTS[host])
        # `start 0` alone ends each relay session: the viewers end once they read it all.
        for h in hosts.values():
            stop_streaming(h, "again")
        outs = [p.communicate(timeout=30) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    (bt_out, bt_err), (j_out, j_err), (t_out, t_err) = outs
    assert bt.returncode == 0, bt_err
    lines = [ln for ln in bt_out.splitlines() if " relay_ev:" in ln]
    assert ks_of(lines) == list(range(COUNTS["hostA"])), (bt_out[-500:], bt_err[-1500:])
    assert all('host = "hostA"' in ln for ln in lines)
    # Several streams (one per CPU), merged by time by babeltrace2 live.
    cpus = {ln.split("cpu_id = ")[1].split()[0] for ln in lines}
    assert len(cpus) == len(CPUS), cpus

    assert tw_json.returncode == 0, j_err
    objs = [json.loads(ln) for ln in j_out.splitlines()]
    evs = [o for o in objs if o.get("name") == "relay_ev"]
    ks = sorted(o["fields"]["k"] for o in evs if o["fields"]["host"] == "hostB")
    assert ks == list(range(COUNTS["hostB"])), j_err[-3000:]
    assert len(evs) == COUNTS["hostB"]

    assert tw_text.returncode == 0, t_err
    tl = t_out.splitlines()
    assert len(tl) == 200, tl[:3]
    assert all(' relay_ev: host="hostC", k=' in ln for ln in tl), tl[:3]
    assert all(" cpu " in ln and ln.startswith("[") for ln in tl)

    # The relayd's output directory, read afterwards: exactly each host's events.
    for host, n in COUNTS.items():
        (d,) = {m.parent for m in (relayd.out / host).glob("again-*/metadata")}
        r = subprocess.run([BT2, str(d)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        lines = [ln for ln in r.stdout.splitlines() if " relay_ev:" in ln]
        assert ks_of(lines) == list(range(n)), (host, len(lines))
        assert all(f'host = "{host}"' in ln for ln in lines)
    # And the sessions are gone for viewers (closed, not merely quiet).
    assert not [s for s in list_sessions(relayd.live_url) if s.name == "again"]


# -- errors: one sentence each ---------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracetui", "watch", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    "url",
    [
        "net://",
        "net://h:0",
        "net://h:x/host/a/b",
        "net://h/host/a",
        "net://h/sessions/a/b",
        "net://[::1",
    ],
)
def test_bad_live_url_is_one_sentence(url: str) -> None:
    with pytest.raises(LiveError) as e:
        parse_live_url(url)
    assert "\n" not in str(e.value) and "net://HOST" in str(e.value)
    r = _cli(url)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_live_url_forms() -> None:
    u = parse_live_url("net://relay.example")
    assert (u.host, u.port, u.hostname, u.session) == ("relay.example", 5344, None, None)
    u = parse_live_url("net://127.0.0.1:7000/host/web-1/my_trace")
    assert (u.port, u.hostname, u.session) == (7000, "web-1", "my_trace")
    assert str(u) == "net://127.0.0.1:7000/host/web-1/my_trace"
    assert parse_live_url("net://[::1]:7/host/h/s").host == "::1"


def test_refused_port_is_one_sentence_exit_3() -> None:
    (port,) = _free_ports(1)
    with pytest.raises(LiveUnreachable, match="refused"):
        list_sessions(f"net://127.0.0.1:{port}")
    for url in (f"net://127.0.0.1:{port}", f"net://127.0.0.1:{port}/host/h/s"):
        r = _cli(url)
        assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "refused" in r.stderr and "Traceback" not in r.stderr


def test_unknown_session_is_one_sentence(relayd: Relayd) -> None:
    with pytest.raises(LiveError, match="no live session 'nope' of host 'nohost'"):
        RemoteWatch(f"{relayd.live_url}/host/nohost/nope", lambda b: None)
    r = _cli(f"{relayd.live_url}/host/nohost/nope")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "nope" in r.stderr and "Traceback" not in r.stderr


# -- a real LTTng-UST session streamed live to the same relayd -------------------------------

LTTNG_THREADS, LTTNG_PER_THREAD = 2, 200


def test_lttng_ust_live_session_is_listed_and_read(relayd: Relayd, tmp_path: Path) -> None:
    for tool in ("lttng", "lttng-sessiond", "gcc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    prog = build_provider(tmp_path / "prov")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "LTTNG_HOME": str(home)}
    env.pop("LTTNG_UST_REGISTER_TIMEOUT", None)

    def run(*cmd: str, extra: dict[str, str] | None = None) -> None:
        p = subprocess.run(
            cmd, env={**env, **(extra or {})}, capture_output=True, text=True, timeout=30
        )
        assert p.returncode == 0, f"{cmd}: {p.stderr or p.stdout}"

    sd = subprocess.Popen(
        ["lttng-sessiond"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    watch: RemoteWatch | None = None
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["lttng", "list"], env=env, capture_output=True).returncode:
            if time.monotonic() > deadline or sd.poll() is not None:
                pytest.skip("the private lttng-sessiond did not start")
            time.sleep(0.1)
        run(
            "lttng",
            "create",
            "ustlive",
            "--live=100000",
            f"--ctrl-url=tcp://127.0.0.1:{relayd.ctrl}",
            f"--data-url=tcp://127.0.0.1:{relayd.data}",
        )
        run("lttng", "enable-event", "-u", "prov:*")
        run("lttng", "start", "ustlive")
        sessions = [s for s in list_sessions(relayd.live_url) if s.name == "ustlive"]
        assert sessions, list_sessions(relayd.live_url)
        host = sessions[0].hostname
        got: list[LiveBatch] = []
        done = threading.Event()
        watch = RemoteWatch(
            f"{relayd.live_url}/host/{host}/ustlive", got.append, on_end=lambda _w: done.set()
        ).start()
        # (the program waits until the sessiond registered it, so no event is missed)
        run(
            str(prog),
            str(LTTNG_THREADS),
            str(LTTNG_PER_THREAD),
            extra={"LTTNG_UST_REGISTER_TIMEOUT": "-1"},
        )
        n = LTTNG_THREADS * LTTNG_PER_THREAD
        deadline = time.monotonic() + 20
        while sum(len(b.events) for b in got) < 2 * n:
            assert time.monotonic() < deadline, (
                sum(len(b.events) for b in got),
                watch.error,
                list(watch.trail),
                watch.statuses,
                [m for b in got for m in b.errors][:3],
                [(f.name, f.stat().st_size) for f in relayd.out.rglob("*") if f.is_file()],
            )
            time.sleep(0.05)
        run("lttng", "stop", "ustlive")
        run("lttng", "destroy", "ustlive")
        assert done.wait(20), "the view did not end with the destroyed session"
        assert watch.error == "", watch.error
    finally:
        if watch is not None:
            watch.close()
        sd.terminate()
        try:
            sd.wait(10)
        except subprocess.TimeoutExpired:
            sd.kill()
    n = LTTNG_THREADS * LTTNG_PER_THREAD
    events = [e for b in got for e in b.events]
    assert not [m for b in got for m in b.errors]
    assert not [it for b in got for it in b.items if hasattr(it, "lost")]
    ticks = sorted(e.fields["k"] for e in events if e.name == "prov:tick")
    assert ticks == sorted(-i for i in range(LTTNG_PER_THREAD) for _ in range(LTTNG_THREADS))
    evs = [e.fields for e in events if e.name == "prov:ev"]
    assert sorted(f["i"] for f in evs) == sorted(
        i for i in range(LTTNG_PER_THREAD) for _ in range(LTTNG_THREADS)
    )
    assert all(f["s"] == "hello" and f["arr"] == [1, -2, 3] for f in evs)
    # `tracetui watch` prints them as `tracetui dump` prints LTTng events.
    from tracetui.cli.watch import format_remote_batch

    b = next(b for b in got if any(e.name == "prov:tick" for e in b.events))
    lines = format_remote_batch(b, False)
    assert len(lines) == len(b.items) and all(ln.startswith("[") for ln in lines)
    assert any(" prov:tick: k=" in ln for ln in lines), lines[:2]
    objs = [json.loads(x) for x in format_remote_batch(b, True)]
    assert {o["name"] for o in objs} <= {"prov:tick", "prov:ev"}
    assert all(("k" if o["name"] == "prov:tick" else "i") in o["fields"] for o in objs)
    # The same events as babeltrace2 reads from the relayd's files afterwards.
    if BT2 is not None:
        bt = subprocess.run(
            [BT2, str(relayd.out / host)], capture_output=True, text=True, timeout=60
        )
        assert bt.returncode == 0, bt.stderr
        assert sum(" prov:" in ln for ln in bt.stdout.splitlines()) == len(events) == 2 * n


# -- the console's remote live view ----------------------------------------------------------


async def test_console_opens_a_remote_session_live(
    relayd: Relayd, hosts: dict[str, DaemonHandle], tmp_path: Path
) -> None:
    from textual.widgets import ListView

    from tracetui.app import TraceConsole
    from tracetui.core.client.state import NamespaceState
    from tracetui.screens.name_dialog import NameDialog
    from tracetui.widgets.live_view import LiveViewPane

    h = hosts["hostA"]
    start_streaming(h, "console", relayd, tmp_path / "local-console")
    wait_sessions(relayd, {("hostA", "console")})
    app = TraceConsole(state=NamespaceState())  # no daemon: the view reads the relayd only
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.main_screen
        # The bare relayd URL lists its sessions to choose from.
        screen.action_open_remote()
        await pilot.pause()
        assert isinstance(app.screen, NameDialog)
        await pilot.click("#name")
        await pilot.press(*relayd.live_url, "enter")
        for _ in range(50):
            await pilot.pause(0.05)
            if isinstance(app.screen, NameDialog) and app.screen.query(ListView):
                break
        items = [it.name for it in app.screen.query_one(ListView).children]
        url = f"{relayd.live_url}/host/hostA/console"
        assert url in items, items
        app.screen.dismiss(url)
        for _ in range(50):
            await pilot.pause(0.05)
            if screen.query(LiveViewPane):
                break
        (pane,) = screen.query(LiveViewPane)
        assert pane.channel == "remote/hostA/console"
        await asyncio.to_thread(emit, h, "hostA", 150)
        for _ in range(200):
            await pilot.pause(0.05)
            if pane.view.event_count >= 150:
                break
        assert pane.view.event_count == 150
        lines = [pane.view._plain(row) for row in pane.view._events]
        assert all(" relay_ev " in ln and 'host="hostA"' in ln for ln in lines), lines[:2]
        # A saved layout holds the remote view by its URL, and reads back the same.
        from tracetui.core import layout as L

        (view,) = screen._views()
        assert (view.channel, view.remote) == ("remote/hostA/console", url)
        saved = L.Layout(views=(view,))
        assert L.loads(L.dumps(saved)) == saved
        await asyncio.to_thread(stop_streaming, h, "console")
        screen.action_close_live()
        await pilot.pause(0.2)
        assert not screen.query(LiveViewPane)


def test_remote_view_shows_the_rings_losses_as_rows(
    relayd: Relayd, hosts: dict[str, DaemonHandle], tmp_path: Path
) -> None:
    """Events the ring discarded (tiny buffers, a fast writer) arrive as loss rows, and with the
    events they add up to what was emitted, as the local trace says."""
    h = hosts["hostB"]
    c = h.client
    c.mkdir("lossy")
    c.write("lossy/main/subbuf_size", "4K")
    c.write("lossy/main/n_subbuf", "2")
    c.write("lossy/output", str(tmp_path / "local-lossy"))
    c.write("lossy/relay", relayd.producer_url)
    c.write("lossy/start", "1")
    wait_sessions(relayd, {("hostB", "lossy")})
    got: list[LiveBatch] = []
    done = threading.Event()
    w = RemoteWatch(
        f"{relayd.live_url}/host/hostB/lossy", got.append, on_end=lambda _w: done.set()
    ).start()
    n = 30000
    try:
        emit(h, "hostB", n)
        deadline = time.monotonic() + 20

        def total() -> int:
            return sum(len(b.events) for b in got) + sum(
                it.lost for b in got for it in b.items if isinstance(it, Loss)
            )

        while total() < n:
            assert time.monotonic() < deadline, (total(), w.error, list(w.trail))
            time.sleep(0.05)
        stop_streaming(h, "lossy")
        assert done.wait(20)
    finally:
        w.close()
    losses = [it for b in got for it in b.items if isinstance(it, Loss)]
    assert losses and all(x.unit == "events" for x in losses), (
        "no discarded events: buffers too big?"
    )
    events = [e for b in got for e in b.events if e.name == "relay_ev"]
    assert len(events) + sum(x.lost for x in losses) == n
    ks = [e.fields["k"] for e in events]
    assert len(set(ks)) == len(ks)
    dump = h.cli("dump", str(tmp_path / "local-lossy"))
    assert sum(" relay_ev:" in ln for ln in dump.stdout.splitlines()) == len(events)


def test_a_relayd_that_goes_away_ends_watch_with_exit_3(
    hosts: dict[str, DaemonHandle], tmp_path: Path
) -> None:
    own = start_relayd(tmp_path / "relayd")
    h = hosts["hostC"]
    try:
        start_streaming(h, "dying", own, tmp_path / "local-dying")
        wait_sessions(own, {("hostC", "dying")})
        p = subprocess.Popen(
            [sys.executable, "-m", "tracetui", "watch", f"{own.live_url}/host/hostC/dying"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=h.env(),
        )
        try:
            wait_clients(own, ("hostC", "dying"))
            own.proc.kill()
            own.proc.wait(5)
            _, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 3, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert "relayd at" in err
    finally:
        if own.proc.poll() is None:
            own.proc.kill()
            own.proc.wait(5)
        h.client.write("dying/start", "0")
        h.client.write("dying/relay", "")


# -- the relay session follows the recording --------------------------------------------------


def wait_relay_closed(h: DaemonHandle, trace: str, sessions: int, timeout: float = 15) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        s = json.loads(h.client.read("recording"))["relays"][trace]
        if s["state"] == "closed" and s["sessions"] == sessions and not s["queued_bytes"]:
            return s  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, s
        time.sleep(0.05)


@pytest.mark.skipif(BT2 is None, reason="babeltrace2 is not installed")
def test_stop_ends_the_relay_session_and_brief_runs_reach_the_relayd(
    relayd: Relayd, hosts: dict[str, DaemonHandle], tmp_path: Path
) -> None:
    """Each recording run is one relay session, closed by `start 0` (the relay file stays):
    the session leaves relayd's live listing, and a run of a few milliseconds is on the
    relayd's disk whole, every per-CPU stream included.  In the second run (buffers written
    before, so the ring makes no empty first packets) babeltrace2 live shows the events of a
    writer on one CPU while the session runs: it does not wait on the quiet CPUs' streams."""
    assert BT2 is not None
    h = hosts["hostC"]
    start_streaming(h, "brief", relayd, tmp_path / "local-brief")
    runs = {"run1": 40, "run2": 60, "run3": 30}
    for i, (tag, n) in enumerate(runs.items(), 1):
        if i > 1:
            h.client.write("brief/start", "1")
        wait_sessions(relayd, {("hostC", "brief")}, streams=1 + len(CPUS))
        if i == 1:
            emit_on_every_cpu(h, tag, n)
        elif i == 2:
            _live_while_running(relayd, h, tag, n)
        else:
            _remote_watch_while_running(relayd, h, tag, n)
        stop_streaming(h, "brief")
        s = wait_relay_closed(h, "brief", sessions=i)
        assert s["packets_lost"] == 0 and s["reconnects"] == 0 and s["error"] == "", s
        deadline = time.monotonic() + 10
        listed = lambda: [  # noqa: E731
            x for x in list_sessions(relayd.live_url) if (x.hostname, x.name) == ("hostC", "brief")
        ]
        while listed():
            assert time.monotonic() < deadline, "the closed relay session is still listed"
            time.sleep(0.05)
    assert h.client.read("brief/relay").startswith("net://127.0.0.1:")  # still set
    # Everything of both runs is on the relayd's disk (one directory per session).
    dirs = sorted({m.parent for m in (relayd.out / "hostC").glob("brief-*/metadata")})
    assert len(dirs) == len(runs), list((relayd.out / "hostC").rglob("*"))
    lines = []
    for d in dirs:
        r = subprocess.run([BT2, str(d)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        lines += [ln for ln in r.stdout.splitlines() if " relay_ev:" in ln]
    for tag, n in runs.items():
        assert ks_of([ln for ln in lines if f'host = "{tag}"' in ln]) == list(range(n)), tag
    assert len(lines) == sum(runs.values())


def _remote_watch_while_running(relayd: Relayd, h: DaemonHandle, tag: str, n: int) -> None:
    """tracetui's viewer of a later run: the streams' first packets (header-only repeats of
    the last ones) are no losses, and the N events arrive while the session runs."""
    got: list[LiveBatch] = []
    w = RemoteWatch(f"{relayd.live_url}/host/hostC/brief", got.append).start()
    try:
        wait_clients(relayd, ("hostC", "brief"))
        r = subprocess.run(
            [sys.executable, "-c", EMIT_RANGE, str(CPUS[-1]), tag, "0", str(n)],
            env=h.env(), capture_output=True, text=True, timeout=60,
        )
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 15
        while sum(len(b.events) for b in got) < n:
            assert time.monotonic() < deadline, (sum(len(b.events) for b in got), w.error)
            time.sleep(0.05)
    finally:
        w.close()
    assert sorted(e.fields["k"] for b in got for e in b.events) == list(range(n))
    assert not [it for b in got for it in b.items if isinstance(it, Loss)]
    assert not [m for b in got for m in b.errors]


def _live_while_running(relayd: Relayd, h: DaemonHandle, tag: str, n: int) -> None:
    """babeltrace2 live prints N events of one CPU's writer before the session ends."""
    assert BT2 is not None
    stdbuf = shutil.which("stdbuf")
    if stdbuf is None:
        pytest.skip("stdbuf (coreutils) is not installed")
    bt = subprocess.Popen(
        [stdbuf, "-oL", BT2, "--input-format=lttng-live",
         f"{relayd.live_url}/host/hostC/brief", '--params=session-not-found-action="end"'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen: list[str] = []
    got_all = threading.Event()

    def read() -> None:
        assert bt.stdout is not None
        for ln in bt.stdout:
            if " relay_ev:" in ln:
                seen.append(ln.rstrip())
                if len(seen) == n:
                    got_all.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_clients(relayd, ("hostC", "brief"))
        r = subprocess.run(
            [sys.executable, "-c", EMIT_RANGE, str(CPUS[0]), tag, "0", str(n)],
            env=h.env(), capture_output=True, text=True, timeout=60,
        )
        assert r.returncode == 0, r.stderr
        assert got_all.wait(15), f"babeltrace2 live showed {len(seen)} of {n} events"
        stop_streaming(h, "brief")
        assert bt.wait(20) == 0, bt.stderr.read() if bt.stderr else ""
    finally:
        if bt.poll() is None:
            bt.kill()
            bt.wait()
    reader.join(5)
    assert ks_of(seen) == list(range(n))
