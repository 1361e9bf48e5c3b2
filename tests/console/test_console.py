"""Pilot tests of the console against a real daemon: the debugfs-style flow typed on the
keyboard, every step checked through the client; refusals shown; CLI changes seen; layouts saved
and restored."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tracetui.app import TraceConsole
from tracetui.screens.confirm_dialog import ConfirmDialog
from tracetui.screens.conflict_dialog import ConflictDialog
from tracetui.screens.filter_dialog import FilterDialog
from tracetui.screens.help import HelpScreen
from tracetui.screens.main import MainScreen, live_tab_id
from tracetui.screens.name_dialog import NameDialog
from tracetui.widgets.live_view import LiveView, LiveViewPane
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
        await pilot.pause()
        # Every key fits on a 45-line terminal (the Markdown table was cut after space).
        assert app.screen.query_one("#help-text").max_scroll_y == 0
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        # Actions that need a selection say so instead of doing nothing.
        await pilot.press("f")
        await until(pilot, lambda: any("Select a channel" in m for m in notes(app)))
        await pilot.press("space")
        await until(pilot, lambda: any("Open a live view" in m for m in notes(app)))
        # ...and so do the palette's live view commands (they did nothing without a view).
        before = len([m for m in notes(app) if "Open a live view" in m])
        await pilot.press("ctrl+p")
        await type_text(pilot, "Toggle timestamps")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: len([m for m in notes(app) if "Open a live view" in m]) > before)


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

    # Saving again under an existing name asks before replacing that saved session.
    other = saved.with_name("other.toml")
    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)

        async def save_as_other() -> None:
            await pilot.press("ctrl+s")
            await type_text(pilot, "other")
            await pilot.press("enter")

        await save_as_other()
        await until(pilot, lambda: other.exists())
        before = other.read_text()
        c.write("mytrace/filter", "!proc_exec")
        await save_as_other()
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")
        await until(pilot, lambda: any("kept as it was" in m for m in notes(app)))
        assert other.read_text() == before
        await save_as_other()
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await until(pilot, lambda: other.read_text() != before)
        await pilot.press("q")
    c.write("mytrace/filter", "proc_exec")
    assert c.read("mytrace/filter").split() == ["sched_switch", "proc_exec"]

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


async def test_refusals_keep_names_and_fields_show_the_daemon(daemon) -> None:
    """Refusals carry the daemon's sentence with names as written; a refused field snaps back;
    keys that cannot act say why."""
    from textual.widgets import Input

    c = daemon.client
    c.mkdir("demo")
    c.mkdir("demo/procs")
    c.write("demo/procs/allocate", "1")
    c.write("demo/main/allocate", "1")
    c.write("demo/start", "1")
    c.mkdir("spare")
    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await connected(pilot)
        tree = screen.query_one(TraceTree)

        # g on an allocated channel: the sentence keeps "demo/procs" as the daemon wrote it.
        await until(pilot, lambda: tree.select_path("demo/procs"))
        await pilot.press("g")
        await until(pilot, lambda: any("demo/procs is allocated" in m for m in notes(app)))
        assert not any("Demo/procs" in m for m in notes(app))

        # a on a trace whose channels are all allocated says so instead of doing nothing.
        await until(pilot, lambda: tree.select_path("demo"))
        await pilot.pause()
        await pilot.press("a")
        await until(pilot, lambda: any("already allocated" in m for m in notes(app)))

        # d on a running trace: refused with the daemon's sentence, nothing deleted.
        await pilot.press("d", "y")
        await until(pilot, lambda: any("'demo' is running" in m for m in notes(app)))
        assert "demo" in [e.name for e in c.ls("")]

        # A refused output directory does not stay in the field as if applied.
        await until(pilot, lambda: tree.select_path("spare"))
        await pilot.pause()
        output = screen.query_one("#output", Input)
        await tab_to(pilot, "output")
        await pilot.press("ctrl+a", "ctrl+k")
        await type_text(pilot, "relative")
        await pilot.press("enter")
        await until(pilot, lambda: any("absolute directory" in m for m in notes(app)))
        await until(pilot, lambda: output.value == c.read("spare/output"))
        await tab_to(pilot, "tree", "shift+tab")

        # A refused sub-buffer size snaps back to the daemon's value (the field keeps the focus).
        await until(pilot, lambda: tree.select_path("spare/main"))
        await pilot.pause()
        size = screen.query_one("#subbuf_size", Input)
        await tab_to(pilot, "subbuf_size")
        await pilot.press("ctrl+a", "ctrl+k")
        await type_text(pilot, "300K")
        await pilot.press("enter")
        await until(pilot, lambda: any("power of two" in m for m in notes(app)))
        assert c.read("spare/main/subbuf_size") == "65536"
        await until(pilot, lambda: size.value == "64K")
        await tab_to(pilot, "tree", "shift+tab")

        # A '/' in a new trace's name is refused in one sentence; nothing is created.
        await pilot.press("n")
        await type_text(pilot, "spare/x")
        await pilot.press("enter")
        await until(pilot, lambda: any("cannot contain '/'" in m for m in notes(app)))
        assert "x" not in [e.name for e in c.ls("spare")]


async def test_footer_shows_every_key_and_closing_a_view_shows_details(daemon) -> None:
    from textual.widgets import Footer, Label
    from textual.widgets._footer import FooterKey

    c = daemon.client
    c.mkdir("t")
    c.mkdir("t/c")
    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await connected(pilot)
        tree = screen.query_one(TraceTree)

        def footer_fits() -> bool:
            keys = list(screen.query_one(Footer).query(FooterKey))
            palette = [k for k in keys if k.has_class("-command-palette")]
            right = palette[0].region.x if palette else 160
            shown = {k.key for k in keys if k.region.width and k.region.right <= right}
            wanted = {b.key for b in MainScreen.BINDINGS if hasattr(b, "key")}
            return wanted <= shown

        await until(pilot, lambda: tree.select_path("t/c"))
        await until(pilot, footer_fits)  # the tree has the focus
        await pilot.press("l")
        await until(pilot, lambda: screen.live_paths == ["t/c"])
        await until(pilot, lambda: isinstance(app.focused, LiveView))
        await until(pilot, footer_fits)  # a live view has the focus

        # Two views; d closes the active one and shows the details of the selection again.
        await until(pilot, lambda: tree.select_path("t/main"))
        tree.focus()
        await pilot.press("l")
        await until(pilot, lambda: screen.live_paths == ["t/c", "t/main"])
        await pilot.press("d")
        await until(pilot, lambda: screen.live_paths == ["t/c"])
        await pilot.pause(0.2)
        assert screen.tabs.active == "details"

        # A live view's filter dialog does not suggest "!" exclusions it cannot do, and long
        # dialog sentences wrap instead of being cut.
        await pilot.press("l")
        await until(pilot, lambda: screen.tabs.active == live_tab_id("t/main"))
        await pilot.press("e")
        assert isinstance(app.screen, FilterDialog)
        rule = app.screen.query_one("#rule")
        assert "!" not in str(rule.placeholder)  # type: ignore[attr-defined]
        await pilot.press("escape")
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, NameDialog)
        await pilot.pause()
        message = app.screen.query(Label).filter(".message").first()
        assert message.size.height >= 2  # wrapped: "...or a path ending in .toml."
        await pilot.press("escape")


async def test_a_lost_daemon_is_said_once(daemon) -> None:
    from tracetui.core.client import spawn

    daemon.client.mkdir("t")
    daemon.client.write("t/main/allocate", "1")
    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await connected(pilot)
        tree = screen.query_one(TraceTree)
        await until(pilot, lambda: tree.select_path("t/main"))  # its statistics are polled
        spawn.stop_daemon(daemon.proc)
        await until(pilot, lambda: app.sub_title == "daemon not answering")
        await pilot.pause(2.5)  # several refreshes and statistics polls fail meanwhile
        lost = [m for m in notes(app) if "tracetui daemon answers" in m]
        assert len(lost) == 1, notes(app)
        assert lost[0].startswith("No tracetui daemon answers")


async def test_layout_leaves_default_output_directories_out(
    daemon, tmp_path: Path, monkeypatch
) -> None:
    """A default output names one past run's directory: a layout saving it would append the
    next recording to that old trace, and conflict with every new trace of that name."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    c = daemon.client
    c.mkdir("auto")
    c.mkdir("chosen")
    c.write("chosen/output", str(tmp_path / "out"))
    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await connected(pilot)
        await pilot.press("ctrl+s")
        await type_text(pilot, "outputs")
        await pilot.press("enter")
        saved = tmp_path / "config" / "tracetui" / "layouts" / "outputs.toml"
        await until(pilot, saved.exists)
        text = saved.read_text()
        assert f'output = "{tmp_path / "out"}"' in text
        assert text.count("output =") == 1

        # The same traces made again (new default outputs): loading finds nothing in conflict.
        c.rmdir("auto")
        await pilot.pause(1.1)  # another second: another default directory name
        c.mkdir("auto")
        assert await screen.load_layout("outputs")
        assert not isinstance(app.screen, ConflictDialog)
        await until(pilot, lambda: any("Layout outputs loaded" in m for m in notes(app)))


