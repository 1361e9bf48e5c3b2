"""Every rule of the control namespace, through a real daemon process and the real client.

Buffers are checked where they live: the test maps the daemon's shared memory by name
(``ring.Channel.open``) to see sizes, the flight flag, flushes and counters for itself.
A few rules that have no wire-visible effect (routing, hooks) are checked on a Namespace object.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tracetui.core import ring
from tracetui.core.client import Client, Entry
from tracetui.core.daemon.namespace import (
    DEFAULT_N_SUBBUF,
    DEFAULT_SUBBUF_SIZE,
    Namespace,
    Trace,
    TraceChannel,
)
from tracetui.core.errors import TraceError
from tracetui.core.model.stats import Stats, parse_stats

if TYPE_CHECKING:
    from conftest import DaemonHandle


@pytest.fixture
def c(shared_daemon: DaemonHandle) -> Client:
    return shared_daemon.client


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A trace name of this test's own, so tests can share one daemon."""
    return re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:60]


def refused(code: int, fn: Callable[..., Any], *args: Any) -> str:
    """Call FN, expect a TraceError with errno CODE, return its sentence."""
    with pytest.raises(TraceError) as exc:
        fn(*args)
    assert exc.value.errno == code, f"{exc.value.code}: {exc.value}"
    text = str(exc.value)
    assert text and "\n" not in text and "Traceback" not in text
    return text


def shm_of(d: DaemonHandle, trace: str, channel: str) -> str:
    return f"/tracetui-{os.getuid()}-{d.pid}-{trace}-{channel}"


def shm_exists(d: DaemonHandle, trace: str, channel: str) -> bool:
    return os.path.exists("/dev/shm" + shm_of(d, trace, channel))


@pytest.fixture
def mapped() -> Iterator[Callable[[str], ring.Channel]]:
    """Map daemon buffers by name; unmapped at the end of the test."""
    opened: list[ring.Channel] = []

    def open_(shm: str) -> ring.Channel:
        ch = ring.Channel.open(shm)
        opened.append(ch)
        return ch

    yield open_
    for ch in opened:
        ch.close()


# ------------------------------------------------------------------------------ traces


def test_mkdir_creates_a_trace_with_a_default_main_channel(c: Client, name: str) -> None:
    c.mkdir(name)
    assert Entry(name, "dir", True) in c.ls()
    entries = c.ls(name)
    assert [e.name for e in entries if e.kind == "dir"] == ["main"]
    assert {e.name for e in entries if e.kind == "file"} == {
        "start",
        "filter",
        "output",
        "snapshot",
        "relay",
    }
    main = f"{name}/main"
    assert c.read(f"{main}/global") == "0"
    assert c.read(f"{main}/flight") == "0"
    assert c.read(f"{main}/allocate") == "0"
    assert c.read(f"{main}/subbuf_size") == str(DEFAULT_SUBBUF_SIZE)
    assert c.read(f"{main}/n_subbuf") == str(DEFAULT_N_SUBBUF)
    assert c.read(f"{name}/start") == "0"
    assert c.read(f"{name}/filter") == "*"
    assert [e.name for e in c.ls(main)] == [
        "subbuf_size", "n_subbuf", "flight", "global", "allocate", "filter", "stats",
    ]  # fmt: skip
    assert Entry("stats", "file", False) in c.ls(main)


def test_mkdir_refuses_duplicates_bad_and_reserved_names(c: Client, name: str) -> None:
    c.mkdir(name)
    assert "already exists" in refused(errno.EEXIST, c.mkdir, name)
    c.mkdir(f"{name}/chan")
    refused(errno.EEXIST, c.mkdir, f"{name}/chan")
    refused(errno.EEXIST, c.mkdir, f"{name}/main")
    refused(errno.EEXIST, c.mkdir, "markers")
    refused(errno.EEXIST, c.mkdir, f"{name}/start")  # a file of the trace
    refused(errno.EINVAL, c.mkdir, "-dash")
    refused(errno.EINVAL, c.mkdir, "sp ace")
    refused(errno.EINVAL, c.mkdir, "x" * 65)
    refused(errno.EINVAL, c.mkdir, f"{name}/../other")
    assert "mkdir" in refused(errno.ENOENT, c.mkdir, "no_such_trace/chan")
    refused(errno.EPERM, c.mkdir, f"{name}/chan/deeper")


