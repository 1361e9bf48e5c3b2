"""The explorer's time overview strip (tracetui/widgets/overview.py) on the fixture trace."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tracetui.core.trace.index import TraceIndex, stream_label
from tracetui.core.trace.packets import Loss
from tracetui.core.trace.traces import open_trace
from tracetui.screens.explorer import EventList, ExplorerApp
from tracetui.widgets.explorer_fixtures import write_demo_trace
from tracetui.widgets.overview import Overview


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_trace(tmp_path_factory.mktemp("overview") / "demo")


def test_buckets_hold_every_item_once_counts_are_exact(trace: Path) -> None:
    index = TraceIndex(open_trace(trace))
    for _ in index.count_pass():
        pass
    counts, lost = index.stream_buckets(index.first_ns, index.last_ns + 1, 37)
    per_stream = Counter(f"{i.channel}_{i.cpu}" for i in open_trace(trace))
    for si, s in enumerate(index.streams):
        assert round(sum(counts[si])) == per_stream[stream_label(s)]
    # Loss marks: every loss the headers report, in its stream's row.
    want = Counter()
    for m in index.losses:
        want[m.stream] += m.lost
    assert {si: sum(row) for si, row in enumerate(lost) if sum(row)} == dict(want)
    assert sum(sum(row) for row in lost) == sum(
        i.lost for i in open_trace(trace) if isinstance(i, Loss)
    )


def test_a_zoomed_range_visits_only_its_packets(trace: Path) -> None:
    index = TraceIndex(open_trace(trace))
    t0 = index.first_ns + (index.last_ns - index.first_ns) // 2
    counts, _ = index.stream_buckets(t0, t0 + 50_000, 10)
    assert 0 < sum(map(sum, counts)) < 50  # about 5 events per 50 µs
    assert all(c is None for c in index.packet_count)  # nothing decoded: headers only


async def test_zoom_pan_pick_and_jump(trace: Path) -> None:
    index = TraceIndex(open_trace(trace))
    app = ExplorerApp([(str(trace), index)])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        ov = app.query_one(Overview)
        lst = app.query_one(EventList)
        full = ov.t1 - ov.t0
        strip = ov.render_line(0)
        assert strip.text.startswith("irq_0") and len(strip.text) == 80
        # The axis: the whole trace at x1.
        assert "x1" in ov.render_line(len(index.streams)).text
        # Opening and drawing decoded only the first screen's packets.
        assert sum(c is not None for c in index.packet_count) < len(index.packets) // 4
        await pilot.press("plus", "plus")
        assert ov.t1 - ov.t0 == pytest.approx(full / 4, rel=0.01)
        before = ov.t0
        await pilot.press("greater_than_sign")
        assert ov.t0 > before
        await pilot.press("less_than_sign", "less_than_sign")
        assert ov.t0 == index.first_ns  # clamped at the trace's start
        await pilot.press("minus", "minus", "minus")
        assert (ov.t0, ov.t1 - ov.t0) == (index.first_ns, full)  # never past the whole trace
        for _ in range(30):
            await pilot.press("right_square_bracket")
        at = ov.picked_ns()
        assert at is not None and ov.pick == 30
        await pilot.press("enter")
        row = lst.cursor
        assert lst.current().ts_ns >= at
        assert lst.rows.item(row - 1).ts_ns < at
        # The list moved: the strip marks its time, the pick is gone.
        assert ov.pick is None and ov.bucket_of(ov.cursor_ns) == 30
        # Moving the pick past the right edge pans the range.
        await pilot.press("plus", "plus", "plus")
        t0 = ov.t0
        for _ in range(ov.buckets + 3):
            await pilot.press("right_square_bracket")
        assert ov.t0 > t0 and ov.pick == ov.buckets - 1


async def test_loss_marks_are_drawn(trace: Path) -> None:
    index = TraceIndex(open_trace(trace))
    app = ExplorerApp([(str(trace), index)])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        ov = app.query_one(Overview)
        for m in index.losses:
            strip = ov.render_line(m.stream)
            i = ov.bucket_of(m.ts_ns)
            assert i is not None
            cell = list(strip.divide([ov._label_w + i, ov._label_w + i + 1]))[1]
            assert any(
                seg.style and seg.style.color and seg.style.color.name == "red" for seg in cell
            )


async def test_q_quits_the_standalone_explorer(trace: Path) -> None:
    app = ExplorerApp([(str(trace), TraceIndex(open_trace(trace)))])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running
