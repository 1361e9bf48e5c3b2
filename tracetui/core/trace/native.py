"""The explorer's scans in C: the glue between a trace's streams and ``_ttdec`` (native/ttdec.c).

``TraceIndex``'s statistics and filter scans ask :func:`stream_scanner` for each stream; it
answers a :class:`StreamScanner` when the stream's records can be walked in C, else None and
the scan decodes that stream in Python (``TraceSource.packet_items``), with identical results.
C walks tracetui's own streams (``TraceDirectory``: ``u16 id | u64 tsc | payload`` records of
the field types of ``core/model/fields.py``); other producers' streams (LTTng's CTF: alignment,
variants, sequences) stay in Python.  The compiled module is imported here, at the first scan,
never when the console starts.

Per packet, the scanner reads the packet's bytes as ``packet_items`` does (same checks, same
``TraceFormatError`` sentences), finds its losses with the one ``LossTracker`` rule, and lets C
count events per id (``stats``) or evaluate a compiled filter per record and count matches per
time window (``windows``).  :func:`compile_filter` compiles an ``EventFilter`` for one stream's
event classes, or answers None when a class needs what only Python does exactly (a regular
expression, a float constant against an integer field, ...): the scan then runs in Python.
"""

from __future__ import annotations

import os
from typing import Any

from tracetui.core.model.fields import FieldType
from tracetui.core.model.packet import HEADER_FIELDS, PACKET_HEADER, PACKET_HEADER_SIZE
from tracetui.core.model.predicate import EventFilter, Node
from tracetui.core.trace.metadata import TraceFormatError
from tracetui.core.trace.packets import EventClass, LossTracker, Stream
from tracetui.core.trace.source import PacketInfo

try:
    from tracetui.core.trace import _ttdec
except ImportError:  # not built (a source checkout without build_ext): Python scans
    _ttdec = None  # type: ignore[assignment]

__all__ = ["StreamScanner", "available", "compile_filter", "field_code", "stream_scanner"]

# FieldType.kind -> the kind codes of native/ttdec.c (K_INT, K_CHAR, K_FLOAT, K_STR).
KIND_CODES = {"int": 0, "hex": 0, "char": 1, "float": 2, "str": 3}
_POS = {f.name: i for i, f in enumerate(HEADER_FIELDS)}
_BEGIN, _SEQ, _DISCARDED = _POS["timestamp_begin"], _POS["packet_seq_num"], _POS["events_discarded"]
# Set False (tests, benchmarks) to run every scan in Python.
ENABLED = os.environ.get("TRACETUI_NATIVE", "1") != "0"
# Whether the last export_perfetto ran in C (benchmarks/bench_explore.py reports it).
last_export_native = False


def available() -> bool:
    return _ttdec is not None and ENABLED


def field_code(t: FieldType) -> tuple[int, int, bool]:
    """A field type as C walks it: (kind code, size in bytes, signed), from the field table."""
    return (KIND_CODES[t.kind], t.size, t.signed)


class _LossOut:
    """The StreamDecoder face LossTracker needs: losses as (tsc, lost, unit)."""

    @staticmethod
    def loss(tsc: int, lost: int, unit: str) -> tuple[int, int, str]:
        return (tsc, lost, unit)