def test_paths_errors_read_only_files_and_directories(c: Client, name: str) -> None:
    c.mkdir(name)
    refused(errno.EISDIR, c.read, name)
    refused(errno.EISDIR, c.read, f"{name}/main")
    refused(errno.EISDIR, c.write, f"{name}/main", "1")
    refused(errno.EACCES, c.write, f"{name}/main/stats", "0")
    refused(errno.EACCES, c.write, "markers", "x")
    refused(errno.ENOENT, c.read, f"{name}/main/nothing")
    refused(errno.ENOENT, c.read, "nothing")
    refused(errno.ENOTDIR, c.rmdir, f"{name}/start")
    refused(errno.ENOTDIR, c.rmdir, "markers")
    assert c.ls(f"{name}/main/flight") == [Entry("flight", "file", True)]
    assert c.read(f"/{name}//main/flight/") == "0"  # slashes are forgiven


def test_rmdir_main_is_refused_other_channels_go(c: Client, name: str) -> None:
    c.mkdir(name)
    c.mkdir(f"{name}/extra")
    assert f"tracetui rmdir {name}" in refused(errno.EPERM, c.rmdir, f"{name}/main")
    c.rmdir(f"{name}/extra")
    assert [e.name for e in c.ls(name) if e.kind == "dir"] == ["main"]
    c.rmdir(name)
    assert name not in [e.name for e in c.ls()]


# ------------------------------------------------------------------------------ settings


def test_settings_change_freely_until_allocated(
    c: Client, name: str, shared_daemon: DaemonHandle, mapped: Callable[[str], ring.Channel]
) -> None:
    c.mkdir(name)
    ch = f"{name}/main"
    c.write(f"{ch}/subbuf_size", "256K")
    assert c.read(f"{ch}/subbuf_size") == "262144"
    c.write(f"{ch}/subbuf_size", "8192")
    c.write(f"{ch}/n_subbuf", "4")
    c.write(f"{ch}/global", "1")
    c.write(f"{ch}/global", "0")
    c.write(f"{ch}/global", "1")
    c.write(f"{ch}/allocate", "1")
    buf = mapped(shm_of(shared_daemon, name, "main"))
    assert (buf.subbuf_size, buf.n_subbuf, buf.nbuf, buf.is_global) == (8192, 4, 1, True)
    for setting, value in (("subbuf_size", "16K"), ("n_subbuf", "8"), ("global", "0")):
        text = refused(errno.EBUSY, c.write, f"{ch}/{setting}", value)
        assert "allocated" in text and f"{ch}/allocate 0" in text
    assert c.read(f"{ch}/subbuf_size") == "8192"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("subbuf_size", "1000"),
        ("subbuf_size", "12K"),
        ("subbuf_size", "1G"),
        ("subbuf_size", "lots"),
        ("n_subbuf", "1"),
        ("n_subbuf", "3"),
        ("n_subbuf", "eight"),
        ("flight", "yes"),
        ("global", "2"),
        ("allocate", ""),
    ],
)
def test_bad_settings_are_refused_with_a_sentence(
    c: Client, name: str, setting: str, value: str
) -> None:
    c.mkdir(name)
    before = c.read(f"{name}/main/{setting}")
    text = refused(errno.EINVAL, c.write, f"{name}/main/{setting}", value)
    assert text
    assert c.read(f"{name}/main/{setting}") == before


def test_flight_toggles_at_any_time_even_while_tracing(
    c: Client, name: str, shared_daemon: DaemonHandle, mapped: Callable[[str], ring.Channel]
) -> None:
    c.mkdir(name)
    c.write(f"{name}/main/subbuf_size", "4K")
    c.write(f"{name}/main/n_subbuf", "2")
    c.write(f"{name}/main/flight", "1")
    c.write(f"{name}/start", "1")
    buf = mapped(shm_of(shared_daemon, name, "main"))
    assert buf.flight
    c.write(f"{name}/main/flight", "0")
    assert not buf.flight and c.read(f"{name}/main/flight") == "0"
    c.write(f"{name}/main/flight", "1")
    assert buf.flight
    c.write(f"{name}/start", "0")


