"""Rows wrapped onto continuation lines, for line-API views narrower than their rows.

The live view and the explorer's event list draw one row per line when it fits.  When the
view is narrower than its widest row (an 80-column terminal), every row takes the same number
of lines, ``lines_per_row`` (at most ``MOST``): the first line is the row's start, the next ones
continue it indented by ``INDENT``, so the fields stay visible instead of being cut at the
right edge.  The same number of lines for every row keeps row <-> line arithmetic a
multiplication (no per-row layout to keep for 100 k rows); a short row leaves its extra lines
blank.
"""

from __future__ import annotations

from rich.style import Style
from textual.strip import Strip

__all__ = ["INDENT", "MOST", "lines_per_row", "row_part"]

INDENT = 4
MOST = 4


def lines_per_row(longest: int, width: int, most: int = MOST) -> int:
    """Lines each row takes so that one LONGEST cells long fits WIDTH (1 when it fits)."""
    if longest <= width or width <= INDENT + 8:
        return 1
    return min(most, 1 + -(-(longest - width) // (width - INDENT)))


def row_part(strip: Strip, width: int, part: int, fill: Style) -> Strip:
    """Line PART (0: the first) of a row drawn as STRIP, WIDTH cells wide."""
    if part == 0:
        return strip.crop_extend(0, width, fill)
    start = width + (part - 1) * (width - INDENT)
    if start >= strip.cell_length:
        return Strip.blank(width, fill)
    body = strip.crop(start, start + width - INDENT)
    return Strip.join([Strip.blank(INDENT, fill), body]).extend_cell_length(width, fill)
