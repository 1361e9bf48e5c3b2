"""Reading CTF 1.8 traces other producers wrote (LTTng-UST, lttng-modules): ``CTFTrace``.

``CTFTrace(path)`` finds every ``metadata`` file under ``path`` (an LTTng session output holds
one per buffer domain, uid or pid: babeltrace2 reads them as one trace), parses each with
core/trace/tsdl.py and compiles one decoder per type: closures over ``struct.Struct`` for runs
of byte-aligned fixed-size fields, bit-level reads elsewhere (LTTng's compact event header has
a 5-bit id and a 27-bit timestamp).  It offers the face of core/trace/source.py.

Clock values follow CTF: an integer mapped to a clock that is shorter than 64 bits replaces the
clock's low bits and, when it is smaller than those bits were, carries one into the high bits.
Field names lose one leading underscore, as babeltrace2 prints them; ``fields`` is the event
payload and ``context`` the stream and event contexts (babeltrace2 prints both).  An enum value
is an ``EnumValue`` (label, value); a text array or sequence is a ``str``.
"""

from __future__ import annotations

import heapq
import os
import re
import struct
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from tracetui.core.model.clock import TraceClock
from tracetui.core.trace.metadata import TraceFormatError
from tracetui.core.trace.packets import Item, Loss, LossTracker, OnStream, Stream
from tracetui.core.trace.source import PacketInfo
from tracetui.core.trace.tsdl import (
    Array,
    Enum,
    Float,
    Int,
    Metadata,
    Sequence,
    String,
    Struct,
    Variant,
    parse_tsdl,
    read_metadata_file,
)

__all__ = ["CTFClock", "CTFEvent", "CTFTrace", "EnumValue"]

_BATCH = 4096


class EnumValue(NamedTuple):
    label: str | None
    value: int


class CTFEvent(OnStream):
    """One decoded event of a CTF trace (the Event face of core/trace/source.py)."""

    __slots__ = ("context", "fields", "name", "stream", "tsc")

    def __init__(
        self, tsc: int, name: str, fields: dict[str, Any], context: dict[str, Any], stream: Stream
    ) -> None:
        self.tsc = tsc
        self.name = name
        self.fields = fields
        self.context = context
        self.stream = stream

    def __repr__(self) -> str:
        return f"CTFEvent({self.name}, ts_ns={self.ts_ns}, cpu={self.cpu}, fields={self.fields!r})"


def _cycles_ns(freq: int, cycles: int) -> int:
    # babeltrace2's bt_util_cycles_to_ns: exact at 1 GHz, in doubles otherwise
    return cycles if freq == 1_000_000_000 else int(1e9 * cycles / freq)


class CTFClock(TraceClock):
    """A CTF clock class: ns computed as babeltrace2 computes them (exact at 1 GHz)."""

    @property
    def base_ns(self) -> int:
        return self.offset_s * 1_000_000_000 + _cycles_ns(self.freq, self.offset)

    def wall_ns(self, tsc: int) -> int:
        return self.base_ns + _cycles_ns(self.freq, tsc)

    def mono_ns(self, tsc: int) -> int:
        return _cycles_ns(self.freq, tsc)


def _name(n: str) -> str:
    return n[1:] if n.startswith("_") else n


# -- decoders --------------------------------------------------------------------
#
# A decoder is f(buf, bit, scopes, ctx) -> (value, bit): ``scopes`` is the list of the dicts of
# the enclosing structs (innermost last) for sequence lengths and variant tags, ``ctx`` the
# per-stream state (the clock, the dynamic-scope roots).


class _Ctx:
    __slots__ = ("clock", "roots")

    def __init__(self) -> None:
        self.clock = 0
        self.roots: dict[str, dict[str, Any]] = {}


Decoder = Callable[[bytes, int, list[dict[str, Any]], _Ctx], tuple[Any, int]]

_ROOTS = (
    "trace.packet.header",
    "stream.packet.context",
    "stream.event.header",
    "stream.event.context",
    "event.context",
    "event.fields",
)