# ------------------------------------------------------------------------------ allocation


def test_allocate_creates_buffers_and_allocate_0_frees_them(
    c: Client, name: str, shared_daemon: DaemonHandle
) -> None:
    c.mkdir(name)
    c.mkdir(f"{name}/processes")
    c.write(f"{name}/processes/subbuf_size", "4K")
    assert not shm_exists(shared_daemon, name, "processes")
    c.write(f"{name}/processes/allocate", "1")
    assert c.read(f"{name}/processes/allocate") == "1"
    assert shm_exists(shared_daemon, name, "processes")
    assert (
        oct(os.stat("/dev/shm" + shm_of(shared_daemon, name, "processes")).st_mode & 0o777)
        == "0o600"
    )
    c.write(f"{name}/processes/allocate", "1")  # again: nothing to do
    c.write(f"{name}/processes/allocate", "0")
    assert c.read(f"{name}/processes/allocate") == "0"
    assert not shm_exists(shared_daemon, name, "processes")


def test_start_allocates_what_is_missing_and_nothing_when_all_is_allocated(
    c: Client, name: str, shared_daemon: DaemonHandle
) -> None:
    c.mkdir(name)
    c.mkdir(f"{name}/b")
    for ch in ("main", "b"):
        c.write(f"{name}/{ch}/subbuf_size", "4K")
    c.write(f"{name}/b/allocate", "1")
    inode_b = os.stat("/dev/shm" + shm_of(shared_daemon, name, "b")).st_ino
    before = int(shared_daemon.status()["allocations"])
    c.write(f"{name}/start", "1")
    assert int(shared_daemon.status()["allocations"]) == before + 1  # only main
    assert c.read(f"{name}/main/allocate") == "1"
    assert os.stat("/dev/shm" + shm_of(shared_daemon, name, "b")).st_ino == inode_b
    c.write(f"{name}/start", "0")

    # Everything allocated now: start does no allocation work at all.
    before = int(shared_daemon.status()["allocations"])
    inodes = {
        ch: os.stat("/dev/shm" + shm_of(shared_daemon, name, ch)).st_ino for ch in ("main", "b")
    }
    c.write(f"{name}/start", "1")
    assert int(shared_daemon.status()["allocations"]) == before
    assert {
        ch: os.stat("/dev/shm" + shm_of(shared_daemon, name, ch)).st_ino for ch in ("main", "b")
    } == inodes
    c.write(f"{name}/start", "1")  # already running: nothing happens
    assert c.read(f"{name}/start") == "1"
    c.write(f"{name}/start", "0")


def test_stop_flushes_partial_subbuffers() -> None:
    # In-process, so no consumer drains the packet before the test looks at it.
    ns = Namespace(shm_prefix=f"/tracetui-{os.getuid()}-{os.getpid()}-flush")
    try:
        ns.mkdir("t")
        ns.write("t/main/global", "1")
        ns.write("t/start", "1")
        buf = ns.traces["t"].channels["main"].buffers
        assert buf is not None
        assert buf.write(7, b"x" * 24)
        assert buf.get_packet(0) is None  # the sub-buffer is still open
        ns.write("t/start", "0")
        packet = buf.get_packet(0)
        assert packet is not None and bytes(packet[:4]) == b"\xc1\x1f\xfc\xc1"
        assert bytes(packet).find(b"x" * 24) > 0
        buf.put_packet(0)
    finally:
        ns.shutdown()


def test_stop_through_the_daemon_closes_the_open_packet(
    c: Client, name: str, shared_daemon: DaemonHandle, mapped: Callable[[str], ring.Channel]
) -> None:
    c.mkdir(name)
    c.write(f"{name}/main/global", "1")
    c.write(f"{name}/main/subbuf_size", "1M")
    c.write(f"{name}/start", "1")
    buf = mapped(shm_of(shared_daemon, name, "main"))
    assert buf.write(7, b"x" * 24)
    c.write(f"{name}/start", "0")
    # Closed by the stop (a consumer, if the daemon has one, may have taken it since).
    assert parse_stats(c.read(f"{name}/main/stats"))["total"].packets == 1


