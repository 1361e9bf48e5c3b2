"""Pilot tests of the console against a real daemon: the seed's flow typed on the keyboard, every
step checked through the client; refusals shown; CLI changes seen; layouts saved and restored."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tracetui.app import TraceConsole
from tracetui.screens.conflict_dialog import ConflictDialog
from tracetui.screens.filter_dialog import FilterDialog
from tracetui.screens.help import HelpScreen
from tracetui.screens.main import MainScreen, live_tab_id
from tracetui.screens.name_dialog import NameDialog
from tracetui.widgets.live_view import LiveViewPane
from tracetui.widgets.trace_tree import TraceTree

SIZE = (140, 45)


async def until(pilot: Pilot[int], cond: Callable[[], object], timeout: float = 5.0) -> None:
    """Let the app run until COND holds (the daemon answers asynchronously)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {cond}")
        await pilot.pause(0.02)


def notes(app: TraceConsole) -> list[str]:
    return [n.message for n in app._notifications]


def main_screen(app: TraceConsole) -> MainScreen:
    return app.main_screen


async def connected(pilot: Pilot[int]) -> MainScreen:
    await pilot.pause()
    app = pilot.app
    assert isinstance(app, TraceConsole)
    await until(pilot, lambda: app.client is not None and app.sub_title.startswith("daemon"))
    return app.main_screen


async def type_text(pilot: Pilot[int], text: str) -> None:
    await pilot.press(*list(text))


async def tab_to(pilot: Pilot[int], widget_id: str, key: str = "tab") -> None:
    """Move the focus with the keyboard until widget_id has it."""
    for _ in range(30):
        focused = pilot.app.focused
        if focused is not None and focused.id == widget_id:
            return
        await pilot.press(key)
    raise AssertionError(f"could not reach #{widget_id} with {key}")


async def test_seed_flow_on_the_keyboard(daemon) -> None:
    c = daemon.client
    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await connected(pilot)
        tree = screen.query_one(TraceTree)

        # mkdir mytrace
        await pilot.press("n")
        assert isinstance(app.screen, NameDialog)
        await type_text(pilot, "mytrace")
        await pilot.press("enter")
        await until(pilot, lambda: "mytrace" in [e.name for e in c.ls("")])
        await until(pilot, lambda: tree.selected_path == "mytrace")

        # mkdir mytrace/processes
        await pilot.press("c")
        await type_text(pilot, "processes")
        await pilot.press("enter")
        await until(pilot, lambda: "processes" in [e.name for e in c.ls("mytrace")])
        await until(pilot, lambda: tree.selected_path == "mytrace/processes")

        # subbuf_size 256K, n_subbuf 4 (typed into the channel pane's fields)
        await tab_to(pilot, "subbuf_size")
        await pilot.press("ctrl+a", "ctrl+k")
        await type_text(pilot, "256K")
        await pilot.press("enter")
        await until(pilot, lambda: c.read("mytrace/processes/subbuf_size") == "262144")
        await tab_to(pilot, "n_subbuf")
        await pilot.press("ctrl+a", "ctrl+k")
        await type_text(pilot, "4")
        await pilot.press("enter")
        await until(pilot, lambda: c.read("mytrace/processes/n_subbuf") == "4")
        # A bad size: the daemon's sentence appears and nothing changes.
        await tab_to(pilot, "subbuf_size", "shift+tab")
        await pilot.press("ctrl+a", "ctrl+k")
        await type_text(pilot, "1000")
        await pilot.press("enter")
        await until(pilot, lambda: any("power of two" in m for m in notes(app)))
        assert c.read("mytrace/processes/subbuf_size") == "262144"
        await tab_to(pilot, "tree", "shift+tab")

        # flight, global, allocate
        await pilot.press("f")
        await until(pilot, lambda: c.read("mytrace/processes/flight") == "1")
        await pilot.press("g")
        await until(pilot, lambda: c.read("mytrace/processes/global") == "1")
        await pilot.press("g")
        await until(pilot, lambda: c.read("mytrace/processes/global") == "0")
        await pilot.press("a")
        await until(pilot, lambda: c.read("mytrace/processes/allocate") == "1")
        # Refusal: global is fixed once allocated; the notification carries the sentence.
        await pilot.press("g")
        await until(pilot, lambda: any("fixed" in m for m in notes(app)))
        assert c.read("mytrace/processes/global") == "0"

        # routing filter of the channel
        await pilot.press("e")
        assert isinstance(app.screen, FilterDialog)
        await type_text(pilot, "proc_exec")
        await pilot.press("enter")
        await until(pilot, lambda: c.read("mytrace/processes/filter") == "proc_exec")

        # trace filter: disable all, then add sched_switch
        await pilot.press("up", "up")
        await until(pilot, lambda: tree.selected_path == "mytrace")
        await pilot.press("e")
        await type_text(pilot, "0")
        await pilot.press("enter")
        await until(pilot, lambda: c.read("mytrace/filter") == "0")
        await pilot.press("e")
        await type_text(pilot, "sched_switch")
        await pilot.press("enter")
        await until(pilot, lambda: c.read("mytrace/filter") == "sched_switch")

        # start, then stop
        await pilot.press("s")
        await until(pilot, lambda: c.read("mytrace/start") == "1")
        await until(pilot, lambda: screen.state.trace("mytrace").recording)
        await pilot.press("s")
        await until(pilot, lambda: c.read("mytrace/start") == "0")

        # delete the channel (confirmed), then the trace
        await pilot.press("down", "down")
        await until(pilot, lambda: tree.selected_path == "mytrace/processes")
        await pilot.press("d", "y")
        await until(pilot, lambda: "processes" not in [e.name for e in c.ls("mytrace")])
        await pilot.press("q")
    assert app.return_code in (0, None)


