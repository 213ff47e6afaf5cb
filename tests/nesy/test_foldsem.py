"""FOLD-SE-M on small tables with known answers, and the FOLD-RM adapter."""

import numpy as np
import pytest
from foldrm.algo import foldrm, predict

from frontends.nesy.errors import NesyError
from frontends.nesy.foldrm_baseline import learn_foldrm
from frontends.nesy.foldsem import learn_rule_set, magic_gini
from frontends.nesy.rulesets import predict_labels
from frontends.rules import NO_CLASS


def _all_rows(n_columns):
    """Every binary row over ``n_columns`` columns, each repeated 10 times."""
    rows = (np.arange(2**n_columns)[:, None] >> np.arange(n_columns)) & 1
    return np.repeat(rows.astype(bool), 10, axis=0)


def test_magic_gini_of_perfect_split_is_zero_and_mixed_split_negative():
    assert magic_gini(10, 0, 10, 0) == 0.0
    assert magic_gini(5, 5, 5, 5) == pytest.approx(-0.5)
    assert magic_gini(8, 2, 6, 4) == pytest.approx(-2 * (8 * 4 / 12 + 6 * 2 / 8) / 20)


def test_magic_gini_keeps_only_the_polarity_that_points_at_positives():
    assert np.isfinite(magic_gini(9, 1, 8, 2))
    assert magic_gini(1, 9, 2, 8) == -np.inf


def test_one_filter_per_class_gives_one_literal_per_class():
    table = np.zeros((300, 4), dtype=bool)
    labels = np.repeat([0, 1, 2], 100)
    table[:100, 2] = table[100:200, 0] = table[200:, 3] = True
    rule_set = learn_rule_set(table, labels, ["cat", "dog", "owl"])
    assert str(rule_set) == (
        "target(X,'cat') :- f2(X).\n"
        "target(X,'dog') :- f0(X), not target(X,'cat').\n"
        "target(X,'owl') :- not target(X,'cat'), not target(X,'dog').\n"
    )
    assert (predict_labels(rule_set, table, ["cat", "dog", "owl"]) == labels).all()


def test_default_rule_with_exception_gives_way_to_a_smaller_covering():
    table = _all_rows(3)
    labels = (table[:, 0] & ~table[:, 1]).astype(int)
    rule_set = learn_rule_set(table, labels, ["no", "yes"], exception_ratio=0.8)
    assert str(rule_set) == (
        "target(X,'no') :- f1(X).\ntarget(X,'no') :- not f0(X).\n"
        "target(X,'yes') :- not target(X,'no').\n"
    )
    assert (predict_labels(rule_set, table, ["no", "yes"]) == labels).all()


def test_exception_ratio_bounds_false_positives_before_exceptions():
    table = _all_rows(3)
    labels = (table[:, 0] & ~(table[:, 1] & table[:, 2])).astype(int)
    strict = learn_rule_set(table, labels, ["no", "yes"], exception_ratio=0.0)
    assert (predict_labels(strict, table, ["no", "yes"]) == labels).all()
    loose = learn_rule_set(table, labels, ["no", "yes"], exception_ratio=1.0)
    assert (predict_labels(loose, table, ["no", "yes"]) == labels).all()


def test_tail_prunes_rules_for_rare_cases():
    table = np.zeros((1000, 3), dtype=bool)
    labels = np.zeros(1000, dtype=int)
    labels[:500] = 1
    table[:500, 0] = True
    table[500:504, 1] = True
    labels[500:504] = 2
    kept = learn_rule_set(table, labels, ["a", "b", "c"], tail=0.0)
    assert (predict_labels(kept, table, ["a", "b", "c"]) == labels).all()
    assert "'c'" in str(kept)
    pruned = learn_rule_set(table, labels, ["a", "b", "c"], tail=5e-3)
    assert "'c'" not in str(pruned)
    assert pruned.size().n_rules < kept.size().n_rules


