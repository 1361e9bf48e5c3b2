"""Rows wrapped onto continuation lines, for line-API views narrower than their rows.

The live view and the explorer's event list draw one row per line when it fits.  When the
view is narrower than its widest row (an 80-column terminal), every row takes the same number
of lines, ``lines_per_row`` (at most ``MOST``): the first line is the row's start, the next ones
continue it indented by ``INDENT``, so the fields stay visible instead of being cut at the
right edge.  The same number of lines for every row keeps row <-> line arithmetic a
multiplication (no per-row layout to keep for 100 k rows); a short row leaves its extra lines
blank.  A line ends after the last space in its second half, so a field (``name=value``) is not
cut in two, unless the rest of the row would then not fit its lines: then, and for text whose
characters are not all one cell wide, a line is cut where it is full.
"""

from __future__ import annotations

from rich.style import Style
from textual.strip import Strip

__all__ = ["INDENT", "MOST", "line_starts", "lines_per_row", "row_part"]

INDENT = 4
MOST = 4


def lines_per_row(longest: int, width: int, most: int = MOST) -> int:
    """Lines each row takes so that one LONGEST cells long fits WIDTH (1 when it fits)."""
    if longest <= width or width <= INDENT + 8:
        return 1
    return min(most, 1 + -(-(longest - width) // (width - INDENT)))


def line_starts(text: str, width: int, lines: int) -> list[int]:
    """The cell where each line of a row of TEXT starts (fewer than LINES when it ends sooner).

    A line ends after the last space in its second half when what is left still fits the
    row's other lines, else where it is full."""
    room = width - INDENT  # a continuation line's
    if not text.isascii():  # a character is a cell only in ASCII text
        return [0, *(s for s in (width + k * room for k in range(lines - 1)) if s < len(text))]
    starts, pos = [0], 0
    for k in range(lines - 1):
        here = width if k == 0 else room
        end = pos + here
        if end >= len(text):
            break
        cut = text.rfind(" ", pos + here // 2, end) + 1
        if cut and len(text) - cut <= (lines - k - 1) * room:
            end = cut
        starts.append(end)
        pos = end
    return starts


def row_part(strip: Strip, width: int, part: int, fill: Style, lines: int) -> Strip:
    """Line PART (0: the first) of the LINES lines of a row drawn as STRIP, WIDTH cells wide."""
    starts = line_starts(strip.text, width, lines)
    if part >= len(starts):
        return Strip.blank(width, fill)
    start = starts[part]
    room = width if part == 0 else width - INDENT
    end = starts[part + 1] if part + 1 < len(starts) else start + room
    if part == 0:
        return strip.crop_extend(0, end, fill).extend_cell_length(width, fill)
    body = strip.crop(start, end)
    return Strip.join([Strip.blank(INDENT, fill), body]).extend_cell_length(width, fill)
