"""The type guard and the fixes, as pure code: what converts without loss, what
conflicts, what a fix makes of a value, and the order in which workers' learning
counts."""

import pytest

from sink.ta.rules import Fail, fix_value, value_problem
from sink.ta.typeguard import TypeGuard, convert, kind_of


@pytest.mark.parametrize("value, kind", [
    ("x", "string"), ("2024-01-02 03:04:05", "time"), ("2024-01-02 03:04:05.123", "time"), (1, "number"),
    (1.5, "number"), (True, "boolean"), ([1, "a"], "list"), ([], "list"), ({"a": 1}, "object"),
    ([{"a": 1}], "object_group"),
])
def test_kinds(value, kind):
    assert kind_of(value) == kind


@pytest.mark.parametrize("value, kind, out", [
    ("12", "number", 12), ("-1.5", "number", -1.5), ("1e3", "number", 1000.0), (12, "string", "12"),
    (1.5, "string", "1.5"), (True, "string", "true"), ("false", "boolean", False),
])
def test_lossless_conversions(value, kind, out):
    got = convert(value, kind)
    assert got == out and type(got) is type(out)


@pytest.mark.parametrize("value, kind", [
    ("12a", "number"), ("012", "number"), (" 12", "number"), ("1" * 17, "number"), ("yes", "boolean"),
    (1, "boolean"), ([1], "string"), ("x", "list"), ("2024-01-02", "time"),
])
def test_what_would_lose_something_is_not_converted(value, kind):
    g = TypeGuard({"24": {"p": kind}})
    with pytest.raises(Fail) as e:
        g.check("24", "p", value, [])
    assert str(e.value).startswith(f"type_conflict: 'p' is a {kind} in app 24")


def test_names_are_compared_without_case_and_learned_once_written():
    g = TypeGuard()
    learn = []
    assert g.check("24", "Amount", 5, learn) == 5 and learn == [("Amount", "number")]
    assert g.kind("24", "amount") is None  # not before the event is written
    g.learn("24", learn)
    assert g.kind("24", "AMOUNT") == "number" and g.take_learned() == [("24", "amount", "number")]
    assert g.check("24", "amount", "7", []) == 7
    with pytest.raises(Fail):
        g.check("24", "AMOUNT", "many", [])
    assert g.check("25", "amount", "many", []) == "many"  # another app learns on its own


def test_a_text_property_takes_time_shaped_texts_but_a_time_one_only_those():
    g = TypeGuard({"24": {"note": "string", "when": "time"}})
    assert g.check("24", "note", "2024-01-02 03:04:05", []) == "2024-01-02 03:04:05"
    with pytest.raises(Fail):
        g.check("24", "when", "tomorrow", [])


def test_a_workers_learning_counts_in_batch_order():
    g = TypeGuard()
    assert not g.conflicts([("24", "amount", "number")])  # the first chunk's: learned
    assert g.conflicts([("24", "amount", "string"), ("24", "other", "boolean")])  # a later chunk's: refused whole
    assert g.kind("24", "other") is None
    assert not g.conflicts([("24", "amount", "number"), ("24", "other", "boolean")])
    assert g.kind("24", "other") == "boolean"


@pytest.mark.parametrize("code, value, fixed", [
    ("string_too_long", "é" * 1500, "é" * 1024),
    ("number_out_of_range", 10**16, "10000000000000000"),
    ("number_out_of_range", -1.5e16, "-1.5e+16"),
    ("list_too_long", list(range(600)), list(range(500))),
    ("list_item_too_long", ["x" * 300, 1], ["x" * 255, 1]),
    ("object_nested", {"a": {"b": 1}, "c": 2}, {"a": '{"b":1}', "c": 2}),
    ("object_nested", [{"a": [{"b": 1}]}], [{"a": '[{"b":1}]'}]),
])
def test_fixes_make_values_ta_keeps(code, value, fixed):
    assert value_problem("p", value)[0] == code
    assert fix_value(code, value) == fixed
    assert value_problem("p", fixed) is None
