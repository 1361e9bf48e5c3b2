"""Marker formats: parsing, payload encoding and decoding.

A marker format is the old kernel-marker style description of an event's
payload, ``"prev_pid %d next_pid %d comm %s"``: a field name, then a
printf-like type, repeated.  This module owns the grammar, the byte encoding
of each type (shared by the probe, the CTF writer, the reader and live views)
and precompiled encoders/decoders per format.

Payload encodings (little endian, byte aligned, no padding) are those of the one field-type
table, :mod:`tracetui.core.model.fields`.

Encoders and decoders are generated once per format (``exec`` of a small
function specialised to the field list), because the generic loop over
fields costs several times more per event than one ``struct`` call.
"""

from __future__ import annotations

import json
import keyword
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tracetui.core.model.fields import TYPES, FieldType

__all__ = [
    "TYPES",
    "Field",
    "FieldType",
    "MarkerFormat",
    "check_event_name",
    "parse_format",
]


_TYPE_LIST = " ".join("%" + c for c in TYPES)
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Event names are "subsystem_event"; kept to C identifiers so they are safe
# in TSDL strings, file-free of quoting, and greppable in dumps.
_EVENT_NAME_MAX = 128


def check_event_name(name: str) -> None:
    """Raise ValueError unless ``name`` can name a marker (a C identifier)."""
    if not isinstance(name, str) or not _IDENT_RE.match(name) or len(name) > _EVENT_NAME_MAX:
        raise ValueError(
            f"marker name {name!r} must be a C identifier (letters, digits and '_', "
            f"not starting with a digit) of at most {_EVENT_NAME_MAX} characters"
        )


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType


# Decoded values of one event, in field order.
Values = tuple[Any, ...]
Decoder = Callable[[bytes, int, int], tuple[Values, int]]


class MarkerFormat:
    """A parsed marker format with its precompiled encoder and decoder.

    ``encode(*args) -> bytes`` raises TypeError (one sentence) for a wrong
    number or type of arguments, or an integer out of range for its type.
    ``decode(buf, pos, end) -> (values, new_pos)`` reads one payload starting
    at ``pos`` in ``bytes`` ``buf`` without reading at or past ``end``; it
    raises ValueError on a payload that does not fit.

    ``fixed_struct`` is the ``struct.Struct`` of the whole payload when every
    field has a fixed size and no value needs converting (no %c), so a
    caller can ``unpack_from`` it directly (the reader's hot path does).
    """

    __slots__ = (
        "decode",
        "encode",
        "fields",
        "fixed_size",
        "fixed_struct",
        "names",
        "text",
        "types",
    )

    def __init__(self, text: str, fields: tuple[Field, ...]) -> None:
        self.text = text
        self.fields = fields
        self.names: tuple[str, ...] = tuple(f.name for f in fields)
        self.types: tuple[FieldType, ...] = tuple(f.type for f in fields)
        self.fixed_size: int | None = (
            sum(t.size for t in self.types) if all(t.fixed for t in self.types) else None
        )
        self.fixed_struct: struct.Struct | None = None
        if self.fixed_size is not None and all(t.kind != "char" for t in self.types):
            self.fixed_struct = struct.Struct("<" + "".join(t.struct_char for t in self.types))
        self.encode: Callable[..., bytes] = _make_encoder(self)
        self.decode: Decoder = _make_decoder(self)

    def __repr__(self) -> str:
        return f"MarkerFormat({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MarkerFormat) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def format_values(self, values: Sequence[Any]) -> str:
        """``name=value, ...`` as dumps and live views show a payload."""
        return ", ".join(
            f"{f.name}={format_value(f.type, v)}" for f, v in zip(self.fields, values, strict=True)
        )

    def as_dict(self, values: Sequence[Any]) -> dict[str, Any]:
        return dict(zip(self.names, values, strict=True))


def format_value(ftype: FieldType, value: Any) -> str:
    """One value as text: hex for %x/%p, quoted strings and characters."""
    kind = ftype.kind
    if kind == "hex":
        return f"0x{value:x}"
    if kind == "str" or kind == "char":
        return _quote(value)
    if kind == "float":
        return repr(value)
    return str(value)


def _quote(s: str) -> str:
    # JSON-style double-quoted string; control characters (ESC...) escaped so
    # a traced value cannot drive the terminal.  The common case is one check.
    if s.isprintable() and '"' not in s and "\\" not in s:
        return '"' + s + '"'
    return json.dumps(s, ensure_ascii=False)