def test_freeing_and_removing_a_running_trace_is_refused(
    c: Client, name: str, shared_daemon: DaemonHandle
) -> None:
    c.mkdir(name)
    c.write(f"{name}/main/subbuf_size", "4K")
    c.mkdir(f"{name}/other")
    c.write(f"{name}/other/subbuf_size", "4K")
    c.write(f"{name}/start", "1")
    assert f"{name}/start 0" in refused(errno.EBUSY, c.rmdir, name)
    refused(errno.EBUSY, c.rmdir, f"{name}/other")
    refused(errno.EBUSY, c.write, f"{name}/main/allocate", "0")
    assert shm_exists(shared_daemon, name, "main")
    c.write(f"{name}/start", "0")
    c.rmdir(name)  # stopped and allocated: the buffers go with it
    assert not shm_exists(shared_daemon, name, "main")
    assert not shm_exists(shared_daemon, name, "other")


def test_a_channel_can_be_added_while_the_trace_runs(
    c: Client, name: str, shared_daemon: DaemonHandle
) -> None:
    c.mkdir(name)
    c.write(f"{name}/main/subbuf_size", "4K")
    c.write(f"{name}/start", "1")
    c.mkdir(f"{name}/late")
    assert c.read(f"{name}/late/allocate") == "0"
    c.write(f"{name}/late/subbuf_size", "8K")
    c.write(f"{name}/late/allocate", "1")
    assert shm_exists(shared_daemon, name, "late")
    c.write(f"{name}/start", "0")


def test_a_failed_allocation_says_how_much_and_leaves_nothing(
    c: Client, name: str, shared_daemon: DaemonHandle
) -> None:
    c.mkdir(name)
    c.mkdir(f"{name}/huge")
    c.write(f"{name}/huge/subbuf_size", "64M")
    c.write(f"{name}/huge/n_subbuf", "4096")
    text = refused(errno.ENOSPC, c.write, f"{name}/huge/allocate", "1")
    assert "GiB" in text and f"{name}/huge" in text
    assert c.read(f"{name}/huge/allocate") == "0"
    assert not shm_exists(shared_daemon, name, "huge")

    # start allocates main, then fails on huge: main is freed again, nothing runs.
    c.write(f"{name}/main/subbuf_size", "4K")
    text = refused(errno.ENOSPC, c.write, f"{name}/start", "1")
    assert "GiB" in text
    assert c.read(f"{name}/start") == "0"
    assert c.read(f"{name}/main/allocate") == "0"
    assert not shm_exists(shared_daemon, name, "main")
    assert not shm_exists(shared_daemon, name, "huge")

    # A channel allocated before the failed start stays as it was.
    c.write(f"{name}/main/allocate", "1")
    refused(errno.ENOSPC, c.write, f"{name}/start", "1")
    assert c.read(f"{name}/main/allocate") == "1"
    c.rmdir(f"{name}/huge")
    c.write(f"{name}/start", "1")
    c.write(f"{name}/start", "0")


# ------------------------------------------------------------------------------ filters


def test_trace_filter_rules(c: Client, name: str) -> None:
    c.mkdir(name)
    f = f"{name}/filter"
    assert c.read(f) == "*"
    c.write(f, "0")
    assert c.read(f) == "0"
    c.write(f, "sched_switch")
    c.write(f, "proc_*")
    assert c.read(f) == "sched_switch\nproc_*"
    c.write(f, "!sched_switch")
    assert c.read(f) == "proc_*"
    c.write(f, "0")
    c.write(f, "*")
    c.write(f, "!irq_entry")
    assert c.read(f) == "*\n!irq_entry"
    refused(errno.EINVAL, c.write, f, "bad/rule")
    assert c.read(f) == "*\n!irq_entry"


