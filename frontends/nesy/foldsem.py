"""FOLD-SE-M: learning default rules with exceptions over a binary table.

Our implementation of Wang & Gupta's FOLD-SE and its multi-class extension
(FOLD-SE-M), written from the published description; no open implementation
exists. It is a greedy, top-down sequential-covering learner:

* Classes are handled one at a time, the most frequent remaining class first.
  All its rules are learned, then every example they cover (correctly or not)
  is removed: at inference time later classes only see images that no earlier
  class claimed, which is the decision-list semantics of :mod:`rules`.
* A rule is specialized literal by literal, each literal chosen by the magic
  Gini heuristic, until its false positives are at most ``exception_ratio``
  times its true positives. The remaining false positives are then covered by
  exception rules (``abN``), learned recursively with the roles of positive
  and negative examples swapped.
* Tail pruning: a rule (or exception) that would cover fewer than
  ``tail * n`` examples of the training table is not learned, and a literal
  that would leave a rule covering fewer than that is not added. This cuts
  the long tail of tiny rules that FOLD-R++/FOLD-RM produce.

Magic Gini. For a candidate literal with confusion counts (tp, fn, tn, fp)
on the current positive/negative sets, the score is the negated weighted Gini
impurity of the split it induces::

    score = -2 * (tp*fp/(tp+fp) + tn*fn/(tn+fn)) / (tp+fp+tn+fn)

The Gini impurity of a split is symmetric in the two sides, so on its own it
cannot tell ``fK`` from ``not fK``. As in FOLD-R++, a literal that makes more
mistakes than correct decisions (tp + tn < fp + fn) scores minus infinity,
which keeps exactly the polarity that points at the positives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from frontends import rules
from frontends.nesy.errors import NesyError

DEFAULT_EXCEPTION_RATIO = 0.8
DEFAULT_TAIL = 5e-3


def magic_gini(tp: np.ndarray, fn: np.ndarray, tn: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Literal scores (higher is better), element-wise over count arrays."""
    tp, fn, tn, fp = (np.asarray(count, dtype=np.float64) for count in (tp, fn, tn, fp))
    covered, uncovered = tp + fp, tn + fn
    total = covered + uncovered
    with np.errstate(divide="ignore", invalid="ignore"):
        impurity = np.where(covered > 0, tp * fp / covered, 0.0) + np.where(
            uncovered > 0, tn * fn / uncovered, 0.0
        )
        score = np.where(total > 0, -2.0 * impurity / total, -np.inf)
    return np.where(tp + tn < fp + fn, -np.inf, score)


@dataclass
class _LearnedRule:
    """A rule during learning: (column, polarity) literals and nested exceptions."""

    literals: list[tuple[int, bool]]
    exceptions: list[_LearnedRule] = field(default_factory=list)