async def test_pane_buttons_with_the_mouse(daemon) -> None:
    c = daemon.client
    c.mkdir("t")
    c.mkdir("t/ch")
    c.write("t/ch/flight", "1")
    c.write("t/ch/allocate", "1")
    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await connected(pilot)
        tree = screen.query_one(TraceTree)
        await until(pilot, lambda: tree.select_path("t/ch"))
        await pilot.pause()
        # "Live view" opens the view and shows it (the focused button's details tab took the
        # active tab back: the view opened unseen).
        await pilot.click("#channel-pane #live")
        await until(pilot, lambda: screen.live_paths == ["t/ch"])
        await pilot.pause(0.3)
        assert screen.tabs.active == live_tab_id("t/ch")
        assert isinstance(app.focused, LiveView)

        # The trace pane's Snapshot button says the snapshot was written, as the key does.
        tree.focus()
        await until(pilot, lambda: tree.select_path("t"))
        await until(pilot, lambda: screen.tabs.active == "details")
        await pilot.click("#trace-pane #start")
        await until(pilot, lambda: c.read("t/start") == "1")
        await pilot.click("#trace-pane #snapshot")
        await until(pilot, lambda: c.read("t/snapshot") == "1")
        await until(pilot, lambda: any("Snapshot of t written" in m for m in notes(app)))
        await pilot.click("#trace-pane #start")
        await until(pilot, lambda: c.read("t/start") == "0")