def test_channel_filter_rules(c: Client, name: str) -> None:
    c.mkdir(name)
    c.mkdir(f"{name}/processes")
    f = f"{name}/processes/filter"
    assert c.read(f) == "0"  # a new channel routes nothing to itself
    c.write(f, "proc_exec")
    c.write(f, "proc_exit")
    assert c.read(f) == "proc_exec\nproc_exit"
    c.write(f, "!proc_exit")
    assert c.read(f) == "proc_exec"


def test_routing_and_trace_filters_decide_targets() -> None:
    ns = Namespace(shm_prefix=f"/tracetui-{os.getuid()}-{os.getpid()}-routing")
    try:
        ns.mkdir("mytrace")
        ns.mkdir("mytrace/processes")
        ns.mkdir("mytrace/unallocated")
        for ch in ("main", "processes", "unallocated"):
            ns.write(f"mytrace/{ch}/subbuf_size", "4K")
        ns.write("mytrace/processes/filter", "proc_*")
        ns.write("mytrace/filter", "0 sched_switch proc_exec")
        ns.mkdir("other")
        ns.write("other/main/subbuf_size", "4K")
        assert ns.targets("sched_switch") == []  # nothing runs yet
        ns.write("mytrace/start", "1")
        ns.write("other/start", "1")
        ns.mkdir("mytrace/late")
        ns.write("mytrace/late/filter", "sched_switch")  # not allocated: does not take part yet

        def where(event: str) -> list[str]:
            return sorted(ch.path for _t, ch in ns.targets(event))

        assert where("sched_switch") == ["mytrace/main", "other/main"]
        assert where("proc_exec") == ["mytrace/processes", "other/main"]
        assert where("proc_exit") == ["other/main"]  # mytrace's filter does not accept it
        ns.write("mytrace/late/subbuf_size", "4K")
        ns.write("mytrace/late/allocate", "1")
        assert where("sched_switch") == ["mytrace/late", "other/main"]
        ns.write("other/start", "0")
        assert where("irq_entry") == []
    finally:
        ns.shutdown()
    assert not [n for n in os.listdir("/dev/shm") if "-routing-" in n]


def test_hooks_can_refuse_start_and_allocation_is_undone() -> None:
    ns = Namespace(shm_prefix=f"/tracetui-{os.getuid()}-{os.getpid()}-hooks")
    seen: list[str] = []

    def refuse(t: Trace) -> None:
        raise TraceError(errno.EACCES, "the output directory is not writable")

    def allocated(t: Trace, ch: TraceChannel) -> None:
        seen.append(f"alloc {ch.path}")

    def freeing(t: Trace, ch: TraceChannel) -> None:
        seen.append(f"free {ch.path}")

    ns.hooks.starting.append(refuse)
    ns.hooks.allocated.append(allocated)
    ns.hooks.freeing.append(freeing)
    try:
        ns.mkdir("t")
        ns.write("t/main/subbuf_size", "4K")
        with pytest.raises(TraceError, match="not writable"):
            ns.write("t/start", "1")
        assert seen == ["alloc t/main", "free t/main"]
        assert ns.read("t/start") == "0" and ns.read("t/main/allocate") == "0"
    finally:
        ns.shutdown()


# ------------------------------------------------------------------------------ the rest


def test_markers_lists_registered_markers(c: Client) -> None:
    text = c.read("markers")
    for line in filter(None, text.splitlines()):
        ident, marker, *_fmt = line.split(" ", 2)
        assert ident.isdigit() and marker