class _Learner:
    def __init__(self, table: np.ndarray, exception_ratio: float, tail: float):
        self.table = table
        self.exception_ratio = exception_ratio
        self.min_cover = max(1, math.ceil(tail * table.shape[0]))

    def covers(self, rule: _LearnedRule) -> np.ndarray:
        holds = np.ones(self.table.shape[0], dtype=bool)
        for column, positive in rule.literals:
            holds &= self.table[:, column] if positive else ~self.table[:, column]
        for exception in rule.exceptions:
            holds &= ~self.covers(exception)
        return holds

    def best_literal(
        self, positives: np.ndarray, negatives: np.ndarray, used_columns: set[int]
    ) -> tuple[int, bool] | None:
        n_pos, n_neg = positives.sum(), negatives.sum()
        on_pos = self.table[positives].sum(axis=0)
        on_neg = self.table[negatives].sum(axis=0)
        off_pos, off_neg = n_pos - on_pos, n_neg - on_neg
        scores = np.stack(
            [
                magic_gini(on_pos, off_pos, off_neg, on_neg),
                magic_gini(off_pos, on_pos, on_neg, off_neg),
            ]
        )
        excludes_no_negative = np.stack([on_neg == n_neg, off_neg == n_neg])
        scores[excludes_no_negative] = -np.inf
        scores[:, sorted(used_columns)] = -np.inf
        polarity, column = np.unravel_index(np.argmax(scores), scores.shape)
        if not np.isfinite(scores[polarity, column]):
            return None
        return int(column), polarity == 0

    def learn_rule(
        self,
        positives: np.ndarray,
        negatives: np.ndarray,
        used_columns: set[int],
        is_exception: bool,
        ratio: float,
    ) -> _LearnedRule | None:
        """Specializes a rule for ``positives``; None if it cannot reach the ratio.

        A rule with an empty body (a default rule) is only learned for a
        class, when the ratio already holds, never as an exception: an
        exception without literals would swap the roles of positives and
        negatives back without progress.
        """
        literals: list[tuple[int, bool]] = []
        while (is_exception and not literals) or negatives.sum() > ratio * positives.sum():
            literal = self.best_literal(positives, negatives, used_columns | {c for c, _ in literals})
            if literal is None:
                break
            column, positive = literal
            holds = self.table[:, column] if positive else ~self.table[:, column]
            if (positives & holds).sum() < self.min_cover:
                break
            literals.append(literal)
            positives, negatives = positives & holds, negatives & holds
        if not literals and (is_exception or negatives.sum() > ratio * positives.sum()):
            return None
        rule = _LearnedRule(literals)
        if negatives.any():
            rule.exceptions = self.fold(
                negatives, positives, used_columns | {c for c, _ in literals}, True, ratio
            )
        return rule

    def fold(
        self,
        positives: np.ndarray,
        negatives: np.ndarray,
        used_columns: set[int],
        is_exception: bool,
        ratio: float | None = None,
    ) -> list[_LearnedRule]:
        """Sequential covering of ``positives`` against ``negatives``, the smaller of two
        coverings: with the exception ratio, and with ratio 0 (specialize until no false
        positive is left). The ratio lets a rule stop early and hand its false positives to
        exceptions; when a class dominates that stops too early (an empty body whose
        exception is `not f1` where `f1` alone would do), so the exact covering is taken
        when it has fewer literals and no more training errors; otherwise the ratio's, as
        FOLD-SE-M defines it (fewer literals at the price of training errors is the point
        of the ratio and the tail)."""
        if ratio is None:
            ratio = self.exception_ratio
        with_ratio = self._cover(positives, negatives, used_columns, is_exception, ratio)
        if ratio == 0:
            return with_ratio
        exact = self._cover(positives, negatives, used_columns, is_exception, 0.0)
        exact_errors, exact_size = self._cost(exact, positives, negatives)
        ratio_errors, ratio_size = self._cost(with_ratio, positives, negatives)
        better = exact_errors <= ratio_errors and exact_size < ratio_size
        return exact if better else with_ratio

    def _cost(self, rules: list[_LearnedRule], positives: np.ndarray, negatives: np.ndarray):
        covered = np.zeros(self.table.shape[0], dtype=bool)
        for rule in rules:
            covered |= self.covers(rule)
        errors = (positives & ~covered).sum() + (negatives & covered).sum()
        return int(errors), sum(_literal_count(rule) for rule in rules)

    def _cover(
        self,
        positives: np.ndarray,
        negatives: np.ndarray,
        used_columns: set[int],
        is_exception: bool,
        ratio: float,
    ) -> list[_LearnedRule]:
        rules = []
        positives = positives.copy()
        while positives.sum() >= self.min_cover:
            rule = self.learn_rule(positives, negatives, used_columns, is_exception, ratio)
            if rule is None:
                break
            covered = self.covers(rule)
            true_positives = (covered & positives).sum()
            if true_positives < self.min_cover or true_positives <= (covered & negatives).sum():
                break
            rules.append(rule)
            positives &= ~covered
        return rules


def _literal_count(rule: _LearnedRule) -> int:
    """Literal occurrences of a rule and its exceptions, as `RuleSet.size` counts them."""
    count, stack = 0, [rule]
    while stack:
        current = stack.pop()
        count += len(current.literals) + (1 if current.exceptions else 0)
        stack.extend(current.exceptions)
    return count