class StreamScanner:
    """One stream of a ``TraceDirectory`` whose records C walks (see the module docstring)."""

    def __init__(self, source: Any, stream: Stream, infos: list[PacketInfo]) -> None:
        assert _ttdec is not None
        self.source = source
        self.stream = stream
        self.infos = infos
        markers = source.markers
        self.classes = {mid: EventClass(m, stream) for mid, m in markers.items()}
        self.layout = _ttdec.Layout(
            [(mid, tuple(field_code(t) for t in m.format.types)) for mid, m in markers.items()]
        )
        clock = stream.clock
        self.clock = (clock.tsc0, clock.mono_ns0, clock.freq)
        self._fd: int | None = None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self, info: PacketInfo) -> tuple[bytes, list[tuple[int, int, str]], int]:
        """(packet bytes up to its content end, its losses, its begin ticks), as packet_items
        reads them."""
        if self._fd is None:
            try:
                self._fd = os.open(self.stream.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise TraceFormatError(f"cannot read {self.stream.path}: {e.strerror}") from None
        buf = os.pread(self._fd, info.content_size, info.offset)
        if len(buf) < info.content_size or len(buf) < PACKET_HEADER_SIZE:
            raise self.source._bad(self.stream, info.offset, "the file ends inside the packet")
        h = PACKET_HEADER.unpack_from(buf)
        tracker = LossTracker()
        if info.index > 0:
            prev = self.infos[info.index - 1]
            tracker.prev_seq = -1 if prev.seq is None else prev.seq
            tracker.prev_disc = prev.events_discarded
        losses: list[Any] = []
        tracker.losses(h[_BEGIN], h[_SEQ], h[_DISCARDED], _LossOut, losses)  # type: ignore[arg-type]
        return buf, losses, h[_BEGIN]

    def _bad(self, info: PacketInfo, e: ValueError) -> TraceFormatError:
        return self.source._bad(self.stream, info.offset, str(e))

    def stats(
        self, info: PacketInfo
    ) -> tuple[list[Any], dict[int, int], int, int | None, int | None]:
        """(losses, {id: events}, events, first event's tsc, last event's tsc) of one packet."""
        buf, losses, _ = self.read(info)
        try:
            counts, n, first, last = self.layout.stats(buf, PACKET_HEADER_SIZE)
        except ValueError as e:
            raise self._bad(info, e) from None
        return losses, counts, n, first, last

    def windows(self, flt: Any, info: PacketInfo, cuts: list[int]) -> tuple[list[int], int]:
        """Matching items per window of one packet (CUTS: the window starts inside it), and the
        packet's item count."""
        buf, losses, begin = self.read(info)
        try:
            return flt.windows(buf, PACKET_HEADER_SIZE, len(losses), begin, *self.clock, cuts)
        except ValueError as e:
            raise self._bad(info, e) from None


def stream_scanner(source: Any, stream: Stream, infos: list[PacketInfo]) -> StreamScanner | None:
    """A C scanner for STREAM, or None (Python decodes it): see the module docstring."""
    global last_export_native
    last_export_native = False
    if not available():
        return None
    from tracetui.core.trace.reader import TraceDirectory

    if not isinstance(source, TraceDirectory):
        return None
    clock = stream.clock
    if not all(-(1 << 63) <= v < (1 << 63) for v in (clock.tsc0, clock.mono_ns0, clock.freq)):
        return None
    try:
        return StreamScanner(source, stream, infos)
    except ValueError:  # a field type ttdec.c does not walk
        return None


# -- filters ------------------------------------------------------------------------


class _Unsupported(Exception):
    """A predicate shape C cannot evaluate exactly as Python does."""


_ORDER = {"<", "<=", ">", ">="}


def _mismatch(op: str) -> bool:
    """A comparison between a string and a number: == is false, != true, orderings false
    (Python raises TypeError, and the predicate's evaluator makes that comparison false)."""
    return op == "!="


def _atom(node: Node, cls: EventClass, pos: int) -> tuple[Any, ...] | bool:
    t = cls.format.types[pos]
    if node[0] == "match":
        raise _Unsupported
    op, c = node[2], node[3]
    kind = t.kind
    if kind in ("str", "char"):
        if not isinstance(c, str):
            return _mismatch(op)
        try:
            c.encode("utf-8")
        except UnicodeEncodeError:
            raise _Unsupported from None
        return ("s", pos, op, c)
    if isinstance(c, str):
        return _mismatch(op)
    if kind == "float":
        if isinstance(c, float):
            return ("f", pos, op, c)
        if -(1 << 53) <= c <= (1 << 53):
            return ("f", pos, op, float(c))
        raise _Unsupported
    # integers (int, hex)
    if isinstance(c, float):
        if not c.is_integer():
            raise _Unsupported
        c = int(c)
    c = int(c)  # bool -> int
    if not -(1 << 63) <= c < (1 << 64):
        raise _Unsupported
    return ("i", pos, op, c)


def _compile_class(flt: EventFilter, cls: EventClass) -> Any:
    """True, False or a tree for ttdec.c's Filter; the folding of ``Predicate.bind``."""
    if not flt.names.matches(cls.name):
        return False
    pred = flt.predicate
    if pred is None:
        return True
    return pred.fold(
        cls.name, cls.cpu, cls.channel, cls.names, lambda node, pos: _atom(node, cls, pos)
    )


def compile_filter(flt: EventFilter, scanner: StreamScanner) -> Any | None:
    """FLT compiled for the event classes of SCANNER's stream, or None (Python must run it)."""
    assert _ttdec is not None
    try:
        trees = {mid: _compile_class(flt, cls) for mid, cls in scanner.classes.items()}
    except _Unsupported:
        return None
    return _ttdec.Filter(scanner.layout, trees)


# -- the Perfetto export --------------------------------------------------------------


def export_perfetto(
    source: Any,
    out: Any,
    progress: Any,
    counters: Any,
    tid_fields: tuple[str, ...],
    pid_fields: tuple[str, ...],
    python_events: frozenset[str],
) -> int | None:
    """Write SOURCE as export.export_perfetto does, the per-event loop in C: threads named by the
    first of TID_FIELDS / PID_FIELDS a format has, COUNTERS (export._Counters) fed by the fields
    its ``for_event`` picks, and its ``check`` at the end.  None when C cannot write exactly what
    Python writes (events named in PYTHON_EVENTS, other producers' streams...): nothing was
    written then."""
    global last_export_native
    last_export_native = False
    if not available():
        return None
    from tracetui.core.trace.reader import TraceDirectory

    if not isinstance(source, TraceDirectory):
        return None
    markers = source.markers
    names = [m.name for m in markers.values()]
    if len(set(names)) != len(names) or any(n in python_events for n in names):
        return None  # slices from function events, and per-name keys: Python's walk
    # A value of each field's type: what decides which counters an event feeds.
    samples = {
        mid: {n: "" if t.kind in ("str", "char") else 0.0 if t.kind == "float" else 0
              for n, t in zip(m.format.names, m.format.types, strict=True)}
        for mid, m in markers.items()
    }  # fmt: skip
    probe = type(counters)(counters.specs)
    spec_index = {spec: i for i, spec in enumerate(counters.specs)}
    classes: dict[int, tuple[Any, ...]] = {}
    for mid, m in markers.items():
        fnames = m.format.names
        tk = next((k for k in tid_fields if k in fnames), None)
        pk = next((k for k in pid_fields if k in fnames), tk)
        ti = pi = -1
        if tk is not None and pk is not None:
            ti, pi = fnames.index(tk), fnames.index(pk)
            if any(m.format.types[i].kind not in ("int", "hex") for i in (ti, pi)):
                return None  # int() of a string or a float field: Python's walk
        feeds = tuple(
            (spec_index[spec], fnames.index(fld))
            for spec, fld in probe.for_event(m.name, samples[mid])
        )
        classes[mid] = (m.name.encode(), tuple(n.encode() for n in fnames), ti, pi, feeds)
    import mmap

    maps: list[Any] = []
    streams: list[tuple[Any, ...]] = []
    lo = hi = None
    try:
        for stream in source.streams:
            infos = source.packet_index(stream)
            sc = stream_scanner(source, stream, infos)
            if sc is None:
                return None
            try:
                with open(stream.path, "rb") as f:
                    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as e:
                raise TraceFormatError(f"cannot read {stream.path}: {e}") from None
            maps.append(mm)
            tracker = LossTracker()
            packets = []
            for info in infos:
                if info.offset + info.content_size > len(mm):
                    raise source._bad(stream, info.offset, "the file ends inside the packet")
                h = PACKET_HEADER.unpack_from(mm, info.offset)
                losses: list[Any] = []
                tracker.losses(h[_BEGIN], h[_SEQ], h[_DISCARDED], _LossOut, losses)  # type: ignore[arg-type]
                lnames = tuple(f"lost {lost} {unit}".encode() for _, lost, unit in losses)
                packets.append((info.offset, info.content_size, h[_BEGIN], lnames))
                lo = info.begin_ns if lo is None else min(lo, info.begin_ns)
                hi = info.end_ns if hi is None else max(hi, info.end_ns)
            streams.append((sc.layout, mm, packets, stream.cpu, *sc.clock, classes))
        report = None
        if progress is not None:
            base, span = lo or 0, max(0, (hi or 0) - (lo or 0))

            def report(last_ts: int) -> None:
                progress(max(0, last_ts - base), span)

        assert _ttdec is not None
        try:
            last_export_native = True
            specs = tuple(spec.encode("utf-8", "replace") for spec in counters.specs)
            n, seen = _ttdec.export_perfetto(streams, out.write, report, specs)
        except ValueError as e:
            if len(e.args) == 1 and isinstance(e.args[0], tuple):
                msg, si, off = e.args[0]
                raise source._bad(source.streams[si], off, msg) from None
            raise
        for mid in sorted(seen):
            counters.for_event(markers[mid].name, samples[mid])
        counters.check()
        return n
    finally:
        for mm in maps:
            mm.close()