@lru_cache(maxsize=1024)
def parse_format(text: str) -> MarkerFormat:
    """Parse a marker format; ValueError with one sentence when it is bad.

    The result is cached: markers with the same format share one object.
    """
    if not isinstance(text, str):
        raise ValueError(f"a marker format is a string, not {type(text).__name__}")
    tokens = text.split()
    fields: list[Field] = []
    seen: set[str] = set()
    if len(tokens) % 2:
        raise ValueError(
            f"marker format {text!r} must be pairs of a field name and a type "
            f"(e.g. 'pid %d comm %s'); {tokens[-1]!r} has no partner"
        )
    for name, spec in zip(tokens[0::2], tokens[1::2], strict=True):
        if not _IDENT_RE.match(name):
            if name.startswith("%"):
                raise ValueError(
                    f"marker format {text!r}: a field name must come before the type {name!r}"
                )
            raise ValueError(
                f"marker format {text!r}: field name {name!r} is not a C identifier "
                "(letters, digits and '_', not starting with a digit)"
            )
        if name in seen:
            raise ValueError(f"marker format {text!r}: field name {name!r} is used twice")
        if not spec.startswith("%") or spec[1:] not in TYPES:
            raise ValueError(
                f"marker format {text!r}: field {name!r} has type {spec!r}; "
                f"the types are {_TYPE_LIST}"
            )
        seen.add(name)
        fields.append(Field(name, TYPES[spec[1:]]))
    canonical = " ".join(f"{f.name} %{f.type.code}" for f in fields)
    if canonical != text:
        # Same fields, different spacing: share the canonical object.
        return parse_format(canonical)
    return MarkerFormat(canonical, tuple(fields))


# -- code generation ----------------------------------------------------------
#
# Consecutive fixed-size fields are packed/unpacked with one struct call;
# strings sit between those groups.  The generated source is tiny and is kept
# in the function's __doc__-free globals for debugging via _source.


def _groups(fmt: MarkerFormat) -> list[tuple[str, list[int]]]:
    """Split field indices into ("fixed", [i...]) runs and ("str", [i]) items."""
    out: list[tuple[str, list[int]]] = []
    for i, t in enumerate(fmt.types):
        if t.kind == "str":
            out.append(("str", [i]))
        elif out and out[-1][0] == "fixed":
            out[-1][1].append(i)
        else:
            out.append(("fixed", [i]))
    return out


def _param_names(fmt: MarkerFormat) -> list[str]:
    """Parameter names of a generated encoder: the field names where possible
    (Python's own argument-count errors then name them).  Keywords and names
    starting with "_" (the generated code's helpers) are renamed."""
    out = []
    for i, n in enumerate(fmt.names):
        if n.startswith("_"):
            n = f"arg{i}"
        elif keyword.iskeyword(n):
            n = n + "_"
        out.append(n)
    # A renamed one may now clash with another field's name.
    return out if len(set(out)) == len(out) else [f"arg{i}" for i in range(len(out))]


def _make_encoder(fmt: MarkerFormat) -> Callable[..., bytes]:
    params = _param_names(fmt)
    ns: dict[str, Any] = {"_diag": _EncodeDiagnosis(fmt), "_E": _ENCODE_ERRORS, "_C": _CHAR_CODES}
    parts: list[str] = []
    checks: list[str] = []
    for gi, (kind, idx) in enumerate(_groups(fmt)):
        if kind == "fixed":
            ns[f"_S{gi}"] = struct.Struct("<" + "".join(fmt.types[i].struct_char for i in idx)).pack
            args = ", ".join(
                f"_C[{params[i]}]" if fmt.types[i].kind == "char" else params[i] for i in idx
            )
            parts.append(f"_S{gi}({args})")
        else:
            p = params[idx[0]]
            parts.append(f"{p}.encode()")
            parts.append('b"\\0"')
            # An embedded NUL would end the string early for every reader
            # and shift the fields after it: send such values the slow way.
            checks.append(f'"\\0" in {p}')
    body = " + ".join(parts) if parts else 'b""'
    sig = ", ".join(params)
    lines = [f"def encode({sig}):", "    try:"]
    if checks:
        lines.append(f"        if {' or '.join(checks)}:")
        lines.append(f"            return _diag({sig})")
    lines += [
        f"        return {body}",
        "    except _E:",
        f"        return _diag({sig})",
    ]
    src = "\n".join(lines)
    exec(compile(src, f"<marker format {fmt.text!r}>", "exec"), ns)
    fn: Callable[..., bytes] = ns["encode"]
    fn.__qualname__ = fn.__name__ = "encode"
    fn.__doc__ = f"Encode a payload of format {fmt.text!r}."
    return fn


_ENCODE_ERRORS = (
    struct.error,
    AttributeError,
    UnicodeEncodeError,
    TypeError,
    OverflowError,
    KeyError,
)
# %c holds one ASCII character: a byte that every reader shows the same way
# (CTF readers show a lone byte >= 0x80 as an invalid UTF-8 sequence).
_CHAR_CODES = {chr(i): i for i in range(128)}
# Decoding mirrors babeltrace2: NUL is the empty string, a non-ASCII byte is
# U+FFFD.
_CHAR_VALUES = ("", *(chr(i) for i in range(1, 128)), *("\ufffd",) * 128)

