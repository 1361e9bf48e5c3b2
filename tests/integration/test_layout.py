"""Session layouts: the TOML schema, validation of whole files, and apply against a real daemon."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tracetui.core import layout as L
from tracetui.core.client import AsyncClient
from tracetui.core.errors import TraceError

GOOD = """\
version = 1

[console]
history = 5000
selected = "mytrace/processes"
focus = "view:mytrace/processes"

[[trace]]
name = "mytrace"
filter = ["sched_switch", "proc_*"]

[[trace.channel]]
name = "main"
subbuf_size = 65536
n_subbuf = 4

[[trace.channel]]
name = "processes"
subbuf_size = "256K"
n_subbuf = 8
flight = true
global = false
allocate = true
filter = ["proc_exec"]

[[view]]
channel = "mytrace/processes"
follow = false
name_filter = "proc_*"
show_cpu = false
absolute_time = true
"""


def test_loads_a_complete_layout() -> None:
    layout = L.loads(GOOD)
    assert layout.history == 5000
    assert layout.selected == "mytrace/processes"
    assert layout.focus == "view:mytrace/processes"
    (t,) = layout.traces
    assert t.name == "mytrace" and t.filter == ("sched_switch", "proc_*")
    main, proc = t.channels
    assert (main.name, main.subbuf_size, main.n_subbuf, main.flight) == ("main", 65536, 4, False)
    assert proc.subbuf_size == 256 * 1024 and proc.flight and proc.allocated
    assert proc.filter == ("proc_exec",)
    (v,) = layout.views
    assert v.channel == "mytrace/processes" and not v.follow and v.name_filter == "proc_*"
    assert not v.show_cpu and v.absolute_time


def test_a_remote_view_needs_no_trace_and_round_trips() -> None:
    text = (
        'version = 1\n[[view]]\nchannel = "remote/web1/fleet"\n'
        'remote = "net://relay:5344/host/web1/fleet"\nfollow = false\n'
    )
    layout = L.loads(text)
    (view,) = layout.views
    assert (view.remote, view.channel, view.follow) == (
        "net://relay:5344/host/web1/fleet",
        "remote/web1/fleet",
        False,
    )
    assert L.loads(L.dumps(layout)) == layout


def test_dumps_round_trips_including_awkward_strings() -> None:
    layout = L.loads(GOOD)
    tricky = L.TraceLayout(
        name="t2",
        filter=(),
        output='/tmp/with "quotes" \\ and\ttab',
        channels=(L.ChannelLayout("main", 4096, 2),),
    )
    layout = L.Layout((*layout.traces, tricky), layout.views, "t2", "tree", 100)
    assert L.loads(L.dumps(layout)) == layout


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("version = 1\n[[trace]\n", "not valid TOML"),
        ("[console]\nhistory = 100\n", "no schema version"),
        ("version = 7\n", "newer than this tracetui reads"),
        ("version = 1\nbogus = 1\n", "unknown key 'bogus'"),
        ("version = 1\n[console]\nhistory = 5\n", "history must be between"),
        ("version = 1\n[[trace]]\nfilter = []\n", "missing 'name'"),
        ('version = 1\n[[trace]]\nname = "a/b"\n', "not a valid trace name"),
        ('version = 1\n[[trace]]\nname = "t"\n', "has no channel 'main'"),
        (
            'version = 1\n[[trace]]\nname = "t"\n[[trace.channel]]\nname = "main"\n'
            "subbuf_size = 1000\nn_subbuf = 4\n",
            "power of two",
        ),
        (
            'version = 1\n[[trace]]\nname = "t"\n[[trace.channel]]\nname = "main"\n'
            'subbuf_size = "lots"\nn_subbuf = 4\n',
            "subbuf_size",
        ),
        (
            'version = 1\n[[trace]]\nname = "t"\n[[trace.channel]]\nname = "main"\n'
            "subbuf_size = 4096\nn_subbuf = 4\nflight = 1\n",
            "must be true or false",
        ),
        (
            'version = 1\n[[trace]]\nname = "t"\n[[trace.channel]]\nname = "main"\n'
            'subbuf_size = 4096\nn_subbuf = 4\n[[trace]]\nname = "t"\n',
            "names trace 't' twice",
        ),
        ('version = 1\n[[view]]\nchannel = "x/y"\n', "does not define"),
        (
            'version = 1\n[[view]]\nchannel = "remote/h/s"\nremote = "http://relay/h/s"\n',
            "is not net://RELAYD[:PORT]/host/HOST/SESSION",
        ),
        ('version = 1\n[console]\nfocus = "sidebar"\n', "focus must be"),
    ],
)
def test_bad_files_give_one_sentence(text: str, fragment: str) -> None:
    with pytest.raises(L.LayoutError) as info:
        L.loads(text, "session.toml")
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message and "Traceback" not in message


def test_partial_file_is_refused(tmp_path: Path) -> None:
    # A file cut in the middle of a table (a crash during a copy) is not applied in part.
    path = tmp_path / "cut.toml"
    path.write_text(GOOD[: GOOD.index("n_subbuf = 8")])
    with pytest.raises(L.LayoutError, match="missing 'n_subbuf'"):
        L.load(path)


def test_resolve_names_and_paths(tmp_path: Path) -> None:
    assert L.resolve("work", tmp_path) == tmp_path / "work.toml"
    assert L.resolve("./x.toml") == Path("./x.toml")
    assert L.resolve(str(tmp_path / "y.toml")) == tmp_path / "y.toml"
    with pytest.raises(L.LayoutError, match="not a layout name"):
        L.resolve("bad name", tmp_path)
    with pytest.raises(L.LayoutError, match="There is no layout"):
        L.load(tmp_path / "missing.toml")


def test_default_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert L.default_dir() == tmp_path / "tracetui" / "layouts"


def test_save_is_private_and_listed(tmp_path: Path) -> None:
    path = L.save(L.loads(GOOD), tmp_path / "layouts" / "s1.toml")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert L.list_layouts(tmp_path / "layouts") == ["s1"]


# ------------------------------------------------------------------ against the real daemon


async def _setup(c: AsyncClient) -> None:
    await c.mkdir("mytrace")
    await c.mkdir("mytrace/processes")
    await c.write("mytrace/processes/subbuf_size", "256K")
    await c.write("mytrace/processes/n_subbuf", "8")
    await c.write("mytrace/processes/flight", "1")
    await c.write("mytrace/processes/allocate", "1")
    await c.write("mytrace/filter", "0")
    await c.write("mytrace/filter", "sched_switch")
    await c.write("mytrace/processes/filter", "proc_exec")
    await c.mkdir("other")
    await c.write("other/main/global", "1")


async def test_capture_then_apply_recreates_everything(daemon) -> None:
    async with await AsyncClient.connect(daemon.runtime_dir) as c:
        await _setup(c)
        before = await L.capture(c, [L.ViewLayout("mytrace/processes")], selected="mytrace")
        text = L.dumps(before)
        await c.rmdir("mytrace")
        await c.rmdir("other")
        layout = L.loads(text)
        plan = await L.plan(c, layout)
        assert [t.name for t in plan.create] == ["mytrace", "other"] and not plan.conflicts
        assert await L.apply(c, plan) == ["mytrace", "other"]
        after = await L.capture(c, layout.views, selected="mytrace")
        assert after == before
        assert await c.read("mytrace/processes/allocate") == "1"
        assert await c.read("mytrace/filter") == "sched_switch"
        # Applying the same layout again finds nothing to do.
        again = await L.plan(c, layout)
        assert again.same == ["mytrace", "other"] and not again.create and not again.conflicts


async def test_conflicts_keep_or_replace(daemon) -> None:
    async with await AsyncClient.connect(daemon.runtime_dir) as c:
        await _setup(c)
        layout = await L.capture(c)
        await c.write("mytrace/processes/flight", "0")  # now it differs from the layout
        plan = await L.plan(c, layout)
        (conflict,) = plan.conflicts
        assert conflict.trace == "mytrace"
        assert "already exists" in conflict.reason and "processes" in conflict.reason
        assert await L.apply(c, plan) == []  # default: keep
        assert await c.read("mytrace/processes/flight") == "0"
        assert await L.apply(c, plan, {"mytrace": "replace"}) == ["mytrace"]
        assert await c.read("mytrace/processes/flight") == "1"


async def test_refusal_while_applying_leaves_nothing_behind(daemon) -> None:
    bad = L.TraceLayout(
        name="second",
        filter=("*",),
        output="relative/dir",  # the daemon refuses: output must be absolute
        channels=(L.ChannelLayout("main", 4096, 2),),
    )
    good = L.TraceLayout("first", ("*",), None, (L.ChannelLayout("main", 8192, 4),))
    async with await AsyncClient.connect(daemon.runtime_dir) as c:
        plan = await L.plan(c, L.Layout((good, bad)))
        with pytest.raises(TraceError) as info:
            await L.apply(c, plan)
        assert "absolute" in str(info.value)
        assert [e.name for e in await c.ls("") if e.kind == "dir"] == []


async def test_replace_of_a_running_trace_is_refused_and_restores(daemon) -> None:
    async with await AsyncClient.connect(daemon.runtime_dir) as c:
        await _setup(c)
        layout = await L.capture(c)
        await c.write("mytrace/processes/flight", "0")
        await c.write("mytrace/start", "1")
        plan = await L.plan(c, layout)
        with pytest.raises(TraceError) as info:
            await L.apply(c, plan, {"mytrace": "replace"})
        assert info.value.errno == 16  # EBUSY: the daemon's sentence says why
        assert await c.read("mytrace/start") == "1"
        assert await c.read("mytrace/processes/flight") == "0"
        await c.write("mytrace/start", "0")