def test_stats_per_cpu_and_total_from_the_buffer_counters(
    c: Client, name: str, shared_daemon: DaemonHandle, mapped: Callable[[str], ring.Channel]
) -> None:
    c.mkdir(name)
    c.write(f"{name}/main/subbuf_size", "4K")
    c.write(f"{name}/main/n_subbuf", "2")
    before = parse_stats(c.read(f"{name}/main/stats"))
    assert list(before) == ["total"] and before["total"] == Stats()
    c.write(f"{name}/start", "1")
    buf = mapped(shm_of(shared_daemon, name, "main"))
    ncpu = buf.nbuf
    attempts = [0] * ncpu
    for _ in range(3):
        assert buf.write(1, b"abcdefgh", buffer=0)
        attempts[0] += 1
    for _ in range(2000):  # far more than 2 x 4K sub-buffers hold: some are discarded
        buf.write(1, b"y" * 100, buffer=ncpu - 1)
        attempts[ncpu - 1] += 1
    # The daemon's consumer may take a packet while we read (its live timer flushes a quiet
    # buffer): compare against the buffers' own counters read unchanged on both sides.
    for _ in range(50):
        local = [buf.stats(i) for i in range(ncpu)]
        stats = parse_stats(c.read(f"{name}/main/stats"))
        if local == [buf.stats(i) for i in range(ncpu)]:
            break
    assert list(stats) == [f"cpu{i}" for i in range(ncpu)] + ["total"]
    for i in range(ncpu):
        s = stats[f"cpu{i}"]
        assert s.recorded + s.discarded == attempts[i] and s.too_big == 0
        assert s == local[i]
    assert stats[f"cpu{ncpu - 1}"].discarded > 0
    assert stats["total"] == sum((stats[f"cpu{i}"] for i in range(ncpu)), Stats())
    c.write(f"{name}/start", "0")


def test_output_defaults_under_the_user_data_dir_and_is_fixed_while_running(
    c: Client, name: str, shared_daemon: DaemonHandle
) -> None:
    c.mkdir(name)
    out = c.read(f"{name}/output")
    assert re.search(rf"tracetui/traces/{name}-\d{{8}}-\d{{6}}$", out), out
    refused(errno.EINVAL, c.write, f"{name}/output", "relative/dir")
    base = shared_daemon.runtime_dir / name
    c.write(f"{name}/output", f"{base}/somewhere/../elsewhere")
    assert c.read(f"{name}/output") == f"{base}/elsewhere"
    c.write(f"{name}/main/subbuf_size", "4K")
    c.write(f"{name}/start", "1")
    refused(errno.EBUSY, c.write, f"{name}/output", "/tmp/x")
    c.write(f"{name}/start", "0")


def test_snapshot_needs_buffers(c: Client, name: str) -> None:
    c.mkdir(name)
    refused(errno.EINVAL, c.write, f"{name}/snapshot", "1")
    refused(errno.EINVAL, c.write, f"{name}/snapshot", "0")
    assert c.read(f"{name}/snapshot") == "0"


def test_start_takes_only_0_or_1(c: Client, name: str) -> None:
    c.mkdir(name)
    refused(errno.EINVAL, c.write, f"{name}/start", "go")
    c.write(f"{name}/start", "0")  # stopping a stopped trace is fine
    c.write(f"{name}/start", " 0\n")  # `echo 0 > start` sends a newline


def test_marker_registry_ids_are_stable_and_listed() -> None:
    ns = Namespace(shm_prefix=f"/tracetui-{os.getuid()}-{os.getpid()}-markers")
    reg = ns.markers
    a = reg.register("sched_switch", "prev_pid %d next_pid %d comm %s")
    b = reg.register("proc_exec", "pid %d")
    assert (a, b) == (0, 1)
    assert reg.register("sched_switch", "prev_pid %d next_pid %d comm %s") == a
    assert reg.register("sched_switch", "other %u") == 2  # another format is another marker
    assert ns.read("markers").splitlines() == [
        "0 sched_switch prev_pid %d next_pid %d comm %s",
        "1 proc_exec pid %d",
        "2 sched_switch other %u",
    ]
    assert reg.get(1) is not None and reg.get(1).name == "proc_exec"  # type: ignore[union-attr]
    with pytest.raises(TraceError) as exc:
        reg.register("bad name", "")
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(TraceError):
        reg.register("x", "two\nlines")
    for i in range(3, 0xFFFF):
        assert reg.register(f"m{i}", "") == i
    assert len(reg) == 0xFFFF  # ids 0 .. 0xFFFE; 0xFFFF stays reserved
    with pytest.raises(TraceError) as exc:
        reg.register("one_more", "")
    assert exc.value.errno == errno.ENOSPC
