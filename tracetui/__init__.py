"""tracetui: a user-space tracer for Linux with a keyboard-driven terminal console."""

__version__ = "0.1.0"