async def test_cli_changes_appear_within_a_second(daemon) -> None:
    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await connected(pilot)
        tree = screen.query_one(TraceTree)
        t0 = time.monotonic()
        assert daemon.cli("mkdir", "fromcli").returncode == 0
        assert daemon.cli("mkdir", "fromcli/procs").returncode == 0
        await until(pilot, lambda: tree.select_path("fromcli/procs"), timeout=1.0)
        assert daemon.cli("write", "fromcli/procs/flight", "1").returncode == 0
        await until(pilot, lambda: screen.state.channel("fromcli/procs").flight, timeout=1.0)
        assert time.monotonic() - t0 < 3.0


async def test_palette_help_and_keys(daemon) -> None:
    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await connected(pilot)
        titles = [cmd.title for cmd in app.get_system_commands(screen)]
        for title in ("trace: Start", "channel: Toggle flight", "layout: Save", "live: Search"):
            assert title in titles
        ids = {b.id for b in screen.BINDINGS if hasattr(b, "id")}
        keys = {b.key for b in screen.BINDINGS if hasattr(b, "key")}
        for key in [
            "n",
            "c",
            "d",
            "a",
            "s",
            "f",
            "g",
            "e",
            "l",
            "space",
            "slash",
            "ctrl+s",
            "ctrl+o",
            "question_mark",
            "q",
        ]:
            assert key in keys
        assert None not in ids
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        # Actions that need a selection say so instead of doing nothing.
        await pilot.press("f")
        await until(pilot, lambda: any("Select a channel" in m for m in notes(app)))
        await pilot.press("space")
        await until(pilot, lambda: any("Open a live view" in m for m in notes(app)))


async def test_layout_save_quit_load(daemon, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    c = daemon.client
    c.mkdir("mytrace")
    c.mkdir("mytrace/processes")
    c.write("mytrace/processes/subbuf_size", "256K")
    c.write("mytrace/processes/flight", "1")
    c.write("mytrace/processes/filter", "proc_exec")
    c.write("mytrace/filter", "0 sched_switch proc_exec")

    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await connected(pilot)
        tree = screen.query_one(TraceTree)
        await until(pilot, lambda: tree.select_path("mytrace/processes"))
        await pilot.press("l")
        await until(pilot, lambda: screen.live_paths == ["mytrace/processes"])
        await pilot.press("space")  # pause the view: saved with it
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, NameDialog)
        await type_text(pilot, "session1")
        await pilot.press("enter")
        saved = tmp_path / "config" / "tracetui" / "layouts" / "session1.toml"
        await until(pilot, lambda: saved.exists())
        await pilot.press("q")

    c.rmdir("mytrace")
    assert c.ls("") == [e for e in c.ls("") if e.kind != "dir"]

    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await connected(pilot)
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, NameDialog)
        await type_text(pilot, "session1")
        await pilot.press("enter")
        await until(pilot, lambda: screen.live_paths == ["mytrace/processes"])
        assert c.read("mytrace/processes/subbuf_size") == "262144"
        assert c.read("mytrace/processes/flight") == "1"
        assert c.read("mytrace/processes/filter") == "proc_exec"
        assert c.read("mytrace/filter").split() == ["sched_switch", "proc_exec"]
        pane = screen.query_one(f"#{live_tab_id('mytrace/processes')}-pane", LiveViewPane)
        assert pane.view.follow is False
        assert screen.tabs.active == live_tab_id("mytrace/processes")  # the focus came back

        # Loading again over a changed trace asks; "keep" changes nothing.
        c.write("mytrace/processes/flight", "0")
        await pilot.press("ctrl+o")
        await type_text(pilot, "session1")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConflictDialog))
        await pilot.press("enter")  # "Keep existing" has the focus
        await until(pilot, lambda: any("kept existing mytrace" in m for m in notes(app)))
        assert c.read("mytrace/processes/flight") == "0"

        # A bad file: one sentence, nothing changed.
        bad = tmp_path / "bad.toml"
        bad.write_text("version = 1\n[[trace]]\nname = 'x'\n")
        await pilot.press("ctrl+o")
        await type_text(pilot, str(bad))
        await pilot.press("enter")
        await until(pilot, lambda: any("has no channel 'main'" in m for m in notes(app)))
        assert "x" not in [e.name for e in c.ls("")]