def _lookup(path: str, scopes: list[dict[str, Any]], ctx: _Ctx) -> Any:
    if scopes and path in scopes[-1]:  # the usual case: a sibling field (a sequence length)
        return scopes[-1][path]
    for root in _ROOTS:
        if path.startswith(root + "."):
            v: Any = ctx.roots.get(root, {})
            rest = path[len(root) + 1 :].split(".")
            break
    else:
        parts = path.split(".")
        v = None
        for s in reversed(scopes):
            if parts[0] in s:
                v = s
                break
        if v is None:
            for r in reversed(list(ctx.roots.values())):
                if parts[0] in r:
                    v = r
                    break
        if v is None:
            raise TraceFormatError(
                f"field {parts[0]!r} that a sequence or variant refers to is not decoded"
            )
        rest = parts
    for p in rest:
        if not isinstance(v, dict) or p not in v:
            raise TraceFormatError(
                f"field {path!r} that a sequence or variant refers to is not decoded"
            )
        v = v[p]
    return v


def _fmt(t: Any) -> str | None:
    """The struct format character of a byte-aligned fixed-size field, or None."""
    if isinstance(t, Int) and t.clock is None and t.align % 8 == 0 and t.size in (8, 16, 32, 64):
        c = {8: "b", 16: "h", 32: "i", 64: "q"}[t.size]
        return c if t.signed else c.upper()
    if isinstance(t, Float) and t.align % 8 == 0 and (t.exp_dig, t.mant_dig) in ((8, 24), (11, 53)):
        return "f" if t.mant_dig == 24 else "d"
    return None


def _order(t: Any) -> str:
    return "<" if t.byte_order == "le" else ">"


def _align_up(bit: int, a: int) -> int:
    return (bit + a - 1) & -a if a > 1 else bit


def compile_type(t: Any) -> Decoder:
    if isinstance(t, Int):
        return _int_decoder(t)
    if isinstance(t, Float):
        return _float_decoder(t)
    if isinstance(t, String):

        def string(buf: bytes, bit: int, scopes: Any, ctx: _Ctx) -> tuple[Any, int]:
            p = (bit + 7) >> 3
            z = buf.find(b"\0", p)
            if z < 0:
                raise TraceFormatError("a string runs past the end of its packet")
            return buf[p:z].decode("utf-8", "replace"), (z + 1) << 3

        return string
    if isinstance(t, Enum):
        inner = _int_decoder(t.container)
        label = t.label

        def enum(buf: bytes, bit: int, scopes: Any, ctx: _Ctx) -> tuple[Any, int]:
            v, bit = inner(buf, bit, scopes, ctx)
            return EnumValue(label(v), v), bit

        return enum
    if isinstance(t, Struct):
        return _struct_decoder(t)
    if isinstance(t, Variant):
        return _variant_decoder(t)
    if isinstance(t, Array | Sequence):
        return _array_decoder(t)
    raise TraceFormatError(f"type {type(t).__name__} is not supported")


def _int_decoder(t: Int) -> Decoder:
    size, align, signed, clock = t.size, t.align, t.signed, t.clock
    mask = (1 << size) - 1
    sign = 1 << (size - 1)
    little = t.byte_order == "le"
    fmt = _fmt(Int(t.size, t.align, t.signed, t.byte_order)) if size % 8 == 0 else None
    st = struct.Struct(_order(t) + fmt) if fmt else None

    def update(ctx: _Ctx, v: int) -> None:
        if size >= 64:
            ctx.clock = v
        else:
            old = ctx.clock
            new = (old & ~mask) | v
            if v < (old & mask):
                new += 1 << size
            ctx.clock = new

    if st is not None:
        unpack = st.unpack_from
        nbytes = size >> 3

        def aligned(buf: bytes, bit: int, scopes: Any, ctx: _Ctx) -> tuple[Any, int]:
            bit = _align_up(bit, align)
            if bit & 7:
                return bits(buf, bit, scopes, ctx)
            v = unpack(buf, bit >> 3)[0]
            if clock is not None:
                update(ctx, v)
            return v, bit + (nbytes << 3)

    def bits(buf: bytes, bit: int, scopes: Any, ctx: _Ctx) -> tuple[Any, int]:
        bit = _align_up(bit, align)
        first = bit >> 3
        off = bit & 7
        nb = (off + size + 7) >> 3
        chunk = buf[first : first + nb]
        if len(chunk) < nb:
            raise TraceFormatError("an integer runs past the end of its packet")
        if little:
            v = (int.from_bytes(chunk, "little") >> off) & mask
        else:
            v = (int.from_bytes(chunk, "big") >> (nb * 8 - off - size)) & mask
        if signed and v & sign:
            v -= 1 << size
        if clock is not None:
            update(ctx, v)
        return v, bit + size

    return aligned if st is not None else bits


