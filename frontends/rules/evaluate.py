"""Evaluating a rule-set in Python: the semantics of `model.py`, executed directly.

`truth_values` computes, column-wise with numpy, the perfect model of the program on every
row of a feature table (stratum by stratum; a recursive stratum is iterated to its least
fixpoint). `predict_rows` is the plain per-sample interpreter (Python bools, one row at a
time): what a user would write, and the baseline of the rule benchmarks.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import numpy as np

from frontends.rules.model import (
    AtomLiteral,
    ClassKey,
    ComparisonLiteral,
    FeatureLiteral,
    Key,
    Literal,
    RuleSet,
)
from frontends.rules.syntax import RuleError

NO_CLASS = -1
"""The class index of a sample no class atom holds for."""

COMPARE: dict[str, Callable[[object, object], object]] = {
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "=<": operator.le,
    "=": operator.eq,
    "\\=": operator.ne,
}


def feature_table(rule_set: RuleSet, table) -> np.ndarray:
    """The input as a 2-D numpy array with one column per feature, checked."""
    array = table.numpy() if hasattr(table, "numpy") else np.asarray(table)
    width = len(rule_set.features)
    if array.ndim != 2 or array.shape[1] != width:
        raise RuleError(
            rule_set.source, 0, 0,
            f"expected a table of shape [N, {width}] (one column per feature), "
            f"got {list(array.shape)}",
        )
    if array.dtype != bool and not np.issubdtype(array.dtype, np.number):
        raise RuleError(rule_set.source, 0, 0, f"expected a bool or numeric table, got {array.dtype}")
    if rule_set.numeric and array.dtype == bool:
        raise RuleError(rule_set.source, 0, 0, "the rules compare numbers: pass a float table")
    return array


def truth_values(rule_set: RuleSet, table) -> dict[Key, np.ndarray]:
    """For every derived atom, a bool column: does it hold for each row?"""
    array = feature_table(rule_set, table)
    columns: dict[str, np.ndarray] = {}

    def feature(name: str, numeric: bool) -> np.ndarray:
        if name not in columns:
            column = array[:, rule_set.feature_index[name]]
            columns[name] = column.astype(np.float64) if numeric else column != 0
        return columns[name]

    values: dict[Key, np.ndarray] = {}
    rows = array.shape[0]

    def literal_value(literal: Literal) -> np.ndarray:
        match literal:
            case FeatureLiteral(feature=name, negated=negated):
                value = feature(name, False)
                return ~value if negated else value
            case ComparisonLiteral(feature=name, operator=op, value=threshold):
                return COMPARE[op](feature(name, True), threshold)
            case AtomLiteral(key=key, negated=negated):
                value = values.get(key, np.zeros(rows, dtype=bool))
                return ~value if negated else value
        raise TypeError(literal)

    def derive(key: Key) -> np.ndarray:
        holds = np.zeros(rows, dtype=bool)
        for index in rule_set.rules_by_head[key]:
            body = np.ones(rows, dtype=bool)
            for literal in rule_set.rules[index].body:
                body &= literal_value(literal)
            holds |= body
        return holds

    for stratum in rule_set.strata:
        if stratum[0] not in rule_set.recursive:
            values[stratum[0]] = derive(stratum[0])
            continue
        while True:
            updated = {key: derive(key) for key in stratum}
            changed = any(not np.array_equal(updated[key], values.get(key)) for key in stratum)
            values.update(updated)
            if not changed:
                break
    return values


def predict(rule_set: RuleSet, table) -> np.ndarray:
    """Per row, the index in ``rule_set.classes`` of the predicted class, or ``NO_CLASS``."""
    values = truth_values(rule_set, table)
    rows = len(next(iter(values.values()))) if values else feature_table(rule_set, table).shape[0]
    predictions = np.full(rows, NO_CLASS, dtype=np.int64)
    for index in reversed(range(len(rule_set.classes))):
        predictions[values[ClassKey(rule_set.classes[index])]] = index
    return predictions


def class_names(rule_set: RuleSet, indices: Sequence[int]) -> list[str | None]:
    return [rule_set.classes[i] if i != NO_CLASS else None for i in np.asarray(indices).tolist()]


def predict_rows(rule_set: RuleSet, rows: Sequence[Sequence[float]]) -> list[str | None]:
    """The plain Python evaluator: one row at a time, predicates as Python bools."""
    plan = [
        (stratum, stratum[0] in rule_set.recursive, [rule_set.rules_by_head[k] for k in stratum])
        for stratum in rule_set.strata
    ]
    index = rule_set.feature_index
    rules = rule_set.rules
    class_keys = [ClassKey(name) for name in rule_set.classes]
    predictions: list[str | None] = []
    for row in rows:
        values: dict[Key, bool] = {}

        def holds(literal: Literal) -> bool:
            if isinstance(literal, FeatureLiteral):
                return (row[index[literal.feature]] != 0) != literal.negated
            if isinstance(literal, ComparisonLiteral):
                return bool(COMPARE[literal.operator](float(row[index[literal.feature]]), literal.value))
            return values.get(literal.key, False) != literal.negated

        for stratum, recursive, rule_groups in plan:
            while True:
                changed = False
                for key, group in zip(stratum, rule_groups):
                    value = any(all(holds(lit) for lit in rules[i].body) for i in group)
                    changed |= value != values.get(key, False)
                    values[key] = value
                if not (recursive and changed):
                    break
        predictions.append(
            next((key.name for key in class_keys if values[key]), None)
        )
    return predictions