def _swap_default(learned: list, remaining_labels: np.ndarray) -> bool:
    """`c :- not ab1. ab1 :- B.` for the last two classes c, d is `d :- B. c :- not d.`
    with one literal less (class literals are not counted): learn d from B instead."""
    class_index, class_rules = learned[-1]
    if len(class_rules) != 1 or class_rules[0].literals or not class_rules[0].exceptions:
        return False
    others = set(np.unique(remaining_labels).tolist()) - {class_index}
    if len(others) != 1:
        return False
    (other,) = others
    learned[-1] = (other, class_rules[0].exceptions)
    learned.append((class_index, [_LearnedRule([])]))
    return True


def learn_rule_set(
    table: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    exception_ratio: float = DEFAULT_EXCEPTION_RATIO,
    tail: float = DEFAULT_TAIL,
    feature_names: Sequence[str] | None = None,
) -> rules.RuleSet:
    """Learns a FOLD-SE-M rule-set from a binary table (images x filters).

    ``labels`` are indices into ``class_names``; the rule-set's classes are names from it.
    Column k is the feature ``feature_names[k]`` (default ``fK``).
    """
    table = np.asarray(table)
    labels = np.asarray(labels)
    if table.ndim != 2 or labels.shape != (table.shape[0],):
        raise NesyError(
            f"FOLD-SE-M needs a 2-D table and one label per row, got {table.shape} and {labels.shape}"
        )
    if not np.isin(table, (0, 1)).all():
        raise NesyError("FOLD-SE-M needs a binary (0/1) table")
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise NesyError(f"labels must lie in [0, {len(class_names)}), got {labels.min()}..{labels.max()}")
    if not 0 <= exception_ratio or not 0 <= tail < 1:
        raise NesyError("exception ratio must be >= 0 and tail in [0, 1)")
    learner = _Learner(table.astype(bool), exception_ratio, tail)
    remaining = np.ones(table.shape[0], dtype=bool)
    pending = set(range(len(class_names)))
    learned: list[tuple[int, list[_LearnedRule]]] = []
    while pending and remaining.any():
        counts = np.bincount(labels[remaining], minlength=len(class_names))
        class_index = max(pending, key=lambda c: (counts[c], -c))
        pending.discard(class_index)
        if counts[class_index] == 0:
            continue
        positives = remaining & (labels == class_index)
        class_rules = learner.fold(positives, remaining & ~positives, set(), is_exception=False)
        if class_rules:
            learned.append((class_index, class_rules))
            remaining_labels = labels[remaining]
            for rule in class_rules:
                remaining &= ~learner.covers(rule)
            if len(pending) == 1 and _swap_default(learned, remaining_labels):
                break
    names = list(feature_names) if feature_names is not None else [f"f{k}" for k in range(table.shape[1])]
    if len(names) != table.shape[1]:
        raise NesyError(f"{len(names)} feature names for a table of {table.shape[1]} columns")
    return _to_rule_set(learned, class_names, names)


def _to_rule_set(
    learned: list[tuple[int, list[_LearnedRule]]], class_names: Sequence[str], names: list[str]
) -> rules.RuleSet:
    target_rules: list[rules.Rule] = []
    exception_rules: list[rules.Rule] = []
    next_exception_id = 1

    def body_of(rule: _LearnedRule) -> list[rules.Literal]:
        nonlocal next_exception_id
        body: list[rules.Literal] = [
            rules.FeatureLiteral(names[column], negated=not positive)
            for column, positive in rule.literals
        ]
        if rule.exceptions:
            exception = rules.PredicateKey(f"ab{next_exception_id}")
            next_exception_id += 1
            body.append(rules.AtomLiteral(exception, negated=True))
            for nested in rule.exceptions:
                exception_rules.append(rules.Rule(exception, tuple(body_of(nested))))
        return body

    earlier: list[rules.Literal] = []
    for class_index, class_rules in learned:
        name = class_names[class_index]
        for rule in class_rules:
            target_rules.append(rules.Rule(rules.ClassKey(name), tuple(body_of(rule) + earlier)))
        earlier.append(rules.AtomLiteral(rules.ClassKey(name), negated=True))
    exception_rules.sort(key=lambda rule: int(rule.head.name[2:]))
    return rules.build(target_rules + exception_rules, names, "target", "rules.txt")