def _float_decoder(t: Float) -> Decoder:
    fmt = _fmt(t)
    if fmt is None:
        raise TraceFormatError(
            f"floating_point with exp_dig={t.exp_dig} and mant_dig={t.mant_dig} is not supported"
        )
    unpack = struct.Struct(_order(t) + fmt).unpack_from
    align, nbits = t.align, 32 if fmt == "f" else 64

    def flt(buf: bytes, bit: int, scopes: Any, ctx: _Ctx) -> tuple[Any, int]:
        bit = _align_up(bit, align)
        if bit & 7:
            raise TraceFormatError(
                "floating_point fields that are not byte-aligned are not supported"
            )
        return unpack(buf, bit >> 3)[0], bit + nbits

    return flt


def _is_text(elem: Any) -> bool:
    return isinstance(elem, Int) and elem.size == 8 and elem.encoding.upper() in ("UTF8", "ASCII")


def _array_decoder(t: Array | Sequence) -> Decoder:
    elem = t.elem
    text = _is_text(elem)
    fixed = isinstance(t, Array)
    length = t.length
    ealign = elem.align
    fmt = _fmt(elem)
    if fmt is not None and not isinstance(elem, Int | Float):
        fmt = None
    order = _order(elem) if fmt else ""
    esize = struct.calcsize(fmt) if fmt else 0
    inner = None if text or fmt else compile_type(elem)

    def array(buf: bytes, bit: int, scopes: list[dict[str, Any]], ctx: _Ctx) -> tuple[Any, int]:
        n = length if fixed else _lookup(length, scopes, ctx)  # type: ignore[arg-type]
        if isinstance(n, EnumValue):
            n = n.value
        if not isinstance(n, int) or n < 0:
            raise TraceFormatError(f"sequence length {length!r} is not an unsigned integer")
        bit = _align_up(bit, ealign)
        if text:
            if bit & 7:
                raise TraceFormatError("text arrays that are not byte-aligned are not supported")
            p = bit >> 3
            raw = buf[p : p + n]
            z = raw.find(b"\0")
            return (raw if z < 0 else raw[:z]).decode("utf-8", "replace"), bit + 8 * n
        if fmt and not bit & 7 and (ealign <= esize * 8):
            p = bit >> 3
            if p + n * esize > len(buf):
                raise TraceFormatError("an array runs past the end of its packet")
            return list(struct.unpack_from(f"{order}{n}{fmt}", buf, p)), bit + 8 * n * esize
        dec = inner or compile_type(elem)
        out = []
        for _ in range(n):
            v, bit = dec(buf, bit, scopes, ctx)
            out.append(v)
        return out, bit

    return array


