"""The CTF 1.8 trace directory: its metadata (TSDL) and its stream files.

A tracetui trace directory holds:

    metadata        plain-text TSDL: types, trace (uuid, packet header), env
                    (hostname, clock calibration), clock "tsc", one stream
                    class (id 0: packet context, event header), then one
                    ``event`` block per marker; blocks for markers registered
                    later are appended (CTF 1.8 allows a growing metadata).
    <channel>_<cpu> one stream file per channel and buffer: the packets
                    exactly as the ring buffer produced them (header and
                    context written by the backend, padding included).

Every channel is an instance of the same stream class, so an event is
declared once whatever channel it is routed to; the file name says which
channel a stream belongs to.  Field names are written with a leading
underscore (``_prev_pid``), which CTF readers strip: a field may then be
named like a TSDL keyword (``string``, ``event``...).

Each field is declared with a type alias named after its marker type
(``tt_d``, ``tt_llu``, ``tt_s``...), so the metadata maps back to the exact
marker format; ``parse_metadata`` reads back what ``TraceWriter`` writes
(not arbitrary CTF).

Clock: ``tsc`` counts raw TSC ticks at the calibrated frequency; its offset
places tick 0 on the Unix epoch, so CTF readers show wall-clock times.  The
calibration point (tsc0, mono_ns0) is kept in ``env`` so tracetui can also
give CLOCK_MONOTONIC times.
"""

from __future__ import annotations

import errno as _errno
import os
import re
import socket
import struct
import time
import uuid as _uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from tracetui.core.model.formats import MarkerFormat, check_event_name, parse_format

__all__ = [
    "EVENT_HEADER_SIZE",
    "MAGIC",
    "METADATA",
    "PACKET_HEADER",
    "PACKET_HEADER_SIZE",
    "RESERVED_ID",
    "Calibration",
    "Marker",
    "Metadata",
    "OutputError",
    "PacketHeader",
    "TraceClock",
    "TraceFormatError",
    "TraceWriter",
    "parse_metadata",
    "parse_stream_file_name",
    "render_event",
    "render_metadata",
    "stream_file_name",
]

METADATA = "metadata"
MAGIC = 0xC1FC1FC1
RESERVED_ID = 0xFFFF
TRACER_VERSION = (0, 1)

# magic, uuid, stream_id, timestamp_begin, timestamp_end, content_size (bits),
# packet_size (bits), packet_seq_num, events_discarded, cpu_id.
PACKET_HEADER = struct.Struct("<I16sIQQQQQQI")
PACKET_HEADER_SIZE = PACKET_HEADER.size  # 76
EVENT_HEADER = struct.Struct("<HQ")  # id, timestamp
EVENT_HEADER_SIZE = EVENT_HEADER.size  # 10
assert PACKET_HEADER_SIZE == 76 and EVENT_HEADER_SIZE == 10


class TraceFormatError(ValueError):
    """A directory or file is not a readable tracetui trace; str() is one sentence."""


class OutputError(OSError):
    """The trace output directory cannot be written; ``errno`` and one sentence."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class PacketHeader:
    """Packet header and context of one packet (sizes in bytes, not bits)."""

    magic: int
    uuid: bytes
    stream_id: int
    timestamp_begin: int
    timestamp_end: int
    content_size: int
    packet_size: int
    packet_seq_num: int
    events_discarded: int
    cpu_id: int

    @classmethod
    def parse(cls, buf: bytes | memoryview, offset: int = 0) -> PacketHeader:
        f = PACKET_HEADER.unpack_from(buf, offset)
        return cls(f[0], f[1], f[2], f[3], f[4], f[5] // 8, f[6] // 8, f[7], f[8], f[9])


# -- markers and clock -----------------------------------------------------------


@dataclass(frozen=True)
class Marker:
    """One event class of a trace: the daemon's 16-bit id, its name and format."""

    id: int
    name: str
    format: MarkerFormat

    @classmethod
    def make(cls, id: int, name: str, fmt: str | MarkerFormat) -> Marker:
        """Validate and build; ValueError with one sentence."""
        if not isinstance(id, int) or not 0 <= id < RESERVED_ID:
            raise ValueError(f"marker id {id!r} must be an integer in 0..{RESERVED_ID - 1}")
        check_event_name(name)
        return cls(id, name, fmt if isinstance(fmt, MarkerFormat) else parse_format(fmt))


class Calibration(Protocol):
    """What the writer needs of tracetui.core.buffers.ClockCalibration."""

    @property
    def freq_hz(self) -> float: ...
    @property
    def tsc0(self) -> int: ...
    @property
    def mono_ns0(self) -> int: ...
    @property
    def real_ns0(self) -> int: ...


NS = 1_000_000_000


