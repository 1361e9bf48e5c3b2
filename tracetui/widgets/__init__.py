"""Widgets of the tracetui console (and the plain state they draw)."""