def _struct_decoder(t: Struct) -> Decoder:
    """Runs of byte-aligned fixed-size fields become one ``struct`` unpack each."""
    salign = t.align
    plan: list[Any] = []  # ("run", Struct, names, start_align) or ("one", name, decoder)
    run_fmt: list[str] = []
    run_names: list[str] = []
    run_order = ""
    run_align = 1

    def flush() -> None:
        nonlocal run_fmt, run_names, run_order
        if run_names:
            st = struct.Struct(run_order + "".join(run_fmt))
            plan.append(("run", st, tuple(run_names), run_align))
        run_fmt, run_names, run_order = [], [], ""

    for name, ft in t.fields:
        f = _fmt(ft)
        # inside a run every field must need no padding: byte alignment only (LTTng-UST packs)
        if (
            f is not None
            and (ft.align == 8 or not run_names)
            and (not run_order or run_order == _order(ft))
        ):
            if not run_names:
                run_align = ft.align
                run_order = _order(ft)
            run_fmt.append(f)
            run_names.append(name)
        else:
            flush()
            if f is not None:
                run_align = ft.align
                run_order = _order(ft)
                run_fmt.append(f)
                run_names.append(name)
            else:
                plan.append(("one", name, compile_type(ft)))
    flush()
    steps = tuple(plan)

    def dec(buf: bytes, bit: int, scopes: list[dict[str, Any]], ctx: _Ctx) -> tuple[Any, int]:
        bit = _align_up(bit, salign)
        d: dict[str, Any] = {}
        scopes.append(d)
        try:
            for step in steps:
                if step[0] == "run":
                    _, st, names, a = step
                    bit = _align_up(bit, a)
                    if bit & 7:
                        raise TraceFormatError("a byte-aligned field is not at a byte boundary")
                    try:
                        vals = st.unpack_from(buf, bit >> 3)
                    except struct.error:
                        raise TraceFormatError("an event runs past the end of its packet") from None
                    d.update(zip(names, vals, strict=True))
                    bit += st.size << 3
                else:
                    d[step[1]], bit = step[2](buf, bit, scopes, ctx)
        finally:
            scopes.pop()
        return d, bit

    return dec


def _variant_decoder(t: Variant) -> Decoder:
    if t.tag is None:
        raise TraceFormatError("untagged variants are not supported")
    options = {name: compile_type(ft) for name, ft in t.options}
    tag = t.tag

    def variant(buf: bytes, bit: int, scopes: list[dict[str, Any]], ctx: _Ctx) -> tuple[Any, int]:
        sel = _lookup(tag, scopes, ctx)
        label = sel.label if isinstance(sel, EnumValue) else None
        dec = options.get(label) if label is not None else None
        if dec is None and label is not None:
            dec = options.get("_" + label)
        if dec is None:
            raise TraceFormatError(f"variant tag {tag!r} selects no option (value {sel!r})")
        return dec(buf, bit, scopes, ctx)

    return variant


# -- the trace -------------------------------------------------------------------

_CPU_SUFFIX = re.compile(r"^(.*)_(\d+)$")


