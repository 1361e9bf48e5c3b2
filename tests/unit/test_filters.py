"""Filter rules and routing (the trace filter and per-channel filters)."""

from __future__ import annotations

import pytest

from tracetui.core.daemon.filters import FilterRules, route


def test_default_trace_filter_accepts_everything() -> None:
    f = FilterRules()
    assert f.text() == "*"
    assert f.accepts("sched_switch") and f.accepts("proc_exec")


def test_zero_disables_all_events() -> None:
    f = FilterRules()
    assert f.apply("0")
    assert f.text() == "0" and f.rules == ()
    assert not f.accepts("sched_switch")


def test_names_and_globs_add_rules() -> None:
    f = FilterRules.empty()
    f.apply("sched_switch")
    f.apply("proc_*")
    assert f.rules == ("sched_switch", "proc_*")
    assert f.accepts("sched_switch") and f.accepts("proc_exec") and f.accepts("proc_exit")
    assert not f.accepts("sched_wakeup")
    assert not f.apply("sched_switch")  # adding an existing rule changes nothing


def test_bang_removes_an_existing_rule() -> None:
    f = FilterRules.empty()
    f.apply("sched_switch proc_exec")
    f.apply("!sched_switch")
    assert f.rules == ("proc_exec",)
    assert not f.accepts("sched_switch")


def test_bang_excludes_from_a_glob_and_a_name_undoes_it() -> None:
    f = FilterRules()
    f.apply("!sched_switch")
    assert f.rules == ("*", "!sched_switch")
    assert not f.accepts("sched_switch") and f.accepts("sched_wakeup")
    f.apply("sched_switch")
    assert f.rules == ("*", "sched_switch")
    assert f.accepts("sched_switch")


def test_several_rules_in_one_write_apply_in_order() -> None:
    f = FilterRules()
    f.apply("0, sched_* \n !sched_wakeup")
    assert f.rules == ("sched_*", "!sched_wakeup")
    assert f.accepts("sched_switch") and not f.accepts("sched_wakeup")


def test_reading_and_writing_back_restores_the_rules() -> None:
    f = FilterRules()
    f.apply("0 sched_* proc_exec !sched_wakeup")
    g = FilterRules()
    g.apply("0\n" + f.text())
    assert g == f


@pytest.mark.parametrize("bad", ["", "   ", "!", "a b/c", "x;rm", "!" + "a" * 200])
def test_invalid_rules_are_refused_and_change_nothing(bad: str) -> None:
    f = FilterRules()
    f.apply("0 sched_switch")
    with pytest.raises(ValueError) as exc:
        f.apply(f"proc_exec {bad}" if bad.strip() else bad)
    assert f.rules == ("sched_switch",)
    assert str(exc.value) and "\n" not in str(exc.value)


def test_routing_goes_to_the_channel_that_names_the_event_else_main() -> None:
    trace = FilterRules()
    channels = [
        ("main", FilterRules.empty()),
        ("processes", FilterRules(["proc_*"])),
        ("sched", FilterRules(["sched_switch"])),
    ]
    assert route("proc_exec", trace, channels) == "processes"
    assert route("sched_switch", trace, channels) == "sched"
    assert route("irq_entry", trace, channels) == "main"


def test_routing_first_channel_wins_and_trace_filter_decides_first() -> None:
    trace = FilterRules(["sched_*"])
    channels = [("a", FilterRules(["sched_switch"])), ("b", FilterRules(["sched_*"]))]
    assert route("sched_switch", trace, channels) == "a"
    assert route("sched_wakeup", trace, channels) == "b"
    assert route("proc_exec", trace, channels) is None