@dataclass(frozen=True)
class TraceClock:
    """The trace's clock as the metadata records it.

    ``freq`` (integer Hz), ``offset_s`` + ``offset`` (ticks) place tick 0 on
    the Unix epoch, as CTF defines; ``tsc0``/``mono_ns0`` is one calibration
    point against CLOCK_MONOTONIC.
    """

    freq: int
    offset_s: int
    offset: int
    tsc0: int
    mono_ns0: int

    @classmethod
    def from_calibration(cls, cal: Calibration) -> TraceClock:
        freq = round(cal.freq_hz)
        if freq <= 0:
            raise ValueError(f"clock frequency {cal.freq_hz!r} Hz is not positive")
        # Wall time of tick 0 (may be before the epoch on a clock that does
        # not start near boot; offset_s is signed, offset stays in [0, freq)).
        wall0 = cal.real_ns0 - cal.tsc0 * NS // freq
        offset_s, rem_ns = divmod(wall0, NS)
        return cls(freq, offset_s, rem_ns * freq // NS, cal.tsc0, cal.mono_ns0)

    def wall_ns(self, tsc: int) -> int:
        """Nanoseconds since the epoch, computed exactly as babeltrace2 does."""
        # babeltrace2: ns = offset_s * 1e9 + trunc(1e9 * offset / freq)
        #                  + trunc(1e9 * value / freq), in doubles.
        return self.offset_s * NS + int(1e9 * self.offset / self.freq) + int(1e9 * tsc / self.freq)

    def mono_ns(self, tsc: int) -> int:
        """CLOCK_MONOTONIC nanoseconds."""
        return self.mono_ns0 + int((tsc - self.tsc0) * 1e9 / self.freq)


# -- TSDL ---------------------------------------------------------------------------

# Marker type -> TSDL alias.  %ld and %lld share a layout but keep distinct
# aliases so the metadata maps back to the exact format text.
_ALIASES: dict[str, str] = {
    "d": "integer { size = 32; align = 8; signed = true; }",
    "u": "integer { size = 32; align = 8; signed = false; }",
    "ld": "integer { size = 64; align = 8; signed = true; }",
    "lu": "integer { size = 64; align = 8; signed = false; }",
    "lld": "integer { size = 64; align = 8; signed = true; }",
    "llu": "integer { size = 64; align = 8; signed = false; }",
    "x": "integer { size = 32; align = 8; signed = false; base = 16; }",
    "p": "integer { size = 64; align = 8; signed = false; base = 16; }",
    # %c is one UTF-8 code unit; declared as a one-element array of it so
    # CTF readers show it as a one-character string.
    "c": "integer { size = 8; align = 8; signed = false; encoding = UTF8; }",
    "f": "floating_point { exp_dig = 11; mant_dig = 53; align = 8; }",
    "s": "string { encoding = UTF8; }",
}
_ALIAS_TO_CODE = {f"tt_{code}": code for code in _ALIASES}


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
    aliases = "\n".join(f"typealias {decl} := tt_{code};" for code, decl in _ALIASES.items())
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
\t\tuint32_t magic;
\t\tuint8_t uuid[16];
\t\tuint32_t stream_id;
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
\t\ttt_clock timestamp_begin;
\t\ttt_clock timestamp_end;
\t\tuint64_t content_size;
\t\tuint64_t packet_size;
\t\tuint64_t packet_seq_num;
\t\tuint64_t events_discarded;
\t\tuint32_t cpu_id;
\t}};
\tevent.header := struct {{
\t\tuint16_t id;
\t\ttt_clock timestamp;
\t}};
}};
"""
    return head + "".join(render_event(m) for m in markers)


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
        lines.append(f"\t\ttt_{f.type.code} _{f.name}{suffix};\n")
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


# -- writing ------------------------------------------------------------------------

_CHANNEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def stream_file_name(channel: str, cpu: int) -> str:
    """``<channel>_<cpu>``; ValueError for a channel name unfit for a file name."""
    if not _CHANNEL_RE.match(channel) or channel == METADATA:
        raise ValueError(
            f"channel name {channel!r} must be letters, digits, '.', '_' or '-' "
            "(at most 128, not starting with a punctuation mark)"
        )
    return f"{channel}_{cpu}"


class TraceWriter:
    """Writes one trace directory: metadata, then packets into stream files.

    ``add_marker`` must be called for an id before a packet holding it is
    written (the daemon registers markers before handing out target lists),
    so the metadata on disk always covers the streams.  ``write_packet``
    skips a packet whose sequence number was already written for its
    stream, so repeated flight-recorder snapshots append only new packets.

    Opening a directory that already holds a trace with the same uuid
    resumes it (a trace stopped and started again); one with another trace
    is refused.  Writes go straight to the files (no Python buffering): a
    packet is on its way to disk when ``write_packet`` returns.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        uuid: bytes,
        calibration: Calibration,
        markers: Iterable[Marker] = (),
        trace_name: str = "",
        hostname: str | None = None,
    ) -> None:
        if len(uuid) != 16:
            raise ValueError("a trace uuid is 16 bytes")
        self.path = os.fspath(path)
        self.uuid = uuid
        self._meta_fd = -1
        self.markers: dict[int, Marker] = {}
        self.clock: TraceClock
        markers = list(markers)
        self._fds: dict[tuple[str, int], int] = {}
        self._last_seq: dict[tuple[str, int], int] = {}
        self.bytes_written = 0
        self.packets_written = 0
        meta_path = os.path.join(self.path, METADATA)
        try:
            os.makedirs(self.path, mode=0o750, exist_ok=True)
        except OSError as e:
            raise OutputError(
                e.errno or _errno.EIO,
                f"cannot create trace directory {self.path}: {e.strerror or e}",
            ) from None
        if os.path.exists(meta_path):
            self._resume(meta_path)
        else:
            if any(not n.startswith(".") for n in os.listdir(self.path)):
                raise OutputError(
                    _errno.EEXIST,
                    f"{self.path} is not empty and holds no trace: choose another output",
                )
            self.clock = TraceClock.from_calibration(calibration)
            for m in markers:
                self._check_new(m)
                self.markers[m.id] = m
            text = render_metadata(
                uuid,
                self.clock,
                self.markers.values(),
                hostname=hostname,
                trace_name=trace_name,
                freq_hz=calibration.freq_hz,
            )
            # Whole file then rename: a reader never sees half a header.
            tmp = meta_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, meta_path)
        self._meta_fd = os.open(meta_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        for m in markers:  # on resume, markers new since the last run
            self.add_marker(m)

    def _resume(self, meta_path: str) -> None:
        with open(meta_path, encoding="utf-8", errors="replace") as f:
            meta = parse_metadata(f.read(), meta_path)
        if meta.uuid != self.uuid:
            raise OutputError(
                _errno.EEXIST, f"{self.path} already holds another trace: choose another output"
            )
        self.clock = meta.clock
        self.markers = dict(meta.markers)
        for name in os.listdir(self.path):
            key = parse_stream_file_name(name)
            if key is not None:
                last = _last_seq_in(os.path.join(self.path, name))
                if last is not None:
                    self._last_seq[key] = last

    def _check_new(self, m: Marker) -> bool:
        old = self.markers.get(m.id)
        if old is None:
            return True
        if old != m:
            raise ValueError(
                f"marker id {m.id} is already {old.name!r} ({old.format.text!r}) in this trace"
            )
        return False

    def add_marker(self, marker: Marker) -> bool:
        """Declare a marker; appends its event block.  False if already declared."""
        if not self._check_new(marker):
            return False
        _write_all(self._meta_fd, render_event(marker).encode())
        self.markers[marker.id] = marker
        return True

    def write_packet(self, channel: str, cpu: int, packet: bytes | bytearray | memoryview) -> bool:
        """Append one packet to ``<channel>_<cpu>``; False if it was written already."""
        if len(packet) < PACKET_HEADER_SIZE:
            raise ValueError(f"a packet is at least {PACKET_HEADER_SIZE} bytes")
        f = PACKET_HEADER.unpack_from(packet)
        if f[0] != MAGIC or f[6] != len(packet) * 8 or f[5] > f[6]:
            raise ValueError(
                f"not a packet of this backend (magic {f[0]:#x}, size {len(packet)} bytes, "
                f"packet_size {f[6]} bits)"
            )
        if f[1] != self.uuid:
            raise ValueError("packet belongs to another trace (uuid mismatch)")
        key = (channel, cpu)
        seq = f[7]
        last = self._last_seq.get(key)
        if last is not None and seq <= last:
            return False
        fd = self._fds.get(key)
        if fd is None:
            name = os.path.join(self.path, stream_file_name(channel, cpu))
            fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self._fds[key] = fd
        _write_all(fd, packet)
        self._last_seq[key] = seq
        self.bytes_written += len(packet)
        self.packets_written += 1
        return True

    def sync(self) -> None:
        """fsync every file (on stop: the trace is then safe on disk)."""
        for fd in (*self._fds.values(), self._meta_fd):
            if fd >= 0:
                os.fsync(fd)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._meta_fd >= 0:
            os.close(self._meta_fd)
            self._meta_fd = -1

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


_STREAM_NAME_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)_(\d+)$")


def parse_stream_file_name(name: str) -> tuple[str, int] | None:
    """(channel, cpu) of a stream file name, None for other files."""
    m = _STREAM_NAME_RE.match(name)
    return (m.group(1), int(m.group(2))) if m else None


def _last_seq_in(path: str) -> int | None:
    """Sequence number of the last whole packet of a stream file."""
    last = None
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        off = 0
        while off + PACKET_HEADER_SIZE <= size:
            f.seek(off)
            h = PacketHeader.parse(f.read(PACKET_HEADER_SIZE))
            if h.magic != MAGIC or h.packet_size <= 0 or off + h.packet_size > size:
                break
            last = h.packet_seq_num
            off += h.packet_size
    return last