_INT_RANGE = {
    "i": (-(1 << 31), (1 << 31) - 1),
    "I": (0, (1 << 32) - 1),
    "q": (-(1 << 63), (1 << 63) - 1),
    "Q": (0, (1 << 64) - 1),
}


class _EncodeDiagnosis:
    """The slow path of an encoder: odd values, and the sentence for bad ones."""

    __slots__ = ("fmt",)

    def __init__(self, fmt: MarkerFormat) -> None:
        self.fmt = fmt

    def __call__(self, *args: Any) -> bytes:
        out = bytearray()
        for f, v in zip(self.fmt.fields, args, strict=True):
            out += _encode_one(self.fmt, f, v)
        return bytes(out)


def _bad(fmt: MarkerFormat, f: Field, value: Any, want: str) -> TypeError:
    return TypeError(
        f"field {f.name!r} (%{f.type.code}) of format {fmt.text!r} takes {want}, "
        f"not {type(value).__name__} {value!r:.40}"
    )


def _encode_one(fmt: MarkerFormat, f: Field, v: Any) -> bytes:
    t = f.type
    if t.kind == "str":
        if isinstance(v, str):
            b = v.encode("utf-8", "replace")
        elif isinstance(v, bytes | bytearray):
            b = bytes(v)
        else:
            raise _bad(fmt, f, v, "a str")
        # Like C's %s, the string ends at its first NUL.
        return b.split(b"\0", 1)[0] + b"\0"
    if t.kind == "char":
        if isinstance(v, str) and len(v) == 1 and ord(v) < 128:
            return bytes((ord(v),))
        if isinstance(v, bytes) and len(v) == 1 and v[0] < 128:
            return v
        raise _bad(fmt, f, v, "one ASCII character")
    if t.kind == "float":
        if isinstance(v, int | float):
            try:
                return struct.pack("<d", v)
            except (OverflowError, struct.error):
                raise _bad(fmt, f, v, "a float") from None
        raise _bad(fmt, f, v, "a float")
    if not isinstance(v, int):
        raise _bad(fmt, f, v, "an int")
    lo, hi = _INT_RANGE[t.struct_char]
    if not lo <= v <= hi:
        raise _bad(fmt, f, v, f"an int in {lo}..{hi}")
    return struct.pack("<" + t.struct_char, v)


def payload_source(
    fmt: MarkerFormat,
    ns: dict[str, Any],
    indent: str = "    ",
    key: str = "",
    string: Callable[[str], list[str]] | None = None,
) -> list[str]:
    """Source lines that read a payload of FMT at ``pos`` of ``buf`` into ``v0``..``vN``.

    The one generator of payload-reading code: this module's decoders and ``tracetui dump``'s
    text decoder use it.  Helpers are put into ``ns`` under names made unique by ``key``; a
    %c field is looked up in ``ns["_CH"]`` (the caller's table: characters, or their text).
    ``string(v)`` gives the lines that turn ``buf[pos:e]`` into ``v`` (default: decoded UTF-8).
    The lines end with ``pos`` after the payload, and raise ValueError past ``end``.
    """
    if string is None:

        def string(v: str) -> list[str]:
            return [f"{v} = buf[pos:e].decode('utf-8', 'replace')"]

    lines: list[str] = []
    for gi, (kind, idx) in enumerate(_groups(fmt)):
        if kind == "fixed":
            st = struct.Struct("<" + "".join(fmt.types[i].struct_char for i in idx))
            name = f"_U{key}_{gi}"
            ns[name] = st.unpack_from
            lines.append(f"{''.join(f'v{i}, ' for i in idx)}= {name}(buf, pos)")
            lines.append(f"pos += {st.size}")
            lines += [f"v{i} = _CH[v{i}]" for i in idx if fmt.types[i].kind == "char"]
        else:
            lines.append("e = buf.index(0, pos, end)")
            lines += string(f"v{idx[0]}")
            lines.append("pos = e + 1")
    lines.append("if pos > end:")
    lines.append("    raise ValueError('payload runs past the end of its packet')")
    return [indent + line for line in lines]


def _make_decoder(fmt: MarkerFormat) -> Decoder:
    if fmt.fixed_struct is not None:
        return _fixed_decoder(fmt.fixed_struct)
    ns: dict[str, Any] = {"_CH": _CHAR_VALUES}
    lines = ["def decode(buf, pos, end):", *payload_source(fmt, ns)]
    lines.append(f"    return ({''.join(f'v{i}, ' for i in range(len(fmt.fields)))}), pos")
    src = "\n".join(lines)
    exec(compile(src, f"<marker format {fmt.text!r}>", "exec"), ns)
    fn: Decoder = ns["decode"]
    return fn


def _fixed_decoder(st: struct.Struct) -> Decoder:
    unpack = st.unpack_from
    size = st.size

    def decode(buf: bytes, pos: int, end: int) -> tuple[Values, int]:
        if pos + size > end:
            raise ValueError("payload runs past the end of its packet")
        return unpack(buf, pos), pos + size

    return decode
