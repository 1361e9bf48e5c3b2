"""A trace's metadata: the TSDL text tracetui writes, and reading it back.

The metadata file of a trace directory is plain-text CTF 1.8 TSDL: types, trace (uuid,
packet header), env (hostname, clock calibration), clock "tsc", one stream class (id 0:
packet context, event header), then one ``event`` block per marker; blocks for markers
registered later are appended (CTF 1.8 allows a growing metadata).  Every channel is an
instance of the same stream class, so an event is declared once whatever channel it is
routed to; the stream file name ``<channel>_<cpu>`` says which channel a stream belongs to
(:func:`stream_file_name`).  Field names are written with a leading underscore
(``_prev_pid``), which CTF readers strip: a field may then be named like a TSDL keyword.

The field types' declarations come from the one field table (core/model/fields.py), the
packet header's and context's from the one header table (core/model/packet.py).  Each field
is declared with a type alias named after its marker type (``tt_d``, ``tt_llu``...), so the
metadata maps back to the exact marker format; ``parse_metadata`` reads back what
``render_metadata`` writes (not arbitrary CTF).

Clock: ``tsc`` counts raw TSC ticks at the calibrated frequency; its offset places tick 0 on
the Unix epoch, so CTF readers show wall-clock times.  The calibration point (tsc0, mono_ns0)
is kept in ``env`` so tracetui can also give CLOCK_MONOTONIC times.
"""

from __future__ import annotations

import re
import socket
import time
import uuid as _uuid
from collections.abc import Iterable
from dataclasses import dataclass

from tracetui.core.model.clock import TraceClock
from tracetui.core.model.fields import TYPES
from tracetui.core.model.markers import Marker
from tracetui.core.model.packet import HEADER_FIELDS

__all__ = [
    "METADATA",
    "Metadata",
    "TraceFormatError",
    "parse_metadata",
    "parse_stream_file_name",
    "render_event",
    "render_metadata",
    "stream_file_name",
]

METADATA = "metadata"
TRACER_VERSION = (0, 1)


class TraceFormatError(ValueError):
    """A directory or file is not a readable tracetui trace; str() is one sentence."""


# -- TSDL ---------------------------------------------------------------------------

_ALIAS_TO_CODE = {t.alias: code for code, t in TYPES.items()}


def _tsdl_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_metadata(
    trace_uuid: bytes,
    clock: TraceClock,
    markers: Iterable[Marker] = (),
    *,
    hostname: str | None = None,
    trace_name: str = "",
    freq_hz: float | None = None,
) -> str:
    """The whole metadata text for a new trace."""
    u = _uuid.UUID(bytes=trace_uuid)
    host = hostname if hostname is not None else socket.gethostname()
    clock_uuid = _boot_id() or u
    created = time.strftime("%Y%m%dT%H%M%S%z")
    aliases = "\n".join(f"typealias {t.tsdl} := {t.alias};" for t in TYPES.values())
    header = _struct_fields("header", "\t\t")
    context = _struct_fields("context", "\t\t")
    env = [
        ("hostname", _tsdl_string(host)),
        ("domain", _tsdl_string("ust")),
        ("tracer_name", _tsdl_string("tracetui")),
        ("tracer_major", str(TRACER_VERSION[0])),
        ("tracer_minor", str(TRACER_VERSION[1])),
        ("trace_name", _tsdl_string(trace_name)),
        ("trace_creation_datetime", _tsdl_string(created)),
        ("tracetui_tsc0", str(clock.tsc0)),
        ("tracetui_mono_ns0", str(clock.mono_ns0)),
        ("tracetui_freq_hz", _tsdl_string(repr(freq_hz if freq_hz is not None else clock.freq))),
    ]
    env_text = "\n".join(f"\t{k} = {v};" for k, v in env)
    head = f"""/* CTF 1.8 */
/*
 * Written by tracetui {TRACER_VERSION[0]}.{TRACER_VERSION[1]}.  Event blocks are appended as
 * markers register; every channel is an instance of stream class 0 and its
 * files are named <channel>_<cpu>.
 */

typealias integer {{ size = 8; align = 8; signed = false; }} := uint8_t;
typealias integer {{ size = 16; align = 8; signed = false; }} := uint16_t;
typealias integer {{ size = 32; align = 8; signed = false; }} := uint32_t;
typealias integer {{ size = 64; align = 8; signed = false; }} := uint64_t;
{aliases}

trace {{
\tmajor = 1;
\tminor = 8;
\tuuid = "{u}";
\tbyte_order = le;
\tpacket.header := struct {{
{header}
\t}};
}};

env {{
{env_text}
}};

clock {{
\tname = "tsc";
\tuuid = "{clock_uuid}";
\tdescription = "TSC ticks, calibrated against CLOCK_MONOTONIC and CLOCK_REALTIME";
\tfreq = {clock.freq};
\tprecision = 1;
\toffset_s = {clock.offset_s};
\toffset = {clock.offset};
\tabsolute = TRUE;
}};

typealias integer {{ size = 64; align = 8; signed = false; map = clock.tsc.value; }} := tt_clock;

stream {{
\tid = 0;
\tpacket.context := struct {{
{context}
\t}};
\tevent.header := struct {{
\t\tuint16_t id;
\t\ttt_clock timestamp;
\t}};
}};
"""
    return head + "".join(render_event(m) for m in markers)


