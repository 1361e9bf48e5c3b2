"""Pure data of tracetui: no cffi, no I/O, nothing that draws (see docs/ARCHITECTURE.md)."""
