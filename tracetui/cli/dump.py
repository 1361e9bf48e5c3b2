"""``tracetui dump DIR``: print a trace's events, one line each, in time order.

Lines and JSON objects are those of cli/render.py (one rendering, shared with ``tracetui
watch``); this module writes them fast, for whole traces.

Exit status: 0 on success (also when the reader of the output goes away, as
with ``| head``), 1 when the directory is not a readable trace (one sentence
on stderr).  Output is written in large chunks; the text decoder is
generated per stream from the marker table, so a line costs one header
unpack, one payload unpack and one ``%`` operation.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import struct
import sys
import time
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

from tracetui.cli.render import event_json, loss_text
from tracetui.core.model.clock import NS, time_of_day
from tracetui.core.model.clock import time_of_day as _time_of_day
from tracetui.core.model.formats import FieldType, MarkerFormat, payload_source
from tracetui.core.model.packet import EVENT_HEADER
from tracetui.core.pyfuncs import annotate_dump, has_function_events
from tracetui.core.trace.metadata import TraceFormatError
from tracetui.core.trace.packets import CorruptRecord, Event, EventClass, Stream
from tracetui.core.trace.reader import TraceDirectory
from tracetui.core.trace.source import TraceSource
from tracetui.core.trace.traces import open_trace

_CHUNK_LINES = 8192
# Records decoded at a time: the dump runs with the cyclic GC off, so larger
# chunks (fewer merge steps) cost no collector time.
_DUMP_CHUNK = 32768
_FIRST = itemgetter(0)
_SECOND = itemgetter(1)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``dump`` on the CLI's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "dump",
        help="print the events of a trace directory",
        description=(
            "Print every event of a CTF trace written by tracetui, merged across "
            "channels and CPUs in time order, with losses where they happened."
        ),
        epilog="Exit status: 0 on success, 1 if DIR is not a readable trace.",
    )
    p.add_argument("dir", metavar="DIR", help="trace directory (holds 'metadata')")
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per event/loss: ts_ns (CLOCK_MONOTONIC), cpu, channel, "
        "name, fields / lost, channel, cpu, ts_ns, unit",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    try:
        trace = open_trace(args.dir)
    except TraceFormatError as e:
        print(f"tracetui dump: {e}", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    if not isinstance(trace, TraceDirectory):
        lines = generic_lines(trace, args.json)
    else:
        lines = json_lines(trace) if args.json else text_lines(trace)
    if isinstance(trace, TraceDirectory) and has_function_events(
        m.name for m in trace.markers.values()
    ):
        lines = annotate_dump(lines, args.json)  # function ids -> qualified names
    # Millions of short-lived tuples and no reference cycles: the cyclic
    # collector's periodic scans would be pure overhead here.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for chunk in lines:
            out.write(chunk)
        out.flush()
    except TraceFormatError as e:
        out.flush()
        print(f"tracetui dump: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (dump | head): not an error.  Point stdout at
        # /dev/null so the interpreter's final flush does not complain.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    finally:
        if gc_was_enabled:
            gc.enable()
    return 0


# -- text ------------------------------------------------------------------------
#
# The text dump does not go through Event objects: a per-stream decoder turns
# each record straight into its line, as bytes, with one ``%`` operation per
# record using a template generated for the event class (b"[%s.%09d] cpu 0
# main sched_switch: prev_pid=%d, next_pid=%d, comm=\"%s\""); the merge
# orders the lines themselves when byte order is time order (see _lexical),
# else (tsc, line) pairs.  Bytes formatting is about a fifth cheaper than
# str formatting and needs no encoding pass.  Strings are copied from the
# packet undecoded when they are plain printable ASCII (one translate and
# one isalpha, both in C); anything else is decoded and escaped, so a
# traced value can never drive the terminal.

# Printable ASCII but '"' and '\\' -> b"a"; everything else -> b"!".
_PLAIN = bytes(0x61 if 0x20 <= i <= 0x7E and i not in (0x22, 0x5C) else 0x21 for i in range(256))


def _escape(raw: bytes) -> bytes:
    """A string field that is not plain ASCII: JSON-style escapes, UTF-8 kept."""
    return json.dumps(raw.decode("utf-8", "replace"), ensure_ascii=False)[1:-1].encode()


# %c bytes as shown: NUL is empty and non-ASCII is U+FFFD (as babeltrace2 and
# the reader show them).
_CHAR_TEXT = tuple(
    b"" if i == 0 else _escape(bytes((i,))) if i < 0x80 else "\ufffd".encode() for i in range(256)
)


def _directive(t: FieldType) -> str:
    return {"int": "%d", "hex": "0x%x", "float": "%a"}.get(t.kind, '"%s"')


def _template(name: str, names: tuple[str, ...], types: tuple[FieldType, ...], head: str) -> bytes:
    """b"[%s.%09d] <head> <name>: f1=%d, ..." for (time prefix, ns, *values)."""
    fields = ", ".join(f"{n}={_directive(t)}" for n, t in zip(names, types, strict=True))
    text = "[%s.%09d] " + f"{head} {name}".replace("%", "%%") + (f": {fields}" if fields else "")
    return text.encode()


def _raw_string(v: str) -> list[str]:
    """A string field kept as its bytes when plain ASCII, else escaped (never decoded twice)."""
    return [f"{v} = buf[pos:e]", f"if not {v}.translate(_P).isalpha():", f"    {v} = _esc({v})"]


def _payload_code(fmt: MarkerFormat, k: int, ns: dict[str, Any], indent: str) -> list[str]:
    """Lines that read the payload at ``pos`` into v0..vN (text for %c, bytes for %s)."""
    return payload_source(fmt, ns, indent, str(k), _raw_string)


# Markers with the lowest ids get a branch of their own in the generated loop
# (no call, no table lookup); the rest go through a table of formatters.
_INLINE = 12


class _TextDecoder:
    """StreamDecoder producing (tsc, line) pairs for one stream.

    ``decode`` is generated for the stream's marker table: one loop with an
    inline branch per (frequent) marker, so a record costs one header unpack,
    one payload unpack and one ``%``.
    """

    def __init__(self, trace: TraceDirectory, stream: Stream, lexical: bool) -> None:
        self.lexical = lexical
        clock = trace.clock
        freq = float(clock.freq)
        # Wall time as babeltrace2 computes it (see TraceClock.wall_ns).
        base = clock.base_ns
        self.base, self.freq = base, freq
        self.head = f"cpu {stream.cpu} {stream.channel}"
        self.c0 = self.c1 = 0.0
        self.prefix = b""
        self._timed: list[tuple[str, bytes]] = []
        ns: dict[str, Any] = {
            "_HDR": EVENT_HEADER.unpack_from,
            "_BASE": base,
            "_FREQ": freq,
            "_P": _PLAIN,
            "_esc": _escape,
            "_CH": _CHAR_TEXT,
            "CorruptRecord": CorruptRecord,
            "_struct_error": struct.error,
            "self": self,
        }
        markers = sorted(trace.markers.values(), key=lambda m: m.id)

        def item(line: str) -> str:
            return line if lexical else f"(tsc, {line})"

        table: dict[int, Callable[..., tuple[bytes, int]]] = {}
        branches: list[str] = []
        for k, m in enumerate(markers):
            fmt = m.format
            tname = f"_T{k}"
            tmpl = _template(m.name, fmt.names, fmt.types, self.head)
            ns[tname] = tmpl
            if k < _INLINE:
                # Inline branches use a template with the current second
                # written in (b"[22:20:34.%09d] ..."), rebuilt by _second.
                self._timed.append((tname, tmpl[len(b"[%s") :]))
            vals = "".join(f", v{i}" for i in range(len(fmt.types)))
            if k < _INLINE:
                branches.append(f"            {'if' if not branches else 'elif'} eid == {m.id}:")
                if fmt.fixed_struct is not None:
                    ns[f"_F{k}"] = fmt.fixed_struct.unpack_from
                    line = f"{tname} % ((n,) + _F{k}(buf, pos + 10))"
                    branches.append(f"                append({item(line)})")
                    branches.append(f"                pos += {10 + fmt.fixed_struct.size}")
                else:
                    branches.append("                pos += 10")
                    branches += _payload_code(fmt, k, ns, " " * 16)
                    branches.append(f"                append({item(f'{tname} % (n{vals})')})")
            else:
                src = ["def rec(buf, pos, end, prefix, n):"]
                src += _payload_code(fmt, k, ns, "    ")
                src.append(f"    return {tname} % (prefix, n{vals}), pos")
                exec(compile("\n".join(src), f"<dump {m.name}>", "exec"), ns)
                table[m.id] = ns.pop("rec")
        ns["_TABLE"] = table
        fallback = [
            "                line, pos = _TABLE[eid](buf, pos + 10, end, prefix, n)",
            f"                append({item('line')})",
        ]
        if branches:
            branches.append("            else:")
            branches += fallback
        else:
            branches = [line[4:] for line in fallback]
        src = [
            "def decode(buf, pos, stop, end, out):",
            "    append = out.append",
            "    c0, c1, prefix = self.c0, self.c1, self.prefix",
            "    eid = -1",
            "    try:",
            "        while pos < stop:",
            "            eid, tsc = _HDR(buf, pos)",
            # babeltrace2's double arithmetic; see _second for the rest.
            "            f = 1e9 * tsc / _FREQ",
            "            if not c0 <= f < c1:",
            "                self._second(f)",
            "                c0, c1, prefix = self.c0, self.c1, self.prefix",
            "            n = f - c0",
            *branches,
            "    except KeyError:",
            "        raise CorruptRecord(f'event id {eid} at byte {pos} is not declared in the'"
            " ' metadata') from None",
            "    except (_struct_error, ValueError):",
            "        raise CorruptRecord(f'the record at byte {pos} is cut short') from None",
            "    if pos > end:",
            "        raise CorruptRecord(f'the last record runs {pos - end} bytes'"
            " ' past the content')",
            "    return pos",
        ]
        exec(compile("\n".join(src), f"<dump {self.head}>", "exec"), ns)
        self._ns = ns
        self.decode: Callable[[bytes, int, int, int, list[Any]], int] = ns["decode"]

    def _second(self, f: float) -> None:
        """Enter the second holding tick-time ``f`` (ns since tick 0, a double)."""
        s = (int(f) + self.base) // NS
        # Bounds of the second in the units of f.  With c0 <= f < c0 + 1e9,
        # f - c0 is exact (Sterbenz), so "%09d" of it truncates to exactly
        # int(f) + base - s * NS: the nanoseconds babeltrace2 prints.
        self.c0 = float(s * NS - self.base)
        self.c1 = float((s + 1) * NS - self.base)
        self.prefix = time.strftime("%H:%M:%S", time.localtime(s)).encode()
        head = b"[" + self.prefix
        for name, rest in self._timed:
            self._ns[name] = head + rest

    def loss(self, tsc: int, lost: int, unit: str) -> bytes | tuple[int, bytes]:
        line = _when(self.base, self.freq, tsc) + f" {self.head} {loss_text(lost, unit)}".encode()
        return line if self.lexical else (tsc, line)


def _when(base: int, freq: float, tsc: int) -> bytes:
    """b"[HH:MM:SS.nnnnnnnnn]" (local time, as babeltrace2 computes it)."""
    return f"[{time_of_day(base + int(1e9 * tsc / freq))}]".encode()


def _lexical(trace: TraceDirectory) -> bool:
    """True when the trace's lines sort by time as plain bytes.

    Lines start with "[HH:MM:SS.nnnnnnnnn]": while the whole trace lies within
    one local day and one UTC offset, byte order is time order, and the merge
    can sort the lines themselves instead of (ticks, line) pairs.
    """
    lo = hi = None
    for stream in trace.streams:
        for h in trace.packet_headers(stream):
            lo = h.timestamp_begin if lo is None else min(lo, h.timestamp_begin)
            hi = h.timestamp_end if hi is None else max(hi, h.timestamp_end)
    if lo is None or hi is None:
        return True
    # A second of margin: records may sit a little outside their packet's bounds.
    a = time.localtime(trace.clock.wall_ns(lo) // NS - 1)
    b = time.localtime(trace.clock.wall_ns(hi) // NS + 1)
    return a[:3] == b[:3] and a.tm_gmtoff == b.tm_gmtoff


def text_lines(trace: TraceDirectory) -> Iterator[bytes]:
    """The text dump, as chunks of lines (bytes, UTF-8)."""
    pending: list[bytes] = []
    lexical = _lexical(trace)
    clock = trace.clock
    freq = float(clock.freq)
    base = clock.base_ns
    batches = trace.merged(
        lambda s: _TextDecoder(trace, s, lexical),
        None if lexical else _FIRST,
        _DUMP_CHUNK,
        (lambda tsc: _when(base, freq, tsc)) if lexical else None,
    )
    for batch in batches:
        pending.extend(batch if lexical else map(_SECOND, batch))
        if len(pending) >= _CHUNK_LINES:
            pending.append(b"")
            yield b"\n".join(pending)
            pending.clear()
    if pending:
        pending.append(b"")
        yield b"\n".join(pending)


# -- JSON -------------------------------------------------------------------------


_JSTR: Callable[[str], str] = json.encoder.encode_basestring_ascii  # C-accelerated


def _jfloat(v: float) -> str:
    return repr(v) if math.isfinite(v) else f'"{v}"'


def _json_formatter(cls: EventClass) -> Callable[[int, tuple[Any, ...]], str]:
    """f(ts_ns, values) -> the event's JSON line (what event_json + json.dumps give)."""
    head = (
        '{"ts_ns": %d, "cpu": '
        + f'{cls.cpu}, "channel": {_JSTR(cls.channel)}, "name": {_JSTR(cls.name)}, '.replace(
            "%", "%%"
        )
        + '"fields": {'
    )
    parts, args = [], []
    for i, (name, t) in enumerate(zip(cls.names, cls.format.types, strict=True)):
        if t.kind in ("int", "hex"):
            parts.append(f"{_JSTR(name)}: %d")
            args.append(f"v[{i}]")
        else:
            parts.append(f"{_JSTR(name)}: %s")
            args.append(f"_jf(v[{i}])" if t.kind == "float" else f"_js(v[{i}])")
    tmpl = head + ", ".join(parts) + "}}"
    src = f"def j(ts, v):\n    return {tmpl!r} % (ts{''.join(', ' + a for a in args)})\n"
    ns: dict[str, Any] = {"_js": _JSTR, "_jf": _jfloat}
    exec(compile(src, f"<json {cls.name}>", "exec"), ns)
    fn: Callable[[int, tuple[Any, ...]], str] = ns["j"]
    return fn