class _Sub:
    """One metadata file and the stream files beside it."""

    def __init__(self, dirpath: str, md: Metadata) -> None:
        self.dir = dirpath
        self.md = md
        if len(md.clocks) > 1:
            raise TraceFormatError("traces with more than one clock are not supported")
        c = next(iter(md.clocks.values()), None)
        freq, off_s, off = (c.freq, c.offset_s, c.offset) if c else (1_000_000_000, 0, 0)
        # babeltrace2 moves whole seconds of the offset into offset_s before any float math
        self.clock = CTFClock(freq, off_s + off // freq, off % freq, 0, 0)
        self.header = compile_type(md.packet_header) if md.packet_header else None
        self.streams: dict[int, Any] = {}
        for sid, sc in md.streams.items():
            self.streams[sid] = (
                compile_type(sc.packet_context) if sc.packet_context else None,
                compile_type(sc.event_header) if sc.event_header else None,
                compile_type(sc.event_context) if sc.event_context else None,
                {
                    eid: (
                        ec.name,
                        compile_type(ec.context) if ec.context else None,
                        compile_type(ec.fields) if ec.fields else None,
                        _names(ec.fields),
                    )
                    for eid, ec in sc.events.items()
                },
                _names(sc.event_context),
            )


def _names(s: Struct | None) -> tuple[tuple[str, str], ...]:
    return tuple((n, _name(n)) for n, _ in s.fields) if s else ()


class _Packet(NamedTuple):
    info: PacketInfo
    sid: int
    begin_tsc: int
    data_bit: int  # where events begin, bits from the packet start
    cpu: int


class CTFTrace:
    """A CTF 1.8 trace directory (or a tree of them, as an LTTng session writes)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            raise TraceFormatError(f"{self.path} is not a directory")
        metas = []
        for d, dirs, files in os.walk(self.path):
            dirs.sort()
            if "metadata" in files:
                metas.append(d)
        if not metas:
            raise TraceFormatError(f"{self.path} holds no CTF metadata file")
        self._subs: list[_Sub] = []
        self._stream_sub: dict[str, _Sub] = {}
        self._index: dict[str, list[_Packet]] = {}
        self._env: dict[str, str | int] = {}
        streams = []
        for d in metas:
            md = parse_tsdl(read_metadata_file(os.path.join(d, "metadata")))
            sub = _Sub(d, md)
            self._subs.append(sub)
            for k, v in md.env.items():
                self._env.setdefault(k, v)
            for fn in sorted(os.listdir(d)):
                p = os.path.join(d, fn)
                if fn == "metadata" or fn.startswith(".") or not os.path.isfile(p):
                    continue
                if os.path.getsize(p) == 0:
                    continue
                m = _CPU_SUFFIX.match(fn)
                channel = m.group(1) if m else fn
                packets = self._read_index(sub, p)
                cpu = packets[0].cpu if packets else (int(m.group(2)) if m else 0)
                s = Stream(channel, cpu, p, sub.clock)
                self._stream_sub[p] = sub
                self._index[p] = packets
                streams.append(s)
        self.streams = sorted(streams, key=lambda s: (s.channel, s.cpu, s.path))
        self._data: dict[str, bytes] = {}

    @property
    def env(self) -> dict[str, str | int]:
        return self._env

    @property
    def channels(self) -> list[str]:
        return sorted({s.channel for s in self.streams})

    def _read_index(self, sub: _Sub, path: str) -> list[_Packet]:
        with open(path, "rb") as f:
            data = f.read()
        return self._index_bytes(sub, data, os.path.basename(path))

    def _index_bytes(self, sub: _Sub, data: bytes, name: str) -> list[_Packet]:
        """The packets of one stream's bytes (a file, or one packet a live viewer received)."""
        out: list[_Packet] = []
        off = 0
        n = len(data)
        while off < n:
            buf = data[off : off + 65536]
            ctx = _Ctx()
            bit = 0
            header: dict[str, Any] = {}
            try:
                if sub.header:
                    header, bit = sub.header(buf, bit, [], ctx)
                    ctx.roots["trace.packet.header"] = header
                if header.get("magic", 0xC1FC1FC1) != 0xC1FC1FC1:
                    raise TraceFormatError(f"{name}: packet at offset {off} has a bad magic number")
                sid = int(header.get("stream_id", 0))
                if sid not in sub.streams:
                    raise TraceFormatError(
                        f"{name}: packet at offset {off} has unknown stream class {sid}"
                    )
                pctx_dec = sub.streams[sid][0]
                pctx: dict[str, Any] = {}
                if pctx_dec:
                    pctx, bit = pctx_dec(buf, bit, [], ctx)
            except (IndexError, struct.error):
                raise TraceFormatError(f"{name}: packet at offset {off} is truncated") from None
            psize = int(pctx.get("packet_size", (n - off) * 8))
            csize = int(pctx.get("content_size", psize))
            if psize <= 0 or psize % 8 or csize > psize or off + psize // 8 > n or csize < bit:
                raise TraceFormatError(f"{name}: packet at offset {off} has inconsistent sizes")
            begin = int(pctx.get("timestamp_begin", 0))
            end = int(pctx.get("timestamp_end", begin))
            clk = sub.clock
            seq = pctx.get("packet_seq_num")
            info = PacketInfo(
                offset=off,
                packet_size=psize // 8,
                content_size=csize // 8,
                begin_ns=clk.mono_ns(begin),
                end_ns=clk.mono_ns(end),
                begin_wall_ns=clk.wall_ns(begin),
                end_wall_ns=clk.wall_ns(end),
                events_discarded=int(pctx.get("events_discarded", 0)),
                seq=int(seq) if seq is not None else None,
                index=len(out),
            )
            out.append(_Packet(info, sid, begin, bit, int(pctx.get("cpu_id", 0))))
            off += psize // 8
        return out

    def packet_index(self, stream: Stream) -> list[PacketInfo]:
        return [p.info for p in self._index[stream.path]]

    def _file(self, stream: Stream) -> bytes:
        d = self._data.get(stream.path)
        if d is None:
            with open(stream.path, "rb") as f:
                d = self._data[stream.path] = f.read()
        return d

    def loss(self, tsc: int, lost: int, unit: str) -> Any:  # the StreamDecoder face for LossTracker
        return (tsc, lost, unit)

    def packet_items(self, stream: Stream, info: PacketInfo) -> list[Any]:
        packets = self._index[stream.path]
        pk = packets[info.index]
        tracker = LossTracker()
        if info.index > 0:
            prev = packets[info.index - 1].info
            tracker.prev_disc = prev.events_discarded
            tracker.prev_seq = prev.seq if prev.seq is not None else prev.index
        out: list[Any] = []
        raw: list[Any] = []
        tracker.losses(
            pk.begin_tsc,
            info.seq if info.seq is not None else info.index,
            info.events_discarded,
            self,
            raw,
        )
        out.extend(Loss(t, n, stream, u) for t, n, u in raw)
        self._decode(stream, pk, out)
        return out

    def _decode(self, stream: Stream, pk: _Packet, out: list[Any]) -> None:
        sub = self._stream_sub[stream.path]
        data = self._file(stream)
        info = pk.info
        buf = data[info.offset : info.offset + info.packet_size]
        _, hdr_dec, sctx_dec, events, sctx_names = sub.streams[pk.sid]
        ctx = _Ctx()
        ctx.clock = pk.begin_tsc
        roots = ctx.roots
        end = info.content_size * 8
        bit = pk.data_bit
        scopes: list[dict[str, Any]] = []
        name = os.path.basename(stream.path)
        append = out.append
        try:
            while bit < end:
                start = bit
                if hdr_dec:
                    h, bit = hdr_dec(buf, bit, scopes, ctx)
                    roots["stream.event.header"] = h
                    eid = h.get("id", 0)
                    v = h.get("v")
                    if isinstance(v, dict) and "id" in v:
                        eid = v["id"]
                    if isinstance(eid, EnumValue):
                        eid = eid.value
                else:
                    eid = 0
                context: dict[str, Any] = {}
                if sctx_dec:
                    c, bit = sctx_dec(buf, bit, scopes, ctx)
                    roots["stream.event.context"] = c
                    for raw_n, n in sctx_names:
                        context[n] = c[raw_n]
                ev = events.get(eid)
                if ev is None:
                    raise TraceFormatError(
                        f"{name}: event at offset {info.offset + start // 8} has unknown id {eid}"
                    )
                ename, ectx_dec, fields_dec, fnames = ev
                if ectx_dec:
                    c, bit = ectx_dec(buf, bit, scopes, ctx)
                    roots["event.context"] = c
                    for k, val in c.items():
                        context[_name(k)] = val
                fields: dict[str, Any] = {}
                if fields_dec:
                    f, bit = fields_dec(buf, bit, scopes, ctx)
                    fields = {n: f[raw_n] for raw_n, n in fnames}
                if bit > end:
                    raise TraceFormatError(
                        f"{name}: event at offset {info.offset + start // 8} runs past its "
                        "packet's content"
                    )
                append(CTFEvent(ctx.clock, ename, fields, context, stream))
        except (IndexError, struct.error):
            raise TraceFormatError(f"{name}: packet at offset {info.offset} is truncated") from None

    def _stream_items(self, stream: Stream) -> Iterator[list[Any]]:
        for pk in self._index[stream.path]:
            yield self.packet_items(stream, pk.info)
        self._data.pop(stream.path, None)

    def __iter__(self) -> Iterator[Item]:
        def flat(s: Stream) -> Iterator[Any]:
            for items in self._stream_items(s):
                yield from items

        return heapq.merge(*(flat(s) for s in self.streams), key=_tsc)

    def batches(self) -> Iterator[list[Item]]:
        batch: list[Item] = []
        for it in self:
            batch.append(it)
            if len(batch) >= _BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


def _tsc(item: Any) -> int:
    return item.tsc
