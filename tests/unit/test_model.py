"""The one statement of each fact (core/model) against its other statements: the compiled C
module, native/ttrb.h, and the renderings that derive from it."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from tracetui.core._ttrb import lib

from tracetui.core.model.fields import NATIVE_TYPES, TYPES
from tracetui.core.model.markers import RESERVED_ID, Marker, marker_line, parse_marker_lines
from tracetui.core.model.packet import (
    EVENT_HEADER_SIZE,
    HEADER_FIELDS,
    MAGIC,
    OFFSETS,
    PACKET_HEADER_SIZE,
)
from tracetui.core.model.stats import Stats, parse_stats, stats_line

TTRB_H = Path(__file__).resolve().parents[2] / "native" / "ttrb.h"


def test_field_types_match_the_compiled_emitters() -> None:
    for name, value in NATIVE_TYPES.items():
        assert getattr(lib, f"TTPR_{name}") == value, name
    for t in TYPES.values():
        assert t.size == (struct.calcsize("<" + t.struct_char) if t.struct_char else 0)
        assert t.alias == f"tt_{t.code}"


def test_packet_header_matches_the_compiled_ring() -> None:
    assert PACKET_HEADER_SIZE == lib.TTRB_PACKET_HEADER_SIZE
    assert EVENT_HEADER_SIZE == lib.TTRB_EVENT_HEADER_SIZE
    assert MAGIC == lib.TTRB_MAGIC


def test_packet_header_matches_the_compiled_decoder() -> None:
    from tracetui.core.trace import _ttdec

    assert PACKET_HEADER_SIZE == _ttdec.PACKET_HEADER_SIZE
    assert EVENT_HEADER_SIZE == _ttdec.EVENT_HEADER_SIZE


def test_packet_header_matches_the_layout_ttrb_h_documents() -> None:
    # The header's layout table: "  off  size  field ...", one row per field.
    rows = re.findall(r"^ \*\s+(\d+)\s+(\d+)\s+([a-z_]+)", TTRB_H.read_text(), re.M)
    documented = {("uuid" if name == "trace" else name): (int(o), int(s)) for o, s, name in rows}
    assert documented, "ttrb.h no longer documents the packet layout"
    for f in HEADER_FIELDS:
        assert documented[f.name] == (OFFSETS[f.name], f.size), f.name


def test_marker_line_codec_round_trips() -> None:
    text = "\n".join(
        [marker_line(0, "sched_switch", "prev_pid %d comm %s"), marker_line(1, "tick", "")]
    )
    assert text == "0 sched_switch prev_pid %d comm %s\n1 tick"
    assert parse_marker_lines(text + "\nnot a marker line") == [
        (0, "sched_switch", "prev_pid %d comm %s"),
        (1, "tick", ""),
    ]
    assert Marker.make(0, "sched_switch", "prev_pid %d comm %s").line() == text.split("\n")[0]
    with pytest.raises(ValueError, match=r"0\.\.65534"):
        Marker.make(RESERVED_ID, "x", "")


def test_stats_text_round_trips_and_lost_has_one_meaning() -> None:
    st = Stats(recorded=5, discarded=2, overwritten=3, too_big=1, lost_dead=2)
    assert parse_stats(stats_line("cpu0", st)) == {"cpu0": st}
    assert (st.dropped, st.lost) == (3, 6)  # lost_dead is part of discarded


def test_geometry_limits_match_the_compiled_ring() -> None:
    from tracetui.core.model import geometry as G

    assert (G.MIN_SUBBUF, G.MAX_SUBBUF) == (lib.TTRB_MIN_SUBBUF_SIZE, lib.TTRB_MAX_SUBBUF_SIZE)
    assert (G.MIN_N_SUBBUF, G.MAX_N_SUBBUF) == (lib.TTRB_MIN_N_SUBBUF, lib.TTRB_MAX_N_SUBBUF)
    assert G.parse_size("256K") == 256 << 10
    with pytest.raises(G.InvalidGeometry, match="power of two between 4 KiB and 64 MiB"):
        G.validate(3000, 8)