async def test_deleting_a_trace_with_channels(daemon) -> None:
    """The tree dropped a removed trace, then failed on its channels (ValueError): d on a trace,
    or rmdir from the CLI, crashed the console."""
    c = daemon.client
    c.mkdir("gone")
    c.mkdir("gone/extra")
    c.mkdir("fromcli")
    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await connected(pilot)
        tree = screen.query_one(TraceTree)
        await until(pilot, lambda: tree.select_path("gone"))
        await pilot.press("d", "y")
        await until(pilot, lambda: "gone" not in [e.name for e in c.ls("")])
        await until(pilot, lambda: screen.state.trace("gone") is None)
        # A live view of a channel removed from the CLI is closed, and says so (it stayed open,
        # "following" a channel that no longer existed).
        await until(pilot, lambda: tree.select_path("fromcli/main"))
        await pilot.press("l")
        await until(pilot, lambda: screen.live_paths == ["fromcli/main"])
        assert daemon.cli("rmdir", "fromcli").returncode == 0
        await until(pilot, lambda: screen.state.trace("fromcli") is None)
        await until(pilot, lambda: screen.live_paths == [])
        assert any("fromcli/main was removed" in m for m in notes(app))
        await pilot.pause(0.3)
        assert not tree.select_path("gone/extra") and not tree.select_path("fromcli/main")
        assert app.is_running


async def test_palette_commands_act_on_what_they_name(daemon) -> None:
    """With a live view showing, "trace: Delete" closed the view and "trace: Edit filter"
    edited the view's name filter (they ran the keys' context-dependent actions)."""

    c = daemon.client
    c.mkdir("t")
    c.mkdir("t/c")
    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await connected(pilot)
        tree = screen.query_one(TraceTree)
        commands = {cmd.title: cmd.callback for cmd in app.get_system_commands(screen)}
        await until(pilot, lambda: tree.select_path("t/c"))
        await pilot.press("l")
        await until(pilot, lambda: screen.tabs.active == live_tab_id("t/c"))

        commands["trace: Edit filter"]()
        await pilot.pause()
        assert isinstance(app.screen, FilterDialog)
        assert "Event filter of t" in str(app.screen.query_one(".title").render())
        await pilot.press("escape")
        commands["channel: Edit routing filter"]()
        await pilot.pause()
        assert "Routing filter of t/c" in str(app.screen.query_one(".title").render())
        await pilot.press("escape")
        commands["trace: Delete"]()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        assert screen.live_paths == ["t/c"]
        await pilot.press("escape")
        commands["live: Close"]()
        await until(pilot, lambda: screen.live_paths == [])
        assert "c" in [e.name for e in c.ls("t")]
        commands["live: Close"]()
        await until(pilot, lambda: any("Open a live view" in m for m in notes(app)))


async def test_flight_overwrites_are_not_shown_as_losses() -> None:
    """The tree shows overwrites muted (a flight recorder doing its job); the channel pane
    showed them in the loss colour. Discards still are losses."""
    from dataclasses import replace

    from textual.widgets import Static

    from tracetui.core.client.state import ChannelStats
    from tracetui.widgets.fixtures import demo_rates, demo_state, demo_stats

    stats = demo_stats()
    assert stats.total.overwritten > 0 and stats.total.discarded == 0
    app = TraceConsole(state=demo_state(), select="demo/flight", rates=demo_rates(), stats=stats)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.pause(0.1)
        rate = app.main_screen.query_one("#rate", Static)
        assert "overwritten" in str(rate.render()) and not rate.has_class("loss")
        lossy = ChannelStats(stats.buffers, replace(stats.total, discarded=5))
        app.main_screen.show_stats("demo/flight", lossy, rate=1.0)
        assert rate.has_class("loss")