def _struct_fields(section: str, indent: str) -> str:
    """The TSDL declarations of the packet header's fields of one section (model/packet.py)."""
    return "\n".join(
        indent + f.tsdl.format(name=f.name) + ";" for f in HEADER_FIELDS if f.section == section
    )


def _boot_id() -> _uuid.UUID | None:
    """This boot's id: the TSC is one clock for every trace of a boot, so
    babeltrace2 may merge several tracetui traces recorded since then."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return _uuid.UUID(f.read().strip())
    except (OSError, ValueError):
        return None


def render_event(marker: Marker) -> str:
    """The ``event`` block of one marker (what is appended for a late marker)."""
    lines = []
    for f in marker.format.fields:
        suffix = "[1]" if f.type.code == "c" else ""
        lines.append(f"\t\t{f.type.alias} _{f.name}{suffix};\n")
    return (
        f"\nevent {{\n\tname = {_tsdl_string(marker.name)};\n\tid = {marker.id};\n"
        f"\tstream_id = 0;\n\tfields := struct {{\n{''.join(lines)}\t}};\n}};\n"
    )


# -- parsing it back --------------------------------------------------------------


@dataclass(frozen=True)
class Metadata:
    """What tracetui needs of a trace's metadata."""

    uuid: bytes
    clock: TraceClock
    markers: dict[int, Marker]
    env: dict[str, str | int]


_COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_BLOCK_START_RE = re.compile(r"\b(trace|env|clock|stream|event)\s*\{")
_ASSIGN_RE = re.compile(r'^\s*([A-Za-z_][\w.]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]+?)\s*;\s*$', re.M)
_FIELD_RE = re.compile(r"^\s*(tt_\w+)\s+_(\w+)\s*(\[1\])?\s*;\s*$")
_FIELDS_RE = re.compile(r"fields\s*:=\s*struct\s*\{(.*?)\}\s*;", re.S)


def _unquote(v: str) -> str | int:
    if v.startswith('"'):
        return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v[1:-1])
    try:
        return int(v, 0)
    except ValueError:
        return v


def _blocks(text: str) -> list[tuple[str, str, bool]]:
    """Top-level (kind, body, complete) blocks of TSDL text without comments."""
    out: list[tuple[str, str, bool]] = []
    pos = 0
    while True:
        m = _BLOCK_START_RE.search(text, pos)
        if not m:
            return out
        depth, i, n = 1, m.end(), len(text)
        in_str = False
        while i < n and depth:
            c = text[i]
            if in_str:
                if c == "\\":
                    i += 1
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            i += 1
        out.append((m.group(1), text[m.end() : i - 1], depth == 0))
        pos = i


