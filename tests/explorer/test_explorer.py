"""The explorer's trace index (tracetui.core.trace.index) on fixture traces.

The demo trace (tracetui.widgets.explorer_fixtures) has fixed timestamps, three overlapping
streams and both kinds of header-reported loss; the index must show exactly the items the
merged reader gives, in the same order, without decoding anything to open.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tracetui.core.model.predicate import EventFilter
from tracetui.core.trace.index import FilteredRows, Statistics, TraceIndex, find
from tracetui.core.trace.packets import Event, Loss
from tracetui.core.trace.traces import open_trace
from tracetui.widgets.explorer_fixtures import write_demo_trace


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_trace(tmp_path_factory.mktemp("explorer") / "demo")


def test_opening_decodes_nothing_and_estimates_rows(demo: Path) -> None:
    idx = TraceIndex(open_trace(demo))
    assert not idx._cache and all(c is None for c in idx.packet_count)
    assert len(idx.packets) > 10 and idx.window_total == len(idx.cuts)
    whole = list(open_trace(demo))
    assert 0.5 * len(whole) < idx.row_count < 2 * len(whole)  # an estimate from sizes
    assert not idx.exact_count
    # Losses from the headers alone: the discarded rise on main_1, the gap on main_0.
    assert [
        (idx.streams[m.stream].channel, idx.streams[m.stream].cpu, m.lost, m.unit)
        for m in idx.losses
    ] == [("main", 1, 1532, "events"), ("main", 0, 1, "packets")]


def test_rows_are_the_merged_trace(demo: Path) -> None:
    idx = TraceIndex(open_trace(demo), cache_items=1000)  # a small cache: evictions happen
    for _ in idx.count_pass():
        pass
    whole = list(open_trace(demo))
    assert idx.exact_count and idx.row_count == len(whole)
    rows = idx.rows(0, len(whole) + 5)
    assert [r for r, _ in rows] == list(range(len(whole)))
    assert [repr(x) for _, x in rows] == [repr(x) for x in whole]
    assert idx._cached_items <= 1000 + max(len(x) for x in idx._cache.values())
    # Any window read alone agrees with the whole read.
    assert [repr(x) for _, x in idx.rows(3000, 7)] == [repr(x) for x in whole[3000:3007]]


def test_jump_to_time_and_losses(demo: Path) -> None:
    idx = TraceIndex(open_trace(demo))
    whole = list(open_trace(demo))
    for i in (0, 17, 2500, len(whole) - 1):
        row = idx.row_at_time(whole[i].ts_ns)
        assert idx.item(row).ts_ns == whole[i].ts_ns
    first = idx.loss_near(0)
    assert first is not None
    item = idx.item(idx.row_of_loss(first))
    assert isinstance(item, Loss) and item.lost == 1532 and item.cpu == 1
    second = idx.loss_near(first.ts_ns)
    assert second is not None and second.unit == "packets"
    assert idx.loss_near(second.ts_ns) is None
    assert idx.loss_near(second.ts_ns, backwards=True) == first


def test_statistics_filter_and_find(demo: Path) -> None:
    idx = TraceIndex(open_trace(demo))
    whole = list(open_trace(demo))
    events = [x for x in whole if isinstance(x, Event)]
    *progress, st = idx.statistics()
    assert isinstance(st, Statistics) and progress[-1].fraction == 1.0
    assert st.events == len(events)
    assert sum(st.by_name.values()) == sum(st.by_cpu.values()) == len(events)
    assert st.lost_events == {"main_1": 1532} and st.lost_packets == {"main_0": 1}
    assert st.rate(st.events) > 0

    flt = EventFilter("sched_*", "prev_pid < 150 and next_comm == 'bash'")
    *_, counts = idx.filter_windows(flt)
    view = FilteredRows(idx, flt, counts)
    expected = [
        x
        for x in whole
        if isinstance(x, Loss)
        or (x.name == "sched_switch" and x.values[0] < 150 and x.values[3] == "bash")
    ]
    assert view.row_count == len(expected)
    assert [repr(x) for _, x in view.rows(0, 10**6)] == list(map(repr, expected))

    *_, row = find(idx, 0, lambda it: getattr(it, "name", "") == "proc_fork")
    assert row is not None and idx.item(row).name == "proc_fork"
    *_, back = find(idx, row, lambda it: getattr(it, "name", "") == "proc_fork", backwards=True)
    assert back is None or back < row


def test_overview_buckets(demo: Path) -> None:
    idx = TraceIndex(open_trace(demo))
    by_channel, lost = idx.buckets(idx.first_ns, idx.last_ns + 1, 20)
    assert set(by_channel) == {"main", "irq"}
    assert sum(lost) == 1533
    for _ in idx.count_pass():
        pass
    idx.rows(0, idx.row_count)  # every packet decoded: exact per-packet counts
    by_cpu, _ = idx.buckets(idx.first_ns, idx.last_ns + 1, 20, by="cpu")
    total = sum(sum(v) for v in by_cpu.values())
    assert abs(total - idx.row_count) < 1e-6 * idx.row_count + 1
