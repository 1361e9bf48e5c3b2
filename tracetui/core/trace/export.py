"""Exports of a recorded trace for the viewers people already have (Perfetto, chrome://tracing).

Both exports read any ``TraceSource`` (core/trace/source.py) in time order and place:

- each event as an instant on its CPU's track, or on its thread's track when the event has a
  thread field (``vtid``/``tid``; ``vpid``/``pid`` names the process);
- function calls from ``tracetui run`` (``py_call``/``py_c_call`` ... ``py_return``/
  ``py_raise``/``py_c_return``, named by the ``py_func`` definitions) as slices on their
  thread's track; a return whose call was not seen stays an instant, and calls still open at the
  end of the trace are closed at its last timestamp, so slices always balance;
- numeric fields named in ``counters`` (``event.field`` or just ``field``) as counter tracks;
- losses as instants named ``lost N events`` (or packets) on their CPU's track.

The Perfetto export writes TracePacket protobufs with a small hand-written encoder (the field
numbers of perfetto's trace protos; tests parse the output back with the ``perfetto`` package's
``perfetto_trace_pb2``): TrackEvents with interned event and argument names on one packet
sequence.  The Chrome export streams the Trace Event Format (``ts`` in µs with ns precision).

``progress(done, total)`` is called every batch with trace time covered so far and the trace's
time span, in ns.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable
from typing import IO, Any

from tracetui.core.pyfuncs import CALL_EVENTS, FUNCTION_EVENTS, RETURN_EVENTS, FunctionTable
from tracetui.core.trace.packets import Loss
from tracetui.core.trace.source import TraceSource

__all__ = ["ExportError", "export_chrome_json", "export_perfetto"]

Progress = Callable[[int, int], None]

TID_FIELDS = ("vtid", "tid")
PID_FIELDS = ("vpid", "pid")


class ExportError(ValueError):
    """A one-sentence reason an export cannot be made (e.g. a counter no event has)."""


# -- shared walk -----------------------------------------------------------------------------


class _Counters:
    """``event.field`` / ``field`` specs -> which (event, field) pairs feed which counter."""

    def __init__(self, specs: Iterable[str]) -> None:
        self.specs = list(dict.fromkeys(specs))
        self.matched: set[str] = set()
        self.by_name: dict[str, list[tuple[str, str]]] = {}  # event name -> [(spec, field)]

    def for_event(self, name: str, fields: dict[str, Any]) -> list[tuple[str, str]]:
        got = self.by_name.get(name)
        if got is None:
            got = []
            for spec in self.specs:
                ev, _, fld = spec.rpartition(".")
                if (not ev or ev == name) and fld in fields:
                    v = fields[fld]
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        got.append((spec, fld))
            self.by_name[name] = got
        return got

    def check(self) -> None:
        for spec in self.specs:
            if not any(spec == s for lst in self.by_name.values() for s, _ in lst):
                raise ExportError(f"no event of the trace has a numeric field {spec!r}")


def _span(source: TraceSource) -> tuple[int, int]:
    lo, hi = None, None
    for s in source.streams:
        for info in source.packet_index(s):
            lo = info.begin_ns if lo is None else min(lo, info.begin_ns)
            hi = info.end_ns if hi is None else max(hi, info.end_ns)
    return (lo or 0, hi or 0)


def _walk(
    source: TraceSource, counters: _Counters, progress: Progress | None
) -> Iterable[tuple[Any, ...]]:
    """Yield export records in time order:

    ("i", ts, name, cpu, thread|None, fields)   instant
    ("B", ts, func, cpu, (pid, tid), fields)    slice begin
    ("E", ts, func, cpu, (pid, tid), None)      slice end
    ("C", ts, spec, value)                      counter sample
    ("L", ts, name, cpu)                        loss
    """
    lo, hi = _span(source) if progress is not None else (0, 0)
    funcs = FunctionTable()
    stacks: dict[int, list[tuple[int, str]]] = {}
    pids: dict[int, int] = {}
    use_counters = bool(counters.specs)
    func_events = CALL_EVENTS | RETURN_EVENTS
    thread_keys: dict[str, tuple[str | None, str | None] | None] = {}  # name -> (tid, pid) keys
    last_ts = 0
    for batch in source.batches():
        for it in batch:
            ts = it.ts_ns
            last_ts = ts
            if type(it) is Loss or isinstance(it, Loss):
                yield ("L", ts, f"lost {it.lost} {it.unit}", it.cpu)
                continue
            name = it.name
            fields = it.fields
            try:
                keys = thread_keys[name]
            except KeyError:
                tk = next((k for k in TID_FIELDS if k in fields), None)
                pk = next((k for k in PID_FIELDS if k in fields), tk)
                keys = thread_keys[name] = (tk, pk) if tk is not None else None
            th = None if keys is None else (int(fields[keys[1]]), int(fields[keys[0]]))
            if name in func_events:
                if th is not None and "func" in fields:
                    tid = th[1]
                    fid = int(fields["func"])
                    if keys[1] == keys[0] and fid >> 32:  # type: ignore[index]
                        th = (fid >> 32, tid)  # a function id is pid << 32 | n
                    pids.setdefault(tid, th[0])
                    stack = stacks.setdefault(tid, [])
                    if name in CALL_EVENTS:
                        fn = funcs.name(fid)
                        stack.append((fid, fn))
                        yield ("B", ts, fn, it.cpu, th, fields)
                        continue
                    if stack and stack[-1][0] == fid:
                        yield ("E", ts, stack.pop()[1], it.cpu, th, None)
                        continue
            elif name == "py_func":
                funcs.feed(name, fields)
            yield ("i", ts, name, it.cpu, th, fields)
            if use_counters:
                for spec, fld in counters.for_event(name, fields):
                    yield ("C", ts, spec, fields[fld])
        if progress is not None:
            progress(max(0, last_ts - lo), max(0, hi - lo))
    for tid, stack in stacks.items():
        while stack:
            yield ("E", last_ts, stack.pop()[1], -1, (pids.get(tid, tid), tid), None)
    counters.check()


# -- Chrome JSON ---------------------------------------------------------------------------

CPU_PID = 0  # the pseudo-process whose threads are the CPUs (events without a thread field)


def _us(ts: int) -> str:
    return f"{ts // 1000}.{ts % 1000:03d}"


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def export_chrome_json(
    source: TraceSource,
    out: IO[str],
    *,
    counters: Iterable[str] = (),
    progress: Progress | None = None,
) -> int:
    """Write the Trace Event Format JSON of SOURCE to OUT (text); return events written."""
    dumps = json.JSONEncoder(default=_jsonable, ensure_ascii=False).encode
    cs = _Counters(counters)
    out.write('{"displayTimeUnit":"ns","traceEvents":[\n')
    out.write(
        json.dumps({"name": "process_name", "ph": "M", "pid": CPU_PID, "args": {"name": "CPUs"}})
    )
    n = 0
    buf: list[str] = []
    named: set[tuple[int, int]] = set()
    for rec in _walk(source, cs, progress):
        kind, ts = rec[0], rec[1]
        if kind == "C":
            buf.append(
                f',\n{{"name":{dumps(rec[2])},"ph":"C","ts":{_us(ts)},"pid":{CPU_PID},'
                f'"args":{{{dumps(rec[2])}:{dumps(rec[3])}}}}}'
            )
        elif kind == "L":
            buf.append(
                f',\n{{"name":{dumps(rec[2])},"ph":"i","s":"t","ts":{_us(ts)},'
                f'"pid":{CPU_PID},"tid":{rec[3]}}}'
            )
        else:
            th = rec[4]
            if th is None:
                pid, tid = CPU_PID, rec[3]
                if (pid, tid) not in named:
                    named.add((pid, tid))
                    buf.append(
                        f',\n{{"name":"thread_name","ph":"M","pid":{pid},"tid":{tid},'
                        f'"args":{{"name":"CPU {tid}"}}}}'
                    )
            else:
                pid, tid = th
            args = "" if rec[5] is None else f',"args":{dumps(rec[5])}'
            scope = ',"s":"t"' if kind == "i" else ""
            buf.append(
                f',\n{{"name":{dumps(rec[2])},"ph":"{kind}"{scope},"ts":{_us(ts)},'
                f'"pid":{pid},"tid":{tid}{args}}}'
            )
        n += 1
        if len(buf) >= 4096:
            out.write("".join(buf))
            buf.clear()
    out.write("".join(buf))
    out.write("\n]}\n")
    return n


# -- Perfetto protobuf -------------------------------------------------------------------------
# Field numbers from perfetto's protos (trace_packet.proto, track_event.proto, ...).

_SEQ_ID = 1
_CLEARED = 1  # TracePacket.SEQ_INCREMENTAL_STATE_CLEARED
_NEEDS = 2  # TracePacket.SEQ_NEEDS_INCREMENTAL_STATE
_SLICE_BEGIN, _SLICE_END, _INSTANT, _COUNTER = 1, 2, 3, 4
_TYPES = {k: bytes((9 << 3, k)) for k in (1, 2, 3, 4)}  # TrackEvent.type
_pack_d = struct.Struct("<d").pack


def _varint_slow(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [_varint_slow(i) for i in range(1 << 14)]
_LOW = [bytes((i & 0x7F | 0x80, i >> 7 | 0x80)) for i in range(1 << 14)]  # 14 bits, continued


def _varint(n: int, _small: list[bytes] = _SMALL, _low: list[bytes] = _LOW) -> bytes:
    """Base-128 varint (negative numbers as 64-bit two's complement), from two tables."""
    if n < 0:
        n += 1 << 64
    if n < 16384:
        return _small[n]
    if n < 1 << 28:
        return _low[n & 0x3FFF] + _small[n >> 14]
    if n < 1 << 42:
        return _low[n & 0x3FFF] + _low[n >> 14 & 0x3FFF] + _small[n >> 28]
    if n < 1 << 56:
        return _low[n & 0x3FFF] + _low[n >> 14 & 0x3FFF] + _low[n >> 28 & 0x3FFF] + _small[n >> 42]
    if n < 1 << 70:
        return (
            _low[n & 0x3FFF] + _low[n >> 14 & 0x3FFF] + _low[n >> 28 & 0x3FFF]
            + _low[n >> 42 & 0x3FFF] + _small[n >> 56]
        )  # fmt: skip
    return _varint_slow(n)


def _ld(field: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _vf(field: int, n: int) -> bytes:
    """A varint field."""
    return _varint(field << 3) + _varint(n)


def _str(field: int, s: str) -> bytes:
    return _ld(field, s.encode("utf-8", "replace"))


_TS_TAG = _varint(8 << 3)  # TracePacket.timestamp
_TE_TAG = _varint(11 << 3 | 2)  # TracePacket.track_event
_SEQ_TAIL = _vf(10, _SEQ_ID) + _vf(13, _NEEDS)  # trusted_packet_sequence_id, sequence_flags
_PKT_TAG = _varint(1 << 3 | 2)  # Trace.packet
_DA_TAG = _varint(4 << 3 | 2)  # TrackEvent.debug_annotations


class _Perfetto:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.buf: list[bytes] = []
        self.tracks: dict[Any, bytes] = {}  # key -> encoded track_uuid field
        self.names: dict[str, bytes] = {}  # event name -> encoded name_iid field
        self.arg_names: dict[str, int] = {}
        self.arg_prefix: dict[str, bytes] = {}
        self.heads: dict[tuple[int, bytes, str | None], bytes] = {}
        self.pending_names: list[bytes] = []
        self.pending_args: list[bytes] = []
        self.processes: set[int] = set()
        self.next_uuid = 1
        # The first packet clears the sequence's incremental state (interned names).
        self.buf.append(_ld(1, _vf(10, _SEQ_ID) + _vf(13, _CLEARED)))

    def packet(self, body: bytes) -> None:
        self.buf.append(_PKT_TAG + _varint(len(body)) + body)
        if len(self.buf) >= 8192:
            self.flush()

    def flush(self) -> None:
        self.out.write(b"".join(self.buf))
        self.buf.clear()

    def _new_track(self, key: Any, desc: bytes) -> bytes:
        uuid = self.next_uuid
        self.next_uuid += 1
        self.packet(_ld(60, _vf(1, uuid) + desc))  # TracePacket.track_descriptor
        enc = _vf(11, uuid)  # TrackEvent.track_uuid
        self.tracks[key] = enc
        return enc

    def cpu_track(self, cpu: int) -> bytes:
        t = self.tracks.get(("cpu", cpu))
        if t is None:
            t = self._new_track(("cpu", cpu), _str(2, f"CPU {cpu}"))
        return t

    def thread_track(self, pid: int, tid: int) -> bytes:
        t = self.tracks.get(("thread", tid))
        if t is None:
            if pid not in self.processes:
                self.processes.add(pid)
                self._new_track(("process", pid), _ld(3, _vf(1, pid)))  # ProcessDescriptor
            t = self._new_track(("thread", tid), _ld(4, _vf(1, pid) + _vf(2, tid)))
        return t

    def counter_track(self, spec: str) -> bytes:
        t = self.tracks.get(("counter", spec))
        if t is None:  # TrackDescriptor.counter (an empty CounterDescriptor)
            t = self._new_track(("counter", spec), _str(2, spec) + _ld(8, b""))
        return t

    def name_iid(self, name: str) -> bytes:
        enc = self.names.get(name)
        if enc is None:
            iid = len(self.names) + 1
            enc = _vf(10, iid)  # TrackEvent.name_iid
            self.names[name] = enc
            self.pending_names.append(_ld(2, _vf(1, iid) + _str(2, name)))  # EventName
        return enc

    def _arg_prefix(self, k: str) -> bytes:
        iid = len(self.arg_names) + 1
        self.arg_names[k] = iid
        self.pending_args.append(_ld(3, _vf(1, iid) + _str(2, k)))
        pre = _vf(1, iid)  # DebugAnnotation.name_iid
        self.arg_prefix[k] = pre
        return pre

    def annotations(self, fields: dict[str, Any]) -> bytes:
        parts = []
        prefixes = self.arg_prefix
        varint = _varint
        for k, v in fields.items():
            pre = prefixes.get(k)
            if pre is None:
                pre = self._arg_prefix(k)
            t = type(v)
            if t is int:
                val = b"\x20" + varint(v) if -(1 << 63) <= v < (1 << 63) else _str(6, str(v))
            elif t is str:
                e = v.encode("utf-8", "replace")
                val = b"\x32" + varint(len(e)) + e  # string_value (6)
            elif t is float:
                val = b"\x29" + _pack_d(v)  # double_value (5, fixed64)
            elif t is bool:
                val = b"\x10\x01" if v else b"\x10\x00"  # bool_value (2)
            elif t is bytes:
                val = _str(6, v.hex())
            elif isinstance(v, int):
                val = _vf(4, int(v))  # int_value (4)
            else:
                val = _str(6, str(v))
            body = pre + val
            parts.append(_DA_TAG + varint(len(body)) + body)
        return b"".join(parts)

    def event(self, ts: int, kind: int, track: bytes, name: str | None, extra: bytes) -> None:
        head = self.heads.get((kind, track, name))
        if head is None:
            head = _TYPES[kind] + track + (b"" if name is None else self.name_iid(name))
            self.heads[(kind, track, name)] = head
        te = head + extra
        body = b"".join((_TS_TAG, _varint(ts), _TE_TAG, _varint(len(te)), te, _SEQ_TAIL))
        if self.pending_names or self.pending_args:
            body += _ld(12, b"".join(self.pending_names + self.pending_args))  # interned_data
            self.pending_names.clear()
            self.pending_args.clear()
        buf = self.buf
        buf.append(_PKT_TAG + _varint(len(body)) + body)
        if len(buf) >= 8192:
            self.flush()


def export_perfetto(
    source: TraceSource,
    out: IO[bytes],
    *,
    counters: Iterable[str] = (),
    progress: Progress | None = None,
    native: bool = True,
) -> int:
    """Write SOURCE as a Perfetto protobuf trace to OUT (binary); return events written.

    The per-event loop runs in C where the source allows (core/trace/native.py: the same
    bytes); ``native=False`` keeps it in Python."""
    cs = _Counters(counters)
    if native:
        from tracetui.core.trace import native as _native

        written = _native.export_perfetto(
            source, out, progress, cs, TID_FIELDS, PID_FIELDS, FUNCTION_EVENTS | {"py_func"}
        )
        if written is not None:
            return written
    p = _Perfetto(out)
    n = 0
    for rec in _walk(source, cs, progress):
        kind, ts = rec[0], rec[1]
        if kind == "i":
            th = rec[4]
            track = p.cpu_track(rec[3]) if th is None else p.thread_track(*th)
            p.event(ts, _INSTANT, track, rec[2], p.annotations(rec[5]))
        elif kind == "L":
            p.event(ts, _INSTANT, p.cpu_track(rec[3]), rec[2], b"")
        elif kind == "B":
            p.event(ts, _SLICE_BEGIN, p.thread_track(*rec[4]), rec[2], p.annotations(rec[5]))
        elif kind == "E":
            p.event(ts, _SLICE_END, p.thread_track(*rec[4]), None, b"")
        else:
            v = rec[3]
            val = _vf(30, v) if isinstance(v, int) else b"\xe1\x02" + _pack_d(v)
            p.event(ts, _COUNTER, p.counter_track(rec[2]), None, val)
        n += 1
    p.flush()
    return n
