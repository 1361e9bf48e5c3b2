"""Channel geometry: the limits of native/ttrb.h stated in Python, sizes as text, validation.

A channel is ``n_subbuf`` sub-buffers of ``subbuf_size`` bytes per buffer; both are powers of
two within the ring's limits (``TTRB_MIN_SUBBUF_SIZE``... in native/ttrb.h; a test compares
them with the compiled module).  The console and the layouts validate sizes with these
functions without loading the compiled ring.
"""

from __future__ import annotations

import errno
import re

__all__ = [
    "MAX_N_SUBBUF",
    "MAX_SUBBUF",
    "MIN_N_SUBBUF",
    "MIN_SUBBUF",
    "InvalidGeometry",
    "format_bytes",
    "parse_size",
    "validate",
]

MIN_SUBBUF = 4096
MAX_SUBBUF = 64 << 20
MIN_N_SUBBUF = 2
MAX_N_SUBBUF = 4096


class InvalidGeometry(ValueError):
    """A sub-buffer size or count the ring cannot accept; ``errno`` is EINVAL."""

    errno = errno.EINVAL


def format_bytes(n: int) -> str:
    """``256 KiB``, ``1 MiB``, ``4095 bytes``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << (shift - 4 if shift > 10 else 0)) == 0:
            return f"{n / (1 << shift):g} {unit}"
    return f"{n} bytes"


_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmg]?)(i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Parse "4096", "256K", "1M", "2MiB" into bytes; ValueError with a sentence."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise ValueError(
            f"'{text}' is not a size: use bytes or a number with K, M or G (e.g. 256K)"
        )
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def validate(subbuf_size: int, n_subbuf: int) -> None:
    """Raise InvalidGeometry unless the ring accepts this geometry."""
    if subbuf_size & (subbuf_size - 1) or not MIN_SUBBUF <= subbuf_size <= MAX_SUBBUF:
        raise InvalidGeometry(
            f"sub-buffer size {subbuf_size} must be a power of two between "
            f"{format_bytes(MIN_SUBBUF)} and {format_bytes(MAX_SUBBUF)}"
        )
    if n_subbuf & (n_subbuf - 1) or not MIN_N_SUBBUF <= n_subbuf <= MAX_N_SUBBUF:
        raise InvalidGeometry(
            f"sub-buffer count {n_subbuf} must be a power of two between "
            f"{MIN_N_SUBBUF} and {MAX_N_SUBBUF}"
        )
