"""Screens of the tracetui console: one per module."""
