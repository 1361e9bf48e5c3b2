"""The explorer's call tree (``k``) over the function events of a `tracetui run` trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracetui.core.model.markers import Marker
from tracetui.core.pytrace import EVENTS
from tracetui.core.trace.index import TraceIndex
from tracetui.core.trace.traces import open_trace
from tracetui.core.trace.writer import TraceWriter
from tracetui.screens.explorer import ExplorerApp, ExplorerPane
from tracetui.widgets.call_summary import has_function_events, summarize, tree_lines
from tracetui.widgets.explorer_fixtures import (
    DEMO_UUID,
    FixedCalibration,
    _Stream,
    write_demo_trace,
)

MARKERS = {name: Marker.make(i, name, fmt) for i, (name, fmt) in enumerate(EVENTS.items())}


def write_calls_trace(path: Path) -> Path:
    m = MARKERS
    with TraceWriter(path, uuid=DEMO_UUID, calibration=FixedCalibration(),
                     markers=list(m.values()), trace_name="run") as w:  # fmt: skip
        s = _Stream(w, "main", 0)
        s.add(m["py_func"], 10, 1, 3, "main", "/app.py")
        s.add(m["py_func"], 20, 2, 9, "leaf", "/app.py")
        for ts, ev, tid, fid in [
            (1000, "py_call", 7, 1), (1100, "py_call", 7, 2), (1200, "py_call", 8, 2),
            (1300, "py_return", 7, 2), (1400, "py_call", 7, 2), (1500, "py_return", 7, 2),
            (2000, "py_return", 7, 1),
        ]:  # fmt: skip
            s.add(m[ev], ts, tid, fid)
        s.flush()
    return path


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_calls_trace(tmp_path_factory.mktemp("calls") / "run")


def test_calls_are_summed_per_path_and_thread(trace: Path) -> None:
    index = TraceIndex(open_trace(trace))
    assert has_function_events(index)
    roots = next(s for s in summarize(index) if isinstance(s, dict))
    assert sorted(roots) == [7, 8]
    (main,) = roots[7].children.values()
    assert "main" in main.name and (main.calls, main.total_ns) == (1, 1000)
    (leaf,) = main.children.values()
    assert "leaf" in leaf.name and (leaf.calls, leaf.total_ns) == (2, 300)
    (open_leaf,) = roots[8].children.values()
    assert open_leaf.unfinished == 1
    lines = tree_lines(roots)
    assert lines[0] == "thread 7  (3 calls)"
    assert lines[1].startswith("└ ") and lines[1].endswith("1 call  1.0 µs")
    assert lines[2].startswith("  └ ") and lines[2].endswith("2 calls  300 ns")
    assert lines[4].endswith("1 unfinished")


async def test_k_shows_the_call_tree_only_for_function_traces(trace: Path, tmp_path: Path) -> None:
    async with ExplorerApp([(str(trace), TraceIndex(open_trace(trace)))]).run_test(
        size=(80, 24)
    ) as pilot:
        pane = pilot.app.query_one(ExplorerPane)
        await pilot.press("k")
        for _ in range(100):
            await pilot.pause(0.02)
            text = str(pane.query_one(".explorer-details").render())
            if "thread 7" in text:
                break
        assert "thread 7  (3 calls)" in text and "2 calls  300 ns" in text
    demo = write_demo_trace(tmp_path / "demo")
    index = TraceIndex(open_trace(demo))
    assert not has_function_events(index)
    async with ExplorerApp([(str(demo), index)]).run_test(size=(80, 24)) as pilot:
        pane = pilot.app.query_one(ExplorerPane)
        assert pane.check_action("calls", ()) is False
