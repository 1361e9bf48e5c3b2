"""The live view's call tree (key k, palette "live: Toggle call tree") and log records.

Events are real reader Events over real marker formats (those tracetui.core.pytrace and the
logging bridge write), fed to a real LiveView in a running Textual app.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Footer

from tracetui.core import logbridge, pytrace
from tracetui.core.model.markers import Marker
from tracetui.core.trace.packets import Event, EventClass, Stream
from tracetui.widgets.fixtures import CLOCK
from tracetui.widgets.live_view import LiveView

STREAM = Stream("main", 0, "/nonexistent/main_0", CLOCK)
CLS = {
    name: EventClass(Marker.make(i, name, fmt), STREAM)
    for i, (name, fmt) in enumerate(
        [*pytrace.EVENTS.items(), (logbridge.LOG_EVENT, logbridge.LOG_FORMAT)]
    )
}


def events() -> list[Event]:
    t = 1_000_000
    out = []

    def ev(name: str, *values: object) -> None:
        nonlocal t
        t += 1_500  # 1.5 µs at 1 GHz
        out.append(Event(t, values, CLS[name]))

    ev("py_func", 1, 10, "app.main", "/app.py")
    ev("py_call", 7, 1)
    ev("py_func", 2, 20, "app.leaf", "/app.py")
    ev("py_call", 7, 2)
    ev("py_return", 7, 2)
    ev("py_log", 7, 30, 21, "app", "careful", "/app.py")
    ev("py_call", 8, 2)  # another thread
    ev("py_raise", 8, 2, "ValueError")
    ev("py_return", 7, 1)
    ev("py_return", 9, 2)  # its call was before the view started
    return out


class ViewApp(App[None]):
    def compose(self) -> ComposeResult:
        yield LiveView("t/main", id="v")
        yield Footer()


def footer_keys(app: App[None]) -> set[str]:
    from textual.widgets._footer import FooterKey

    return {k.key for k in app.query(FooterKey)}


async def test_call_tree_toggles_and_log_records_show_level_and_message() -> None:
    app = ViewApp()
    async with app.run_test() as pilot:
        view = app.query_one(LiveView)
        view.focus()
        await pilot.pause()
        assert "k" not in footer_keys(app)  # no function events: no call tree key
        view.append_batch(events())
        view.drain()
        view.focus()
        view.show_cpu = False
        await pilot.pause()

        def texts() -> list[str]:
            return [view._plain(r).split(None, 2)[2] for r in view._view]

        flat = texts()
        assert flat[1].startswith("py_call") and flat[1].endswith("tid=7, func=1")
        assert flat[5].endswith("WARNING app: careful  (/app.py:21, tid 7)")
        await pilot.press("k")
        assert view.call_tree
        tree = [t.split(None, 1)[1] for t in texts()]
        assert tree[1] == "[7] ├ app.main"
        assert tree[3] == "[7] │ ├ app.leaf"
        assert tree[4] == "[7] │ └ app.leaf  1.5 µs"
        assert tree[5] == "WARNING app: careful  (/app.py:21, tid 7)"
        assert tree[6] == "[8] ├ app.leaf"
        assert tree[7] == "[8] ✗ app.leaf  raised ValueError  1.5 µs"
        assert tree[8] == "[7] └ app.main  10.5 µs"
        assert tree[9] == "[9] └ app.leaf  (call not seen)"
        assert "k" in footer_keys(app)
        await pilot.press("k")
        assert texts() == flat
