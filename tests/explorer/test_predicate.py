"""The explorer's field predicates and event-name globs (tracetui.core.model.predicate)."""

from __future__ import annotations

import pytest

from tracetui.core.model.predicate import (
    EventFilter,
    NameFilter,
    PredicateError,
    compile_predicate,
)

EVENT = {"pid": 42, "comm": "bash", "prio": 120, "load": 0.75, "flags": 0x10}


def ev(
    text: str,
    fields: dict | None = None,
    name: str = "sched_switch",
    cpu: int = 1,
    channel: str = "main",
) -> bool:
    p = compile_predicate(text)
    assert p is not None
    return p.evaluate(EVENT if fields is None else fields, name, cpu, channel)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pid == 42", True),
        ("pid != 42", False),
        ('pid == 42 and comm == "bash"', True),
        ("pid == 41 or comm == 'bash'", True),
        ("not pid == 42", False),
        ("not (pid == 41 or prio < 100)", True),
        ("prio <= 120 and prio >= 120 and prio > 119 and prio < 121", True),
        ("flags == 0x10", True),
        ("flags == 0X1_0", True),
        ("load > 0.5", True),
        ("load < 7.5e-1", False),
        ("pid > -1", True),
        ("42 == pid", True),
        ("100 < prio", True),
        ('comm =~ "^ba"', True),
        ('comm =~ "sh$" and comm !~ "zsh"', True),
        ('comm =~ "^z"', False),
        ('pid =~ "4"', False),  # a regex never matches a number
        ('name == "sched_switch"', True),
        ('name =~ "^sched_" and cpu == 1 and channel == "main"', True),
        ("cpu != 1", False),
        ("missing == 1", False),  # no such field: false
        ("not missing == 1", True),
        ('pid < "x"', False),  # a number and a string do not compare: false
        ('pid < "x" or pid == 42', True),  # ... and only that comparison fails
        ("pid == 42 and (comm == 'zsh' or (prio == 120 and not load > 1))", True),
        ("pid == true", False),
        ('comm == "ba\\"sh"', False),
    ],
)
def test_good_expressions(text: str, expected: bool) -> None:
    assert ev(text) is expected


def test_string_escapes() -> None:
    assert ev('comm == "a\\tb"', {"comm": "a\tb"})
    assert ev("comm == 'it\\'s'", {"comm": "it's"})


def test_bind_folds_pseudo_fields_and_missing_fields() -> None:
    p = compile_predicate('name == "a" and pid == 1')
    assert p is not None
    assert p.bind("b", 0, "main", ("pid",)) is False  # the name decides for the class
    assert p.bind("a", 0, "main", ("comm",)) is False  # no pid field
    f = p.bind("a", 0, "main", ("comm", "pid"))
    assert callable(f)
    assert f(("x", 1)) and not f(("x", 2))
    assert compile_predicate("cpu < 4").bind("a", 2, "m", ()) is True
    assert p.names == {"name", "pid"}


def test_a_real_field_named_like_a_pseudo_field_wins() -> None:
    assert ev('name == "bob"', {"name": "bob"}, name="person")


def test_empty_is_no_predicate() -> None:
    assert compile_predicate("") is None
    assert compile_predicate("   ") is None


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("pid ==", 7, "expected a number or a quoted string"),
        ("pid = 42", 5, 'use "=="'),
        ("pid == 42 and", 14, "expected a field name"),
        ("pid == 42 &&", 11, '"and" / "or"'),
        ("(pid == 42", 11, 'expected ")"'),
        ("pid == 42)", 10, '"and", "or" or the end'),
        ('comm == "bash', 9, "unterminated string"),
        ("comm =~ bash", 9, "regular expression in quotes"),
        ('comm =~ "("', 9, "bad regular expression"),
        ("pid", 4, "expected a comparison"),
        ("pid 42", 5, "expected a comparison"),
        ("and pid == 1", 1, "expected a field name"),
        ("pid == 12ab", 8, "bad number"),
        ("pid == 0xzz", 8, "bad number"),
        ("pid == 1 $", 10, "unexpected character"),
        ('comm == "a\\q"', 11, "unknown escape"),
        ("42 == 43", 7, "a field name"),
        ("42 pid", 4, "expected a comparison"),
        ("not", 4, "expected a field name"),
    ],
)
def test_bad_expressions(text: str, column: int, words: str) -> None:
    with pytest.raises(PredicateError) as info:
        compile_predicate(text)
    e = info.value
    assert words in e.message, e.message
    assert e.column == column, str(e)
    assert str(e).startswith(f"column {column}: ")
    assert "\n" not in str(e)


def test_name_globs() -> None:
    f = NameFilter("sched_*, proc_exec")
    assert f.matches("sched_switch") and f.matches("proc_exec") and not f.matches("irq")
    f = NameFilter("sched_* !sched_stat*")
    assert f.matches("sched_switch") and not f.matches("sched_stat_wait")
    f = NameFilter("!py_*")
    assert f.matches("irq") and not f.matches("py_call")
    assert NameFilter("").matches("anything") and not NameFilter("")
    with pytest.raises(PredicateError):
        NameFilter("a, !")


def test_event_filter_combines_names_and_predicate() -> None:
    f = EventFilter("sched_*", "pid == 1")
    assert f.bind("irq", 0, "m", ("pid",)) is False
    t = f.bind("sched_x", 0, "m", ("pid",))
    assert callable(t) and t((1,)) and not t((2,))
    assert EventFilter("sched_*").bind("sched_x", 0, "m", ()) is True
    assert not EventFilter()
    assert f.describe() == "sched_* where pid == 1"
