"""Markers as C objects: the glue between tracetui.core._ttpy and the cffi backend.

``_ttpy`` (native/ttpy.c) is a CPython extension whose markers are vectorcall objects that
convert their arguments in C and emit through ttpr's emitters.  It does not contain the ring
buffer or the emitters: there is one copy of that state per process, in the cffi module
(tracetui.core._ttrb).  This module hands ``_ttpy`` the emitters' addresses once, at import
(``_ttpy.init``), and builds a C marker over a NativeMarker (which owns the ``struct
ttpr_marker`` and is kept alive by the C object).

``available()`` is False when the extension was not built; tracetui.probe then falls back to
its Python markers.
"""

from __future__ import annotations

import importlib
from typing import Any

from tracetui.core.model.formats import MarkerFormat
from tracetui.core.ring import NativeMarker, emitter_addresses

_ttpy: Any
try:
    _ttpy = importlib.import_module("tracetui.core._ttpy")
except ImportError:  # built without the extension: Python markers
    _ttpy = None
else:
    _ttpy.init(*emitter_addresses())

# Format type code -> ttpr field type (native/ttpr.h).
_TTPR = {"d": 1, "u": 2, "ld": 3, "lld": 3, "lu": 4, "llu": 4, "x": 5, "p": 6, "s": 7, "c": 8,
         "f": 9}  # fmt: skip


def available() -> bool:
    return _ttpy is not None


def c_marker(name: str, fmt: MarkerFormat, native: NativeMarker) -> Any:
    """A C marker named NAME of format FMT emitting through NATIVE (None without _ttpy)."""
    if _ttpy is None:
        return None
    types = bytes(_TTPR[t.code] for t in fmt.types)
    # Keyword arguments are matched against the encoder's parameter names, so a call the
    # C side refuses gets exactly the encoder's sentence.
    params = tuple(fmt.encode.__code__.co_varnames[: len(fmt.types)])
    return _ttpy.Marker(native, native.address, types, params, fmt, name)
