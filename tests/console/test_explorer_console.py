"""The explorer inside the console: ``o`` opens a trace directory, a trace node's last
recording, the palette entries, and explorers saved with layouts (real daemon for layouts)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_console import connected, notes, type_text, until

from tracetui.app import TraceConsole
from tracetui.core import layout as layouts
from tracetui.screens.explorer import EventList, ExplorerPane, ExplorerScreen
from tracetui.screens.main import MainScreen
from tracetui.screens.name_dialog import NameDialog
from tracetui.screens.open_dialog import OpenTraceDialog
from tracetui.widgets.explorer_fixtures import write_demo_trace
from tracetui.widgets.fixtures import demo_state
from tracetui.widgets.trace_tree import TraceTree

SIZE = (140, 45)


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_trace(tmp_path_factory.mktemp("console-explore") / "demo")


async def wait_scans(pilot, pane: ExplorerPane) -> None:  # type: ignore[no-untyped-def]
    # The app's worker manager also holds the console's own (the daemon watch): only the pane's.
    def idle() -> bool:
        return not [w for w in pane.workers if w.node is pane and not w.is_finished]

    await until(pilot, idle, timeout=10)
    await pilot.pause()


async def open_with_o(pilot, text: str) -> OpenTraceDialog:  # type: ignore[no-untyped-def]
    await pilot.press("o")
    await until(pilot, lambda: isinstance(pilot.app.screen, OpenTraceDialog))
    dialog = pilot.app.screen
    dialog.query_one("#path").value = text
    await pilot.press("enter")
    await pilot.pause()
    return dialog


async def test_o_opens_a_trace_in_the_console(trace: Path, tmp_path: Path) -> None:
    app = TraceConsole(state=demo_state(), select="demo")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        main = app.main_screen
        # Not a trace: the dialog stays, with one line saying why.
        dialog = await open_with_o(pilot, str(tmp_path))
        assert app.screen is dialog
        assert "is not a readable trace" in dialog.error and "\n" not in dialog.error
        dialog.query_one("#path").value = str(tmp_path / "nowhere")
        await pilot.press("enter")
        assert dialog.error.endswith("no such directory.")
        dialog.query_one("#path").value = str(trace)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ExplorerScreen))
        pane = app.screen.query_one(ExplorerPane)
        assert pane.path == str(trace)
        # The explorer's keys win over the console's while it shows (s: statistics, not start).
        await pilot.press("s")
        await wait_scans(pilot, pane)
        assert "events over" in str(pane.query_one(".explorer-details").render())
        await pilot.press("q")  # back to the console; the explorer stays open
        assert isinstance(app.screen, MainScreen)
        assert main.explorer is not None and len(main.explorer.panes) == 1
        # A second trace: a second tab.
        await open_with_o(pilot, str(trace))
        await until(pilot, lambda: isinstance(app.screen, ExplorerScreen))
        await until(pilot, lambda: len(main.explorer.panes) == 2)
        await pilot.press("q")
        # The palette shows them again.
        await pilot.press("ctrl+p")
        await type_text(pilot, "Show open traces")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ExplorerScreen))
        await pilot.press("w", "w")  # closing the last tab goes back to the console
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        assert main.explorer.panes == []


async def test_open_the_last_recording_of_a_trace_node(trace: Path, tmp_path: Path) -> None:
    state = demo_state()
    demo = state.trace("demo")
    assert demo is not None
    traces = tuple(
        dataclasses.replace(t, output=str(trace)) if t.name == "demo" else t for t in state.traces
    )
    state = dataclasses.replace(state, traces=traces)
    app = TraceConsole(state=state, select="demo")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await until(pilot, lambda: app.main_screen.selected_path == "demo")
        await pilot.press("ctrl+p")
        await type_text(pilot, "Open last recording")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ExplorerScreen))
        assert app.screen.query_one(ExplorerPane).path == str(trace)


async def test_a_trace_node_that_recorded_nothing_says_so(tmp_path: Path) -> None:
    state = demo_state()
    empty = tmp_path / "never-started"
    traces = tuple(
        dataclasses.replace(t, output=str(empty)) if t.name == "demo" else t for t in state.traces
    )
    app = TraceConsole(state=dataclasses.replace(state, traces=traces), select="demo")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await until(pilot, lambda: app.main_screen.selected_path == "demo")
        await app.main_screen.action_open_recording()
        await until(pilot, lambda: any("no such directory" in m for m in notes(app)))
        assert isinstance(app.screen, MainScreen)


def test_explorer_entries_in_a_layout_file() -> None:
    text = (
        "version = 1\n[[explorer]]\npath = '/t'\nposition_ns = 12\n"
        "filter = 'sched_* where prev_pid < 3'\n"
    )
    lay = layouts.loads(text)
    assert lay.explorers == (layouts.ExplorerLayout("/t", 12, "sched_* where prev_pid < 3"),)
    assert layouts.loads(layouts.dumps(lay)) == lay
    for bad, says in [
        ("[[explorer]]\nposition_ns = 1\n", "missing 'path'"),
        ("[[explorer]]\npath = '/t'\nposition_ns = -1\n", "'position_ns' must be 0 or more"),
        ("[[explorer]]\npath = '/t'\nposition_ns = 'x'\n", "'position_ns' must be an integer"),
        ("[[explorer]]\npath = '/t'\ncolour = 1\n", "unknown key 'colour'"),
    ]:
        with pytest.raises(layouts.LayoutError, match=says) as e:
            layouts.loads("version = 1\n" + bad)
        assert "\n" not in str(e.value)


async def test_explorers_are_saved_and_reopened_with_a_layout(
    daemon, trace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    c = daemon.client
    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        await open_with_o(pilot, str(trace))
        await until(pilot, lambda: isinstance(app.screen, ExplorerScreen))
        pane = app.screen.query_one(ExplorerPane)
        await pilot.press("slash")
        pane.query_one("Input").value = "sched_switch where prev_pid < 200"
        await pilot.press("enter")
        await wait_scans(pilot, pane)
        for _ in range(25):
            await pilot.press("down")
        lst = pane.query_one(EventList)
        at = lst.current().ts_ns - pane.index.first_ns
        assert pane.position_ns == at > 0
        await pilot.press("q")
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, NameDialog)
        await type_text(pilot, "withexplorer")
        await pilot.press("enter")
        saved = tmp_path / "config" / "tracetui" / "layouts" / "withexplorer.toml"
        await until(pilot, lambda: saved.exists())
        assert layouts.load(saved).explorers == (
            layouts.ExplorerLayout(str(trace), at, "sched_switch where prev_pid < 200"),
        )
        await pilot.press("q")

    app = TraceConsole(runtime_dir=daemon.runtime_dir)
    async with app.run_test(size=SIZE) as pilot:
        main = await connected(pilot)
        await pilot.press("ctrl+o")
        await type_text(pilot, "withexplorer")
        await pilot.press("enter")
        await until(pilot, lambda: any("reopened in the explorer" in m for m in notes(app)))
        assert main.explorer is not None and len(main.explorer.panes) == 1
        main.action_show_explorer()
        await until(pilot, lambda: isinstance(app.screen, ExplorerScreen))
        await until(pilot, lambda: app.screen.query(ExplorerPane))
        pane = app.screen.query_one(ExplorerPane)
        await wait_scans(pilot, pane)
        await until(pilot, lambda: pane.query_one(EventList).rows is not pane.index)
        assert pane.filter_text == "sched_switch where prev_pid < 200"
        await until(pilot, lambda: pane.position_ns == at)
        item = pane.query_one(EventList).current()
        assert item.name == "sched_switch" and item.fields["prev_pid"] < 200
        await pilot.press("q")

        # A bad explorer entry: one line, and nothing of the layout is applied.
        bad = tmp_path / "bad.toml"
        bad.write_text(
            "version = 1\n[[trace]]\nname = 'notmade'\n"
            "[[trace.channel]]\nname = 'main'\nsubbuf_size = '8K'\nn_subbuf = 4\n"
            f"[[explorer]]\npath = '{tmp_path / 'gone'}'\n"
        )
        before = len(main.explorer.panes)
        await pilot.press("ctrl+o")
        await until(pilot, lambda: isinstance(app.screen, NameDialog))
        app.screen.query_one("#name").value = str(bad)
        await pilot.press("enter")
        await until(pilot, lambda: any("explorer #1" in m for m in notes(app)))
        msg = next(m for m in notes(app) if "explorer #1" in m)
        assert "no such directory" in msg and "nothing was changed" in msg and "\n" not in msg
        assert "notmade" not in [e.name for e in c.ls("")]
        assert len(main.explorer.panes) == before
        assert main.query_one(TraceTree) is not None