def test_uncovered_rows_predict_no_class():
    table = np.array([[1, 0]] * 20 + [[0, 1]] * 20 + [[0, 0]] * 20, dtype=bool)
    labels = np.repeat([0, 1, 0], 20)
    rule_set = learn_rule_set(table, labels, ["a", "b"])
    assert (predict_labels(rule_set, table, ["a", "b"]) == labels).all()
    assert predict_labels(rule_set, np.array([[1, 1]]), ["a", "b"]).tolist() in ([0], [1], [NO_CLASS])


def test_a_dominating_class_gets_the_literal_not_a_default_with_exception():
    """`y = a if f0 else b if f1 else c` with b dominating c: `b :- f1` (size 1), where
    stopping at the exception ratio gave `b :- not ab1. ab1 :- not f1.` (size 2)."""
    rng = np.random.default_rng(0)
    table = rng.random((2000, 3)) < np.array([0.5, 0.8, 0.5])
    labels = np.where(table[:, 0], 0, np.where(table[:, 1], 1, 2))
    rule_set = learn_rule_set(table, labels, ["a", "b", "c"])
    assert str(rule_set) == (
        "target(X,'a') :- f0(X).\n"
        "target(X,'b') :- f1(X), not target(X,'a').\n"
        "target(X,'c') :- not target(X,'a'), not target(X,'b').\n"
    )
    assert rule_set.size().size == 2
    assert (predict_labels(rule_set, table, ["a", "b", "c"]) == labels).all()


def test_disjunction_of_conjunctions_needs_four_literals():
    """`(f0 and f1) or (f2 and f3)`: the two conjunctions and a default (size 4), where the
    majority class as a default rule with nested exceptions had size 9."""
    table = _all_rows(4)
    labels = ((table[:, 0] & table[:, 1]) | (table[:, 2] & table[:, 3])).astype(int)
    rule_set = learn_rule_set(table, labels, ["no", "yes"])
    assert rule_set.size().size == 4
    assert str(rule_set) == (
        "target(X,'yes') :- f0(X), f1(X).\n"
        "target(X,'yes') :- f2(X), f3(X).\n"
        "target(X,'no') :- not target(X,'yes').\n"
    )
    assert (predict_labels(rule_set, table, ["no", "yes"]) == labels).all()


def test_learner_is_deterministic():
    rng = np.random.default_rng(3)
    table = rng.random((400, 12)) < 0.4
    labels = (table[:, 3] ^ table[:, 7]).astype(int) + 2 * (table[:, 1] & table[:, 5])
    names = ["a", "b", "c", "d"]
    assert str(learn_rule_set(table, labels, names)) == str(learn_rule_set(table, labels, names))


def test_bad_input_is_reported():
    with pytest.raises(NesyError, match="one label per row"):
        learn_rule_set(np.zeros((3, 2)), np.zeros(4, dtype=int), ["a"])
    with pytest.raises(NesyError, match="binary"):
        learn_rule_set(np.full((3, 2), 0.5), np.zeros(3, dtype=int), ["a"])
    with pytest.raises(NesyError, match=r"labels must lie in \[0, 1\)"):
        learn_rule_set(np.zeros((3, 2)), np.array([0, 1, 0]), ["a"])


def test_foldrm_adapter_matches_foldrm_and_counts_its_rules():
    rng = np.random.default_rng(0)
    table = rng.random((300, 8)) < 0.3
    labels = np.where(table[:, 3] & ~table[:, 5], 0, np.where(table[:, 7], 1, 2))
    names = ["a", "b", "c"]
    model = learn_foldrm(table, labels, names)
    rows = [list(map(int, row)) + [names[label]] for row, label in zip(table, labels, strict=True)]
    expected = predict(foldrm(rows, ratio=0.5), rows)
    assert [names[i] if i >= 0 else None for i in model.predict(table)] == expected
    size = model.size()
    assert size.n_rules >= 3 and size.size >= size.n_preds >= 1
