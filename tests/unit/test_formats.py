"""Marker formats: the grammar, the payload encoding of every type, and its errors."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracetui.core.model.formats import TYPES, check_event_name, format_value, parse_format


def roundtrip(fmt_text: str, *args: object) -> tuple[object, ...]:
    fmt = parse_format(fmt_text)
    data = fmt.encode(*args)
    # Decoding must stop exactly at the end of the payload, even when more
    # bytes follow (records are packed back to back).
    buf = data + b"\xff" * 7
    values, end = fmt.decode(buf, 0, len(data))
    assert end == len(data)
    return values


def test_parse_fields_and_types() -> None:
    fmt = parse_format("prev_pid %d next_pid %d comm %s")
    assert fmt.names == ("prev_pid", "next_pid", "comm")
    assert [t.code for t in fmt.types] == ["d", "d", "s"]
    assert fmt.fixed_size is None and fmt.fixed_struct is None
    ints = parse_format("a %d b %u c %ld d %lu e %lld f %llu g %x h %p i %f")
    assert ints.fixed_size == 4 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 8
    assert ints.fixed_struct is not None and ints.fixed_struct.size == ints.fixed_size


def test_spacing_is_canonical_and_cached() -> None:
    a = parse_format("  pid   %d\tcomm %s ")
    assert a.text == "pid %d comm %s"
    assert a is parse_format("pid %d comm %s")


def test_empty_format_has_no_fields() -> None:
    fmt = parse_format("")
    assert fmt.fields == () and fmt.encode() == b""
    assert fmt.decode(b"", 0, 0) == ((), 0)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("pid", "no partner"),
        ("pid %d comm", "no partner"),
        ("pid %q", "%q"),
        ("pid %", "'%'"),
        ("pid d", "'d'"),
        ("1pid %d", "not a C identifier"),
        ("pid-x %d", "not a C identifier"),
        ("%d pid", "must come before the type"),
        ("pid %d pid %u", "used twice"),
    ],
)
def test_bad_formats_say_why_in_one_sentence(text: str, words: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_format(text)
    msg = str(err.value)
    assert words in msg and repr(text) in msg and "\n" not in msg


def test_keyword_field_names_are_allowed() -> None:
    # C/Python/TSDL keywords are fine as field names (TSDL gets "_" prefixes).
    assert roundtrip("class %d string %s event %u", 1, "x", 2) == (1, "x", 2)
    # So are names like the generated code's helpers, and clashes after renaming.
    assert roundtrip("_C %c _S0 %d _diag %s _E %f", "a", 1, "s", 0.5) == ("a", 1, "s", 0.5)
    assert roundtrip("class %d class_ %d", 1, 2) == (1, 2)


@pytest.mark.parametrize(
    ("code", "values"),
    [
        ("d", [-(2**31), -1, 0, 2**31 - 1]),
        ("u", [0, 2**32 - 1]),
        ("ld", [-(2**63), 2**63 - 1]),
        ("lu", [0, 2**64 - 1]),
        ("lld", [-(2**63), 2**63 - 1]),
        ("llu", [0, 2**64 - 1]),
        ("x", [0, 0xDEADBEEF, 2**32 - 1]),
        ("p", [0, 2**64 - 1]),
        ("f", [0.0, -1.5, 1e300, math.inf]),
        ("s", ["", "bash", "héllo wörld ✓", "a" * 1000]),
        ("c", ["A", " ", "~"]),
    ],
)
def test_every_type_roundtrips_at_its_limits(code: str, values: list[object]) -> None:
    for v in values:
        assert roundtrip(f"before %u v %{code} after %u", 7, v, 9) == (7, v, 9)


def test_encoding_is_the_documented_layout() -> None:
    fmt = parse_format("a %d b %llu c %s d %c e %f")
    assert fmt.encode(-2, 2**64 - 1, "hé", "Z", 0.5) == (
        struct.pack("<iQ", -2, 2**64 - 1) + "hé".encode() + b"\0" + b"Z" + struct.pack("<d", 0.5)
    )


def test_nan_roundtrips() -> None:
    (v,) = roundtrip("f %f", math.nan)
    assert isinstance(v, float) and math.isnan(v)


def test_string_ends_at_first_nul_like_c() -> None:
    assert roundtrip("s %s n %d", "ab\0cd", 5) == ("ab", 5)


def test_bytes_are_accepted_for_strings() -> None:
    assert roundtrip("s %s", b"raw") == ("raw",)


def test_invalid_utf8_and_surrogates_never_break_a_payload() -> None:
    assert roundtrip("s %s n %d", "\udcff", 1) == ("?", 1)
    fmt = parse_format("s %s")
    assert fmt.decode(b"\xff\xfe\0", 0, 3) == (("\ufffd\ufffd",), 3)


def test_char_nul_reads_back_empty_as_babeltrace2_shows_it() -> None:
    assert roundtrip("c %c", "\0") == ("",)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((1, 2), "missing"),
        ((1, 2, "x", 4), "positional"),
        (("1", 2, "x"), "'a' (%d)"),
        ((1.5, 2, "x"), "takes an int"),
        ((2**31, 2, "x"), "-2147483648..2147483647"),
        ((1, -1, "x"), "0..4294967295"),
        ((1, 2, 3), "'s' (%s)"),
        ((None, 2, "x"), "NoneType"),
    ],
)
def test_wrong_arguments_raise_typeerror(args: tuple[object, ...], words: str) -> None:
    fmt = parse_format("a %d b %u s %s")
    with pytest.raises(TypeError) as err:
        fmt.encode(*args)
    assert words in str(err.value)


@pytest.mark.parametrize("bad", ["AB", "", "é", 65, b"\x80"])
def test_char_takes_one_ascii_character(bad: object) -> None:
    with pytest.raises(TypeError, match="one ASCII character"):
        parse_format("c %c").encode(bad)


def test_float_rejects_non_numbers() -> None:
    with pytest.raises(TypeError, match="takes a float"):
        parse_format("f %f").encode("1.0")
    with pytest.raises(TypeError, match="takes a float"):
        parse_format("f %f").encode(10**400)


def test_truncated_payload_is_a_valueerror() -> None:
    fmt = parse_format("a %d s %s")
    data = fmt.encode(1, "abc")
    with pytest.raises(ValueError):
        fmt.decode(data, 0, len(data) - 1)  # NUL cut off
    fixed = parse_format("a %d b %d")
    with pytest.raises(ValueError):
        fixed.decode(fixed.encode(1, 2), 0, 7)


def test_format_value_shows_hex_and_quotes() -> None:
    fmt = parse_format("x %x p %p s %s c %c f %f n %d")
    text = fmt.format_values((255, 4096, 'a"b\x1b', "q", 0.5, -3))
    assert text == 'x=0xff, p=0x1000, s="a\\"b\\u001b", c="q", f=0.5, n=-3'
    assert format_value(TYPES["s"], "plain") == '"plain"'


def test_event_names() -> None:
    check_event_name("sched_switch")
    for bad in ["", "9lives", "a-b", "a b", "x" * 129]:
        with pytest.raises(ValueError, match="C identifier"):
            check_event_name(bad)


_VALUES = {
    "d": st.integers(-(2**31), 2**31 - 1),
    "u": st.integers(0, 2**32 - 1),
    "ld": st.integers(-(2**63), 2**63 - 1),
    "lu": st.integers(0, 2**64 - 1),
    "lld": st.integers(-(2**63), 2**63 - 1),
    "llu": st.integers(0, 2**64 - 1),
    "x": st.integers(0, 2**32 - 1),
    "p": st.integers(0, 2**64 - 1),
    "f": st.floats(allow_nan=False),
    "s": st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0")),
    "c": st.characters(max_codepoint=127, blacklist_characters="\0"),
}


@st.composite
def format_and_values(draw: st.DrawFn) -> tuple[str, list[object]]:
    codes = draw(st.lists(st.sampled_from(sorted(_VALUES)), max_size=8))
    text = " ".join(f"f{i} %{c}" for i, c in enumerate(codes))
    return text, [draw(_VALUES[c]) for c in codes]


@settings(max_examples=150, deadline=None)
@given(format_and_values())
def test_any_format_roundtrips(case: tuple[str, list[object]]) -> None:
    text, values = case
    assert list(roundtrip(text, *values)) == values