def parse_metadata(text: str, where: str = "metadata") -> Metadata:
    """Read back metadata written by render_metadata/render_event.

    An incomplete last event block (being appended right now) is ignored.
    TraceFormatError (one sentence naming ``where``) for anything else.
    """
    if not text.startswith("/* CTF 1.8"):
        raise TraceFormatError(f"{where} is not CTF 1.8 plain-text metadata")
    body = _COMMENT_RE.sub(" ", text)
    blocks = _blocks(body)
    trace_uuid: bytes | None = None
    env: dict[str, str | int] = {}
    clock_attrs: dict[str, str | int] = {}
    markers: dict[int, Marker] = {}
    for n, (kind, block, complete) in enumerate(blocks):
        if not complete:
            if kind == "event" and n == len(blocks) - 1:
                break
            raise TraceFormatError(f"{where} has an unterminated {kind} block")
        attrs = {k: _unquote(v) for k, v in _ASSIGN_RE.findall(block)}
        if kind == "trace":
            try:
                trace_uuid = _uuid.UUID(str(attrs["uuid"])).bytes
            except (KeyError, ValueError):
                raise TraceFormatError(f"{where} has no valid trace uuid") from None
            if attrs.get("byte_order") != "le" or attrs.get("major") != 1:
                raise TraceFormatError(f"{where} does not describe a tracetui trace (CTF 1.8, le)")
        elif kind == "env":
            env = attrs
        elif kind == "clock":
            clock_attrs = attrs
        elif kind == "event":
            _add_marker(markers, attrs, block, where)
    if trace_uuid is None:
        raise TraceFormatError(f"{where} has no trace block")
    try:
        clock = TraceClock(
            freq=int(clock_attrs["freq"]),
            offset_s=int(clock_attrs.get("offset_s", 0)),
            offset=int(clock_attrs.get("offset", 0)),
            tsc0=int(env.get("tracetui_tsc0", 0)),
            mono_ns0=int(env.get("tracetui_mono_ns0", 0)),
        )
    except (KeyError, ValueError):
        raise TraceFormatError(f"{where} has no usable clock block") from None
    if clock.freq <= 0:
        raise TraceFormatError(f"{where} gives a clock frequency of {clock.freq} Hz")
    return Metadata(trace_uuid, clock, markers, env)


def _add_marker(
    markers: dict[int, Marker], attrs: dict[str, str | int], block: str, where: str
) -> None:
    name, eid = attrs.get("name"), attrs.get("id")
    if not isinstance(name, str) or not isinstance(eid, int):
        raise TraceFormatError(f"{where} has an event block without a name and an id")
    fm = _FIELDS_RE.search(block)
    parts: list[str] = []
    for line in (fm.group(1) if fm else "").split("\n"):
        if not line.strip():
            continue
        f = _FIELD_RE.match(line)
        if not f or f.group(1) not in _ALIAS_TO_CODE:
            raise TraceFormatError(
                f"{where}: event {name!r} has a field tracetui cannot read: {line.strip()!r}"
            )
        parts.append(f"{f.group(2)} %{_ALIAS_TO_CODE[f.group(1)]}")
    try:
        marker = Marker.make(eid, name, " ".join(parts))
    except ValueError as e:
        raise TraceFormatError(f"{where}: event {name!r}: {e}") from None
    old = markers.get(eid)
    if old is not None and old != marker:
        raise TraceFormatError(f"{where} declares event id {eid} twice ({old.name}, {name})")
    markers[eid] = marker


# -- stream files ------------------------------------------------------------------

_CHANNEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def stream_file_name(channel: str, cpu: int) -> str:
    """``<channel>_<cpu>``; ValueError for a channel name unfit for a file name."""
    if not _CHANNEL_RE.match(channel) or channel == METADATA:
        raise ValueError(
            f"channel name {channel!r} must be letters, digits, '.', '_' or '-' "
            "(at most 128, not starting with a punctuation mark)"
        )
    return f"{channel}_{cpu}"


_STREAM_NAME_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)_(\d+)$")


def parse_stream_file_name(name: str) -> tuple[str, int] | None:
    """(channel, cpu) of a stream file name, None for other files."""
    m = _STREAM_NAME_RE.match(name)
    return (m.group(1), int(m.group(2))) if m else None
