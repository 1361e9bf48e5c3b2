"""The one table of field types: every layer that stores, declares or shows a field reads it here.

A marker format (``"pid %d comm %s"``) names each field's type by a printf-like code.  For each
code this table states, once:

======  ======  ====  ===========  ==========================================  ======  =====
code    struct  size  native type  TSDL declaration (alias ``tt_<code>``)      kind    emit
======  ======  ====  ===========  ==========================================  ======  =====
%d      i       4     TTPR_I32     integer, 32 bits, signed                    int     i
%u      I       4     TTPR_U32     integer, 32 bits, unsigned                  int     u
%ld     q       8     TTPR_I64     integer, 64 bits, signed                    int     l
%lu     Q       8     TTPR_U64     integer, 64 bits, unsigned                  int     q
%lld    q       8     TTPR_I64     integer, 64 bits, signed                    int     l
%llu    Q       8     TTPR_U64     integer, 64 bits, unsigned                  int     q
%x      I       4     TTPR_X32     integer, 32 bits, unsigned, base 16         hex     u
%p      Q       8     TTPR_PTR     integer, 64 bits, unsigned, base 16         hex     q
%c      B       1     TTPR_CHAR    integer, 8 bits, UTF-8 (declared ``[1]``)   char
%f      d       8     TTPR_F64     floating point, IEEE double                 float
%s              0     TTPR_STR     string, UTF-8, NUL-terminated               str
======  ======  ====  ===========  ==========================================  ======  =====

``struct``/``size``: the payload encoding (little endian, byte aligned, no padding; size 0 is
variable).  ``native``: the field type id of the C emitters (``native/ttpr.h``; a test checks
the compiled module agrees).  ``tsdl``: the CTF declaration behind the alias ``tt_<code>``;
%ld and %lld share a layout but keep distinct aliases so the metadata maps back to the exact
format text.  ``kind``: how a value is shown (:func:`tracetui.core.model.formats.format_value`).
``emit``: the letter of the generated typed emitters (``native/build.py``) for integer-like
fields that take an ``int64`` argument; empty for the others.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NATIVE_TYPES", "TYPES", "FieldType"]


@dataclass(frozen=True)
class FieldType:
    """One printf-like type: how it is stored, declared and shown."""

    code: str  # "d", "llu", ...: the text after '%'
    struct_char: str  # struct module code; "" for strings
    size: int  # bytes; 0 for strings (variable)
    kind: str  # "int", "hex", "char", "float", "str"
    signed: bool
    native: str  # the TTPR_* name of native/ttpr.h, without the prefix
    native_id: int  # its value
    tsdl: str  # the TSDL type declared as alias tt_<code>
    emit: str = ""  # typed emitter letter (i int32, u uint32, l int64, q uint64)

    @property
    def fixed(self) -> bool:
        return self.size > 0

    @property
    def alias(self) -> str:
        """The TSDL type alias fields of this type are declared with."""
        return f"tt_{self.code}"


def _int(bits: int, signed: bool, base16: bool = False) -> str:
    base = " base = 16;" if base16 else ""
    return f"integer {{ size = {bits}; align = 8; signed = {str(signed).lower()};{base} }}"


TYPES: dict[str, FieldType] = {
    t.code: t
    for t in (
        FieldType("d", "i", 4, "int", True, "I32", 1, _int(32, True), "i"),
        FieldType("u", "I", 4, "int", False, "U32", 2, _int(32, False), "u"),
        FieldType("ld", "q", 8, "int", True, "I64", 3, _int(64, True), "l"),
        FieldType("lu", "Q", 8, "int", False, "U64", 4, _int(64, False), "q"),
        FieldType("lld", "q", 8, "int", True, "I64", 3, _int(64, True), "l"),
        FieldType("llu", "Q", 8, "int", False, "U64", 4, _int(64, False), "q"),
        FieldType("x", "I", 4, "hex", False, "X32", 5, _int(32, False, True), "u"),
        FieldType("p", "Q", 8, "hex", False, "PTR", 6, _int(64, False, True), "q"),
        # %c is one UTF-8 code unit; fields declare it as a one-element array so CTF readers
        # show it as a one-character string.
        FieldType(
            "c",
            "B",
            1,
            "char",
            False,
            "CHAR",
            8,
            "integer { size = 8; align = 8; signed = false; encoding = UTF8; }",
        ),
        FieldType(
            "f",
            "d",
            8,
            "float",
            True,
            "F64",
            9,
            "floating_point { exp_dig = 11; mant_dig = 53; align = 8; }",
        ),
        FieldType("s", "", 0, "str", False, "STR", 7, "string { encoding = UTF8; }"),
    )
}

# Native type name -> id, as native/ttpr.h defines them (TTPR_<name>).
NATIVE_TYPES: dict[str, int] = {t.native: t.native_id for t in TYPES.values()}