async def test_layout_on_the_command_line(daemon, tmp_path: Path) -> None:
    layout = tmp_path / "l.toml"
    layout.write_text(
        "version = 1\n[[trace]]\nname = 'fromfile'\nfilter = ['*']\n"
        "[[trace.channel]]\nname = 'main'\nsubbuf_size = '8K'\nn_subbuf = 4\n"
        "[[view]]\nchannel = 'fromfile/main'\n"
    )
    app = TraceConsole(runtime_dir=daemon.runtime_dir, layout=str(layout))
    async with app.run_test(size=SIZE) as pilot:
        screen = await connected(pilot)
        await until(pilot, lambda: screen.live_paths == ["fromfile/main"])
        assert daemon.client.read("fromfile/main/subbuf_size") == "8192"


def test_main_refuses_a_bad_layout_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracetui.app import main

    monkeypatch.setenv("TRACETUI_RUNTIME_DIR", str(tmp_path / "run"))
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 99\n")
    assert main(["--layout", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "newer than this tracetui reads" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # no daemon was started


async def test_demo_live_view_receives_events(daemon) -> None:
    import subprocess
    import sys

    workload = subprocess.Popen(
        [sys.executable, "-m", "tracetui.demo", "--seconds", "20", "--rate", "2000"],
        env=daemon.env(),
        stderr=subprocess.PIPE,
    )
    try:
        app = TraceConsole(runtime_dir=daemon.runtime_dir, demo=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await connected(pilot)
            await until(pilot, lambda: screen.live_paths == ["demo/flight"])
            assert daemon.client.read("demo/start") == "1"
            assert daemon.client.read("demo/flight/flight") == "1"
            assert daemon.client.read("demo/procs/filter") == "proc_*"
            pane = screen.query_one(f"#{live_tab_id('demo/flight')}-pane", LiveViewPane)
            await until(pilot, lambda: pane.view.received > 100, timeout=10)
            names = {k.name for k in pane.view._kinds}
            assert names <= {"sched_switch", "sched_wakeup", "irq_handler", "LOST"}
            # space pauses, the view keeps taking events but stops following
            await pilot.press("space")
            assert pane.view.follow is False
            # search, typed on the keyboard
            await pilot.press("slash")
            await type_text(pilot, "sched_switch")
            await pilot.press("enter")
            await until(pilot, lambda: pane.view._match_abs is not None)
            await pilot.press("escape")
            # e filters the live view by event name
            await pilot.press("e")
            assert isinstance(app.screen, FilterDialog)
            await pilot.press("ctrl+a", "ctrl+k")
            await type_text(pilot, "sched_wakeup")
            await pilot.press("enter")
            await until(pilot, lambda: pane.view.name_filter == "sched_wakeup")
            await until(pilot, lambda: pane.view.event_count > 0, timeout=10)
            shown = {pane.view._kinds[r[1]].name for r in pane.view._view}
            assert shown <= {"sched_wakeup", "LOST"}
            # d closes the view
            await pilot.press("d")
            await until(pilot, lambda: screen.live_paths == [])
    finally:
        workload.terminate()
        workload.wait(10)
    assert workload.returncode in (0, -15), workload.stderr.read() if workload.stderr else ""
