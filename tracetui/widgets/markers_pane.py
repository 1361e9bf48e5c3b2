"""The pane of the markers node: every registered marker's id, name and format."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tracetui.core.model.markers import Marker


class MarkersPane(Vertical):
    """A table of the daemon's marker registry."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="pane")
        self.border_title = "markers"
        self._shown: tuple[Marker, ...] | None = None

    def compose(self) -> ComposeResult:
        table: DataTable[str] = DataTable(id="markers-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("id", "name", "format")
        yield table
        yield Static(
            "Programs register markers with tracetui.probe.marker(name, format).", classes="hint"
        )

    def show(self, markers: tuple[Marker, ...]) -> None:
        if markers == self._shown:
            return
        self._shown = markers
        table = self.query_one(DataTable)
        table.clear()
        for m in sorted(markers, key=lambda m: m.id):
            table.add_row(str(m.id), m.name, m.format.text, key=str(m.id))
        self.border_title = f"markers ({len(markers)})"
