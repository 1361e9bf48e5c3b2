"""A parser of CTF 1.8 TSDL metadata, as LTTng-UST and lttng-modules write it.

``read_metadata_file(path)`` reads a ``metadata`` file, packetized (37-byte headers with magic
0x75D11D57, either byte order) or plain text, and ``parse_tsdl(text)`` turns it into a
``Metadata``: the trace's byte order, packet header, env, clocks, stream classes (packet
context, event header, event context) and event classes (context, fields), each type as one of
the small classes below.  Anything it does not support raises ``TraceFormatError`` with one
sentence naming the construct.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Any

from tracetui.core.trace.metadata import TraceFormatError

__all__ = [
    "Array",
    "Clock",
    "Enum",
    "EventClass",
    "Float",
    "Int",
    "Metadata",
    "Sequence",
    "StreamClass",
    "String",
    "Struct",
    "Variant",
    "parse_tsdl",
    "read_metadata_file",
]

MAGIC = 0x75D11D57
_PKT_HEADER = (
    37  # magic, uuid[16], checksum, content_size, packet_size, compression, enc, type, major, minor
)


def read_metadata_file(path: str) -> str:
    """The TSDL text of a metadata file, packetized or plain."""
    with open(path, "rb") as f:
        return metadata_text(f.read(), path)


def metadata_text(data: bytes, what: str = "the metadata") -> str:
    """The TSDL text of metadata bytes (a file's or a live stream's), packetized or plain."""
    if len(data) >= 4:
        for order in ("<", ">"):
            if struct.unpack_from(order + "I", data)[0] == MAGIC:
                return _depacketize(data, order)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise TraceFormatError(f"{what} is neither packetized nor UTF-8 TSDL metadata") from None


def _depacketize(data: bytes, order: str) -> str:
    parts = []
    pos = 0
    while pos + _PKT_HEADER <= len(data):
        magic, content, size = struct.unpack_from(order + "I16xIII", data, pos)[0::1][
            :1
        ] + struct.unpack_from(order + "II", data, pos + 24)
        if magic != MAGIC:
            raise TraceFormatError(f"metadata packet at offset {pos} has a bad magic number")
        if struct.unpack_from("B", data, pos + 32)[0] or struct.unpack_from("B", data, pos + 33)[0]:
            raise TraceFormatError("compressed or encrypted metadata packets are not supported")
        if size < content or size % 8 or content < _PKT_HEADER * 8 or size == 0:
            raise TraceFormatError(f"metadata packet at offset {pos} has inconsistent sizes")
        parts.append(data[pos + _PKT_HEADER : pos + content // 8])
        pos += size // 8
    try:
        return b"".join(parts).decode("utf-8")
    except UnicodeDecodeError:
        raise TraceFormatError("packetized metadata is not UTF-8 text") from None


# -- types -----------------------------------------------------------------------


@dataclass
class Int:
    size: int
    align: int = 8
    signed: bool = False
    byte_order: str = "native"  # resolved to "le"/"be" by the parser
    base: int = 10
    encoding: str = "none"
    clock: str | None = None  # map = clock.X.value


@dataclass
class Float:
    exp_dig: int
    mant_dig: int
    align: int = 8
    byte_order: str = "native"


@dataclass
class String:
    encoding: str = "UTF8"
    align: int = 8


@dataclass
class Enum:
    container: Int
    mappings: list[tuple[int, int, str]]

    @property
    def align(self) -> int:
        return self.container.align

    def label(self, v: int) -> str | None:
        for lo, hi, name in self.mappings:
            if lo <= v <= hi:
                return name
        return None


@dataclass
class Struct:
    fields: list[tuple[str, Any]]
    min_align: int = 1

    @property
    def align(self) -> int:
        return max([self.min_align] + [_align(t) for _, t in self.fields])


@dataclass
class Variant:
    tag: str | None
    options: list[tuple[str, Any]]

    @property
    def align(self) -> int:
        return 1  # a variant aligns as its selected option


@dataclass
class Array:
    elem: Any
    length: int

    @property
    def align(self) -> int:
        return _align(self.elem)


@dataclass
class Sequence:
    elem: Any
    length: str  # path of the length field

    @property
    def align(self) -> int:
        return _align(self.elem)


def _align(t: Any) -> int:
    return t.align


@dataclass
class Clock:
    name: str
    freq: int = 1_000_000_000
    offset_s: int = 0
    offset: int = 0
    precision: int = 0
    description: str = ""
    uuid: str = ""
    absolute: bool = False


@dataclass
class EventClass:
    id: int
    name: str
    stream_id: int
    loglevel: int | None = None
    context: Struct | None = None
    fields: Struct | None = None


@dataclass
class StreamClass:
    id: int
    packet_context: Struct | None = None
    event_header: Struct | None = None
    event_context: Struct | None = None
    events: dict[int, EventClass] = field(default_factory=dict)


@dataclass
class Metadata:
    byte_order: str = "le"
    major: int = 1
    minor: int = 8
    uuid: str = ""
    packet_header: Struct | None = None
    env: dict[str, str | int] = field(default_factory=dict)
    clocks: dict[str, Clock] = field(default_factory=dict)
    streams: dict[int, StreamClass] = field(default_factory=dict)


# -- lexer -----------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s+|/\*.*?\*/|//[^\n]*
    |(?P<str>"(?:[^"\\]|\\.)*")
    |(?P<chr>'(?:[^'\\]|\\.)*')
    |(?P<num>-?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)[uUlL]*)(?![A-Za-z0-9_])
    |(?P<id>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>:=|\.\.\.|[{}\[\]();,=.:<>+\-*])""",
    re.S | re.X,
)


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos, n = 0, len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:
            line = text.count("\n", 0, pos) + 1
            raise TraceFormatError(f"metadata line {line}: unexpected character {text[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind is None:
            continue
        v = m.group(kind)
        if kind == "num":
            s = v.rstrip("uUlL")
            neg = s.startswith("-")
            s = s[1:] if neg else s
            iv = (
                int(s, 16)
                if s[:2] in ("0x", "0X")
                else int(s, 8)
                if len(s) > 1 and s[0] == "0"
                else int(s)
            )
            out.append(("num", -iv if neg else iv))
        elif kind == "str":
            out.append(("str", bytes(v[1:-1], "utf-8").decode("unicode_escape")))
        elif kind == "chr":
            out.append(("str", v[1:-1]))
        else:
            out.append((kind, v))
    out.append(("eof", None))
    return out


# -- parser ----------------------------------------------------------------------

_SCOPES = ("trace", "env", "clock", "stream", "event", "callsite")


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.aliases: list[dict[str, Any]] = [{}]
        self.md = Metadata()
        self.byte_order = "le"
        # A first pass finds the trace's byte_order: types declared before the trace block
        # (LTTng declares its typealiases first) take "native" = the trace's order.
        m = re.search(r"byte_order\s*=\s*(be|le|network)\s*;", _trace_block(text))
        if m:
            self.byte_order = "le" if m.group(1) == "le" else "be"
        self.md.byte_order = self.byte_order

    # token helpers
    def peek(self, k: int = 0) -> tuple[str, Any]:
        return self.toks[self.i + k]

    def next(self) -> tuple[str, Any]:
        t = self.toks[self.i]
        self.i += 1
        return t

    def accept(self, v: str) -> bool:
        if self.toks[self.i][1] == v and self.toks[self.i][0] in ("op", "id"):
            self.i += 1
            return True
        return False

    def expect(self, v: str) -> None:
        if not self.accept(v):
            raise self.error(f"expected {v!r}")

    def error(self, what: str) -> TraceFormatError:
        kind, v = self.peek()
        got = "the end" if kind == "eof" else repr(v)
        return TraceFormatError(f"metadata: {what} but found {got}")

    def ident(self) -> str:
        kind, v = self.next()
        if kind != "id":
            self.i -= 1
            raise self.error("expected a name")
        return str(v)

    def lookup(self, name: str) -> Any | None:
        for scope in reversed(self.aliases):
            if name in scope:
                return scope[name]
        return None

    # top level
    def parse(self) -> Metadata:
        while self.peek()[0] != "eof":
            self.statement(top=True)
        return self.md

    def statement(self, top: bool) -> None:
        v = self.peek()[1]
        if v == "typealias":
            self.next()
            t = self.type_spec()
            self.expect(":=")
            name = self.alias_name()
            self.aliases[-1][name] = t
            self.expect(";")
            return
        if v == "typedef":
            self.next()
            t = self.type_spec()
            name, t = self.declarator(t)
            self.aliases[-1][name] = t
            self.expect(";")
            return
        if top and v in _SCOPES and self.peek(1)[1] == "{":
            self.next()
            self.next()
            getattr(self, "block_" + v)()
            return
        if top and v in ("struct", "enum", "variant"):  # named declarations at top level
            self.type_spec()
            self.expect(";")
            return
        raise self.error("expected a declaration")

    def alias_name(self) -> str:
        parts = [self.ident()]
        while self.peek()[0] == "id":
            parts.append(self.ident())
        return " ".join(parts)

    def block_items(self) -> dict[str, Any]:
        """``a = v;`` and ``a.b := type;`` items of a block, to its closing ``};``."""
        items: dict[str, Any] = {}
        self.aliases.append({})
        while not self.accept("}"):
            v = self.peek()[1]
            if v in ("typealias", "typedef"):
                self.statement(top=False)
                continue
            path = [self.ident()]
            while self.accept("."):
                path.append(self.ident())
            key = ".".join(path)
            if self.accept(":="):
                items[key] = self.type_spec()
            elif self.accept("="):
                items[key] = self.value()
            else:
                raise self.error(f"expected '=' or ':=' after {key}")
            self.expect(";")
        self.aliases.pop()
        self.accept(";")
        return items

    def value(self) -> Any:
        kind, v = self.peek()
        if kind in ("num", "str"):
            self.next()
            return v
        if kind == "id":
            if v in ("integer", "floating_point", "string", "struct", "enum", "variant"):
                return self.type_spec()
            parts = [self.ident()]
            while self.accept("."):
                parts.append(self.ident())
            return ".".join(parts)
        if v == "-" and self.peek(1)[0] == "num":
            self.next()
            return -self.next()[1]
        raise self.error("expected a value")

    def block_trace(self) -> None:
        items = self.block_items()
        md = self.md
        md.major = int(items.get("major", 1))
        md.minor = int(items.get("minor", 8))
        if (md.major, md.minor) != (1, 8):
            raise TraceFormatError(f"metadata is CTF {md.major}.{md.minor}, not CTF 1.8")
        md.uuid = str(items.get("uuid", ""))
        ph = items.get("packet.header")
        if ph is not None and not isinstance(ph, Struct):
            raise TraceFormatError("metadata: trace.packet.header is not a struct")
        md.packet_header = ph
        for k in items:
            if k not in ("major", "minor", "uuid", "byte_order", "packet.header"):
                raise TraceFormatError(f"metadata: trace attribute {k!r} is not supported")

    def block_env(self) -> None:
        for k, v in self.block_items().items():
            self.md.env[k] = v if isinstance(v, int | str) else str(v)

    def block_clock(self) -> None:
        items = self.block_items()
        name = str(items.get("name", ""))
        if not name:
            raise TraceFormatError("metadata: a clock block has no name")
        self.md.clocks[name] = Clock(
            name=name,
            freq=int(items.get("freq", 1_000_000_000)),
            offset_s=int(items.get("offset_s", 0)),
            offset=int(items.get("offset", 0)),
            precision=int(items.get("precision", 0)),
            description=str(items.get("description", "")),
            uuid=str(items.get("uuid", "")),
            absolute=str(items.get("absolute", "false")).lower() in ("true", "1"),
        )
        if self.md.clocks[name].freq <= 0:
            raise TraceFormatError(f"metadata: clock {name} has a frequency that is not positive")

    def block_callsite(self) -> None:
        self.block_items()  # debug information babeltrace2 does not print by default

    def block_stream(self) -> None:
        items = self.block_items()
        sid = int(items.get("id", 0))
        sc = self.md.streams.setdefault(sid, StreamClass(sid))
        sc.packet_context = _struct_or_none(items, "packet.context", "stream")
        sc.event_header = _struct_or_none(items, "event.header", "stream")
        sc.event_context = _struct_or_none(items, "event.context", "stream")
        for k in items:
            if k not in ("id", "packet.context", "event.header", "event.context"):
                raise TraceFormatError(f"metadata: stream attribute {k!r} is not supported")

    def block_event(self) -> None:
        items = self.block_items()
        if "name" not in items:
            raise TraceFormatError("metadata: an event block has no name")
        sid = int(items.get("stream_id", 0))
        ec = EventClass(
            id=int(items.get("id", 0)),
            name=str(items["name"]),
            stream_id=sid,
            loglevel=items.get("loglevel"),
            context=_struct_or_none(items, "context", "event"),
            fields=_struct_or_none(items, "fields", "event"),
        )
        sc = self.md.streams.setdefault(sid, StreamClass(sid))
        if ec.id in sc.events:
            raise TraceFormatError(f"metadata: event id {ec.id} of stream {sid} is declared twice")
        sc.events[ec.id] = ec

    # types
    def type_spec(self) -> Any:
        kind, v = self.peek()
        if kind != "id":
            raise self.error("expected a type")
        if v == "integer":
            self.next()
            return self.integer(self.attrs())
        if v == "floating_point":
            self.next()
            a = self.attrs()
            return Float(
                int(a.get("exp_dig", 8)),
                int(a.get("mant_dig", 24)),
                int(a.get("align", 8)),
                self.order(a.get("byte_order")),
            )
        if v == "string":
            self.next()
            a = self.attrs() if self.peek()[1] == "{" else {}
            return String(str(a.get("encoding", "UTF8")))
        if v == "enum":
            return self.enum()
        if v == "struct":
            return self.struct()
        if v == "variant":
            return self.variant()
        # a typealias / typedef name (possibly several words: "unsigned long")
        j, words, best = self.i, [], None
        while self.toks[j][0] == "id":
            words.append(self.toks[j][1])
            t = self.lookup(" ".join(words))
            if t is not None:
                best = (j + 1, t)
            j += 1
        if best is None:
            raise TraceFormatError(f"metadata: type {v!r} is not declared")
        self.i = best[0]
        return best[1]

    def order(self, v: Any) -> str:
        if v in (None, "native"):
            return self.byte_order
        if v in ("le",):
            return "le"
        if v in ("be", "network"):
            return "be"
        raise TraceFormatError(f"metadata: byte_order {v!r} is not supported")

    def attrs(self) -> dict[str, Any]:
        self.expect("{")
        a: dict[str, Any] = {}
        while not self.accept("}"):
            key = self.ident()
            self.expect("=")
            a[key] = self.value()
            self.expect(";")
        return a

    def integer(self, a: dict[str, Any]) -> Int:
        for k in a:
            if k not in ("size", "align", "signed", "byte_order", "base", "encoding", "map"):
                raise TraceFormatError(f"metadata: integer attribute {k!r} is not supported")
        if "size" not in a:
            raise TraceFormatError("metadata: an integer has no size")
        base = a.get("base", 10)
        base = {
            "decimal": 10,
            "dec": 10,
            "d": 10,
            "i": 10,
            "u": 10,
            "hexadecimal": 16,
            "hex": 16,
            "x": 16,
            "X": 16,
            "p": 16,
            "octal": 8,
            "oct": 8,
            "o": 8,
            "binary": 2,
            "b": 2,
        }.get(base, base)
        clock = None
        m = a.get("map")
        if m is not None:
            mm = re.fullmatch(r"clock\.(\w+)\.value", str(m))
            if not mm:
                raise TraceFormatError(f"metadata: integer map {m!r} is not supported")
            clock = mm.group(1)
        signed = a.get("signed", False)
        signed = signed in (True, 1, "true", "TRUE")
        size = int(a["size"])
        if size <= 0 or size > 64:
            raise TraceFormatError(f"metadata: integers of {size} bits are not supported")
        return Int(
            size=size,
            align=int(a.get("align", 8 if size % 8 == 0 else 1)),
            signed=signed,
            byte_order=self.order(a.get("byte_order")),
            base=int(base),
            encoding=str(a.get("encoding", "none")),
            clock=clock,
        )

    def enum(self) -> Enum:
        self.expect("enum")
        if self.peek()[0] == "id" and self.peek(1)[1] in (":", "{"):
            name = self.ident()
            if self.peek()[1] == ";":
                return self.lookup("enum " + name)
        else:
            name = None
        container = self.type_spec() if self.accept(":") else self.lookup("int")
        if not isinstance(container, Int):
            raise TraceFormatError("metadata: an enum's container is not an integer")
        self.expect("{")
        maps: list[tuple[int, int, str]] = []
        nxt = 0
        while not self.accept("}"):
            kind, label = self.next()
            if kind not in ("id", "str"):
                self.i -= 1
                raise self.error("expected an enum label")
            lo = hi = nxt
            if self.accept("="):
                lo = hi = self.value()
                if self.accept("..."):
                    hi = self.value()
            maps.append((int(lo), int(hi), str(label)))
            nxt = int(hi) + 1
            if not self.accept(","):
                self.expect("}")
                break
        e = Enum(container, maps)
        if name:
            self.aliases[-1]["enum " + name] = e
        return e

    def struct(self) -> Struct:
        self.expect("struct")
        name = self.ident() if self.peek()[0] == "id" else None
        if name and self.peek()[1] != "{":
            t = self.lookup("struct " + name)
            if t is None:
                raise TraceFormatError(f"metadata: struct {name} is not declared")
            return t
        fields = self.fields_block()
        s = Struct(fields)
        if self.accept("align"):
            self.expect("(")
            s.min_align = int(self.value())
            self.expect(")")
        if name:
            self.aliases[-1]["struct " + name] = s
        return s

    def variant(self) -> Variant:
        self.expect("variant")
        name = self.ident() if self.peek()[0] == "id" else None
        tag = None
        if self.accept("<"):
            parts = [self.ident()]
            while self.accept("."):
                parts.append(self.ident())
            tag = ".".join(parts)
            self.expect(">")
        if name and self.peek()[1] != "{":
            t = self.lookup("variant " + name)
            if t is None:
                raise TraceFormatError(f"metadata: variant {name} is not declared")
            return Variant(tag, t.options)
        v = Variant(tag, self.fields_block())
        if name:
            self.aliases[-1]["variant " + name] = v
        return v

    def fields_block(self) -> list[tuple[str, Any]]:
        self.expect("{")
        self.aliases.append({})
        out: list[tuple[str, Any]] = []
        while not self.accept("}"):
            if self.peek()[1] in ("typealias", "typedef"):
                self.statement(top=False)
                continue
            t = self.type_spec()
            while True:
                name, ft = self.declarator(t)
                out.append((name, ft))
                if not self.accept(","):
                    break
            self.expect(";")
        self.aliases.pop()
        return out

    def declarator(self, t: Any) -> tuple[str, Any]:
        name = self.ident()
        dims: list[Any] = []
        while self.accept("["):
            kind, v = self.peek()
            if kind == "num":
                self.next()
                dims.append(int(v))
            else:
                parts = [self.ident()]
                while self.accept("."):
                    parts.append(self.ident())
                dims.append(".".join(parts))
            self.expect("]")
        for d in reversed(dims):
            t = Array(t, d) if isinstance(d, int) else Sequence(t, d)
        return name, t


def _trace_block(text: str) -> str:
    m = re.search(r"\btrace\s*\{", text)
    return text[m.end() : m.end() + 4000] if m else ""


def _struct_or_none(items: dict[str, Any], key: str, where: str) -> Struct | None:
    t = items.get(key)
    if t is None:
        return None
    if not isinstance(t, Struct):
        raise TraceFormatError(f"metadata: {where}.{key} is not a struct")
    return t


def parse_tsdl(text: str) -> Metadata:
    """Parse TSDL text; raises TraceFormatError (one sentence) for what it does not support."""
    if "trace" not in text:
        raise TraceFormatError("metadata has no trace block")
    try:
        return _Parser(text).parse()
    except RecursionError:
        raise TraceFormatError("metadata nests types too deeply") from None
