"""Rule-set data structure: text format, parser errors, evaluation semantics."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontends.nesy.errors import NesyError, RuleSyntaxError
from frontends.nesy.rules import (
    NO_CLASS,
    ExceptionHead,
    ExceptionLiteral,
    FilterLiteral,
    Rule,
    RuleSet,
    TargetHead,
    TargetLiteral,
    parse_rules,
)

REFERENCE_TEXT = """\
target(X,'bathroom') :- f12(X), not f7(X), not ab1(X).
target(X,'bedroom') :- f301(X), not target(X,'bathroom').
ab1(X) :- f88(X), f4(X).
"""


def test_reference_text_round_trips():
    rule_set = parse_rules(REFERENCE_TEXT)
    assert rule_set.class_names == ("bathroom", "bedroom")
    assert rule_set.rules[0] == Rule(
        TargetHead("bathroom"),
        (FilterLiteral(12), FilterLiteral(7, negated=True), ExceptionLiteral(1)),
    )
    assert str(rule_set) == REFERENCE_TEXT


def test_size_counts_filter_and_exception_literals_only():
    size = parse_rules(REFERENCE_TEXT).size()
    assert (size.n_rules, size.n_preds, size.size) == (3, 5, 6)


def test_decision_list_negation_and_exceptions():
    rule_set = parse_rules(REFERENCE_TEXT)
    table = np.zeros((5, 302), dtype=bool)
    table[0, 12] = True
    table[1, [12, 7, 301]] = True
    table[2, [12, 88, 4]] = True
    table[3, [12, 88]] = True
    expected = [0, 1, NO_CLASS, 0, NO_CLASS]
    assert rule_set.predict(table).tolist() == expected


def test_first_class_in_order_wins_without_explicit_ordering_literals():
    rule_set = parse_rules("target(X,'a') :- f0(X).\ntarget(X,'b') :- f1(X).\n", class_names=["b", "a"])
    assert rule_set.predict(np.array([[1, 1], [0, 1], [0, 0]])).tolist() == [1, 0, NO_CLASS]


def test_default_rule_with_empty_body_prints_as_fact():
    rule_set = RuleSet(("a",), (Rule(TargetHead("a")),))
    assert str(rule_set) == "target(X,'a').\n"
    assert parse_rules(str(rule_set)) == rule_set


def test_quotes_in_class_names_are_doubled():
    rule_set = RuleSet(("it's",), (Rule(TargetHead("it's"), (FilterLiteral(0),)),))
    assert str(rule_set) == "target(X,'it''s') :- f0(X).\n"
    assert parse_rules(str(rule_set)).class_names == ("it's",)


def test_comments_and_line_breaks_are_allowed():
    text = "% learned rules\ntarget(X,'a') :-\n    f1(X),  % a filter\n    not f2(X).\n"
    assert str(parse_rules(text)) == "target(X,'a') :- f1(X), not f2(X).\n"


@pytest.mark.parametrize(
    "text, location, message",
    [
        ("target(X,a).", "1:10", "expected a quoted class name, found 'a'"),
        ("target(X,'a') :- f1(X)", "1:23", "expected '.', found 'end of input'"),
        ("target(X,'a') :- f1(X).\ntarget(X,'b') :- f2(X), not ab2(X).", "2:25", "ab2 has no defining rule"),
        ("foo(X).", "1:1", "unknown predicate 'foo' (expected target, fK or abN)"),
        ("target(X,'b') :- not target(X,'a').", "1:18", "target(X,'a') is not defined by earlier rules"),
        ("ab1(X) :- ab2(X).\nab2(X) :- ab1(X).", "1:1", "ab1 depends on itself"),
        ("f1(X).", "1:1", "filter predicates are facts from the table, not rule heads"),
        ("target(Y,'a').", "1:8", "expected the variable 'X', found 'Y'"),
        ("target(X,'a') :- f1(X) & f2(X).", "1:24", "unexpected character '&'"),
        ("not target(X,'a').", "1:1", "a rule head cannot be negated"),
        ("target(X,'a') :- f01(X).", "1:18", "unknown predicate 'f01' (expected target, fK or abN)"),
        (
            "target(X,'a').\ntarget(X,'b').\ntarget(X,'a') :- f1(X).",
            "3:1",
            "rules for class 'a' are not contiguous",
        ),
        (
            "target(X,'a').\nab1(X) :- not target(X,'a').",
            "2:11",
            "exception rules may not refer to target predicates",
        ),
    ],
)
def test_syntax_errors_name_file_line_and_column(text, location, message):
    with pytest.raises(RuleSyntaxError) as raised:
        parse_rules(text, "rules.txt")
    assert str(raised.value) == f"rules.txt:{location}: error: {message}"


def test_unknown_class_is_reported_against_given_class_names():
    with pytest.raises(RuleSyntaxError, match="rules.txt:1:1: error: unknown class 'cat'"):
        parse_rules("target(X,'cat').", "rules.txt", class_names=["dog"])


def test_constructing_an_invalid_rule_set_raises():
    with pytest.raises(NesyError, match="rule 1: ab3 has no defining rule"):
        RuleSet(("a",), (Rule(TargetHead("a"), (ExceptionLiteral(3),)),))


def test_table_shape_is_checked():
    rule_set = parse_rules(REFERENCE_TEXT)
    with pytest.raises(NesyError, match="uses f301 but the table has only 10 filter columns"):
        rule_set.predict(np.zeros((2, 10), dtype=bool))
    with pytest.raises(NesyError, match="must be 2-D"):
        rule_set.predict(np.zeros(302, dtype=bool))
    with pytest.raises(NesyError, match="only 0/1 values"):
        rule_set.predict(np.full((1, 302), 2))


@st.composite
def rule_sets(draw):
    n_classes = draw(st.integers(1, 4))
    class_names = tuple(f"c{index}" for index in range(n_classes))
    n_exceptions = draw(st.integers(0, 3))
    filters = st.builds(FilterLiteral, st.integers(0, 15), st.booleans())
    rules, earlier = [], []
    for name in class_names[: draw(st.integers(1, n_classes))]:
        for _ in range(draw(st.integers(1, 3))):
            body = draw(st.lists(filters, max_size=3))
            if n_exceptions:
                body += draw(st.lists(st.builds(ExceptionLiteral, st.integers(1, n_exceptions)), max_size=1))
            rules.append(Rule(TargetHead(name), tuple(body + earlier)))
        earlier.append(TargetLiteral(name))
    for exception_id in range(1, n_exceptions + 1):
        later = st.builds(ExceptionLiteral, st.integers(exception_id + 1, n_exceptions + 1))
        body = draw(st.lists(filters, min_size=1, max_size=3))
        if exception_id < n_exceptions:
            body += draw(
                st.lists(later.filter(lambda literal: literal.exception_id <= n_exceptions), max_size=1)
            )
        rules.append(Rule(ExceptionHead(exception_id), tuple(body)))
    return RuleSet(class_names, tuple(rules))


@settings(max_examples=60, deadline=None)
@given(rule_sets(), st.integers(0, 2**32 - 1))
def test_print_parse_round_trip_preserves_structure_and_semantics(rule_set, seed):
    reparsed = parse_rules(str(rule_set), class_names=rule_set.class_names)
    assert reparsed == rule_set
    table = np.random.default_rng(seed).random((64, 16)) < 0.5
    assert (reparsed.predict(table) == _predict_one_by_one(rule_set, table)).all()


def _predict_one_by_one(rule_set, table):
    """Reference semantics, row by row and rule by rule."""

    def holds(head, row):
        return any(
            all(literal_holds(literal, row) for literal in rule.body)
            for rule in rule_set.rules
            if rule.head == head
        )

    def literal_holds(literal, row):
        match literal:
            case FilterLiteral(filter_index=index):
                value = bool(row[index])
            case ExceptionLiteral(exception_id=exception_id):
                value = holds(ExceptionHead(exception_id), row)
            case TargetLiteral(class_name=name):
                value = holds(TargetHead(name), row)
        return value != literal.negated

    predictions = []
    for row in table:
        fired = [n for n in rule_set.decision_order() if holds(TargetHead(n), row)]
        predictions.append(rule_set.class_names.index(fired[0]) if fired else NO_CLASS)
    return np.array(predictions)
