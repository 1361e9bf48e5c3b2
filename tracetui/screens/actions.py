"""The console's commands, stated once: keys and footer labels (BINDINGS) and palette entries.

Each row names a ``MainScreen.action_<name>``.  A row with a key becomes a ``Binding`` (the
footer shows them in table order); a row with a title becomes a command palette entry
("trace: Start").  To add a command: a row here and an ``action_<name>`` on the screen.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType

__all__ = ["ACTIONS", "BINDINGS", "PALETTE", "Action"]


@dataclass(frozen=True)
class Action:
    """One command: the screen action, its key and footer label, its palette title and help."""

    name: str
    key: str | None = None
    label: str = ""
    title: str | None = None
    help: str = ""


ACTIONS: tuple[Action, ...] = (
    Action("new_trace", "n", "New trace", "trace: New", "Create a trace (with a channel main)"),
    Action(
        "new_channel", "c", "New chan", "channel: New", "Add a channel to the selected trace"
    ),
    Action("delete", "d", "Delete"),  # the live view's close, else the selection's delete
    Action("delete_selected", title="trace: Delete", help="Delete the selected trace or channel"),
    Action("allocate", "a", "Allocate", "channel: Allocate/Free", "Allocate or free the buffers"),
    Action(
        "start_stop", "s", "Start/stop", "trace: Start/Stop", "Start or stop the selected trace"
    ),
    Action("start", title="trace: Start", help="Start the selected trace"),
    Action("stop", title="trace: Stop", help="Stop the selected trace"),
    Action("snapshot", title="trace: Snapshot", help="Write the flight channels of the trace now"),
    Action(
        "toggle_flight",
        "f",
        "Flight",
        "channel: Toggle flight",
        "Flight recorder (overwrite) or discard",
    ),
    Action(
        "toggle_global",
        "g",
        "Global",
        "channel: Toggle global",
        "One buffer for all CPUs, or one per CPU",
    ),
    Action("edit_filter", "e", "Filter"),  # the live view's name filter, else the selection's
    Action(
        "edit_trace_filter", title="trace: Edit filter", help="Edit the event filter of the trace"
    ),
    Action(
        "edit_routing", title="channel: Edit routing filter", help="Events routed to this channel"
    ),
    Action("edit_live_filter", title="live: Filter by event name", help="Show only some events"),
    Action("open_live", "l", "Live", "channel: Open live view", "Watch the channel's events live"),
    Action("open_remote", title="remote: Open live session", help="A session a relayd serves"),
    Action("pause_follow", "space", "Pause", "live: Pause/Follow", "Pause or follow the live view"),
    Action("search", "slash", "Search", "live: Search", "Search the live view"),
    Action("toggle_time", title="live: Toggle timestamps", help="Relative or absolute time"),
    Action("toggle_cpu", title="live: Toggle CPU column", help="Show or hide the CPU column"),
    Action("toggle_calls", title="live: Toggle call tree", help="Function events as a call tree"),
    Action("close_live", title="live: Close", help="Close the live view"),
    Action(
        "open_trace", "o", "Open", "explorer: Open a trace", "Explore a recorded trace directory"
    ),
    Action(
        "open_recording",
        title="trace: Open last recording",
        help="Explore the selected trace's output directory",
    ),
    Action("show_explorer", title="explorer: Show open traces", help="The traces opened with o"),
    Action(
        "save_layout",
        "ctrl+s",
        "Save",
        "layout: Save",
        "Save traces, channels, filters and views",
    ),
    Action("load_layout", "ctrl+o", "Load", "layout: Load", "Restore a saved layout"),
    Action("help", "question_mark", "Help", "console: Help", "Keys and badges"),
    Action("quit", "q", "Quit"),
)

BINDINGS: list[BindingType] = [Binding(a.key, a.name, a.label, id=a.name) for a in ACTIONS if a.key]
PALETTE: tuple[Action, ...] = tuple(a for a in ACTIONS if a.title)