def json_lines(trace: TraceDirectory) -> Iterator[bytes]:
    """The JSON dump, as chunks of lines; a formatter is generated per event class."""
    dumps = json.JSONEncoder(ensure_ascii=True, allow_nan=False).encode
    formatters: dict[EventClass, Callable[[int, tuple[Any, ...]], str]] = {}
    lines: list[str] = []
    append = lines.append
    for batch in trace.batches():
        for e in batch:
            if type(e) is Event:
                f = formatters.get(e.cls)
                if f is None:
                    f = formatters[e.cls] = _json_formatter(e.cls)
                append(f(e.ts_ns, e.values))
            else:
                append(dumps(event_json(e)))
        if len(lines) >= _CHUNK_LINES:
            append("")
            yield "\n".join(lines).encode()
            lines.clear()
    if lines:
        append("")
        yield "\n".join(lines).encode()


# -- any other TraceSource (CTF traces LTTng wrote: core/trace/ctf.py) -----------------------


def _plain(v: Any) -> Any:
    """A field value as JSON holds it: an enum is its label (its value when it has none)."""
    if isinstance(v, tuple) and hasattr(v, "label"):
        return v.label if v.label is not None else v.value
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _text_value(v: Any) -> str:
    t = type(v)
    if t is int:
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # quoted and escaped: a traced value never drives the terminal
    if isinstance(v, tuple) and hasattr(v, "label"):
        return str(v.label) if v.label is not None else str(v.value)
    if isinstance(v, list):
        return "[" + ", ".join(_text_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={_text_value(x)}" for k, x in v.items()) + "}"
    return repr(v) if isinstance(v, float) else str(v)


