"""One rendering of events and losses as text lines and JSON objects (dump and watch).

Text, one line per event and per loss::

    [22:19:34.909345757] cpu 0 main sched_switch: prev_pid=1, next_pid=2, comm="bash"
    [22:19:34.909401220] cpu 1 main LOST 12 events

The text lines are core/trace/lines.py's (the explorer draws the same). Times are local
wall-clock times of day (core/model/clock.py, as babeltrace2 computes them);
values are shown by ``MarkerFormat.format_values`` (core/model/formats.py), which the
console's live views use too.  ``tracetui dump`` writes the same lines through a generated
fast path (cli/dump.py); a test holds the two to the same text.

JSON: ``{"ts_ns", "cpu", "channel", "name", "fields"}`` per event and ``{"lost", "channel",
"cpu", "ts_ns", "unit"}`` per loss; ``ts_ns`` is CLOCK_MONOTONIC nanoseconds; floats that JSON
cannot hold (nan, inf) are strings.
"""

from __future__ import annotations

import math
from typing import Any

from tracetui.core.model.fields import FieldType
from tracetui.core.trace.lines import item_line, loss_text
from tracetui.core.trace.packets import Item, Loss

__all__ = ["event_json", "item_line", "json_value", "loss_text"]


def json_value(t: FieldType, v: Any) -> Any:
    if t.kind == "float" and not math.isfinite(v):
        return str(v)  # "nan", "inf": JSON has no such numbers
    return v


def event_json(e: Item) -> dict[str, Any]:
    """The JSON object of one event or loss (stable keys)."""
    if isinstance(e, Loss):
        return {
            "lost": e.lost,
            "channel": e.channel,
            "cpu": e.cpu,
            "ts_ns": e.ts_ns,
            "unit": e.unit,
        }
    types = e.cls.format.types
    return {
        "ts_ns": e.ts_ns,
        "cpu": e.cpu,
        "channel": e.channel,
        "name": e.name,
        "fields": {
            n: json_value(t, v) for n, t, v in zip(e.cls.names, types, e.values, strict=True)
        },
    }
