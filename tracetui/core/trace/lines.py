"""One text line per event and per loss, shared by the CLI (cli/render.py: dump, watch) and
the console's explorer::

    [22:19:34.909345757] cpu 0 main sched_switch: prev_pid=1, next_pid=2, comm="bash"
    [22:19:34.909401220] cpu 1 main LOST 12 events

Times are local wall-clock times of day (core/model/clock.py, as babeltrace2 computes them);
values are shown by ``MarkerFormat.format_values`` (core/model/formats.py).
"""

from __future__ import annotations

from tracetui.core.model.clock import time_of_day
from tracetui.core.trace.packets import Item, Loss

__all__ = ["item_line", "loss_text"]


def loss_text(lost: int, unit: str) -> str:
    """``LOST 12 events`` (``1 event``, ``3 packets``)."""
    return f"LOST {lost} {unit if lost != 1 else unit[:-1]}"


def item_line(item: Item) -> str:
    """The text line of one event or loss."""
    head = f"[{time_of_day(item.wall_ns)}] cpu {item.cpu} {item.channel}"
    if isinstance(item, Loss):
        return f"{head} {loss_text(item.lost, item.unit)}"
    fmt = item.cls.format
    return (
        f"{head} {item.name}: {fmt.format_values(item.values)}"
        if fmt.fields
        else (f"{head} {item.name}")
    )