def generic_lines(trace: TraceSource, as_json: bool) -> Iterator[bytes]:
    """Lines (render.py's shapes) of any TraceSource's items, in time order."""
    seconds: dict[int, str] = {}  # time of day of a whole second, formatted once

    def time_of_day(wall_ns: int) -> str:
        s, ns = divmod(wall_ns, NS)
        h = seconds.get(s)
        if h is None:
            h = seconds[s] = _time_of_day(s * NS)[:-10]
        return f"{h}.{ns:09d}"

    for batch in trace.batches():
        buf: list[str] = []
        for it in batch:
            if hasattr(it, "lost"):
                if as_json:
                    buf.append(json.dumps(event_json(it)))
                else:
                    buf.append(
                        f"[{time_of_day(it.wall_ns)}] cpu {it.cpu} {it.channel} "
                        f"{loss_text(it.lost, it.unit)}"
                    )
            elif as_json:
                d = {
                    "ts_ns": it.ts_ns,
                    "cpu": it.cpu,
                    "channel": it.channel,
                    "name": it.name,
                    "fields": _plain(it.fields),
                }
                ctx = getattr(it, "context", None)
                if ctx:
                    d["context"] = _plain(ctx)
                buf.append(json.dumps(d))
            else:
                f = it.fields
                ctx = getattr(it, "context", None) or {}
                vals = ", ".join(f"{k}={_text_value(v)}" for k, v in {**ctx, **f}.items())
                head = f"[{time_of_day(it.wall_ns)}] cpu {it.cpu} {it.channel} {it.name}"
                buf.append(f"{head}: {vals}" if vals else head)
        buf.append("")
        yield "\n".join(buf).encode("utf-8", "replace")
