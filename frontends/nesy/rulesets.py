"""What the NeSy pipeline asks of a rule-set, on top of `frontends.rules`.

Rule-sets over a CNN's filters read one binary feature per filter, in filter order (`f0`,
`f1`, ... or the names of a filter-names file); predictions are reported as indices into
the dataset's class names, -1 where no class holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from frontends import rules


def predict_labels(rule_set: rules.RuleSet, table: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Per row of a binary filter table, the index in ``class_names`` of its class, or -1."""
    position = {name: index for index, name in enumerate(class_names)}
    mapping = np.array([position[name] for name in rule_set.classes] + [rules.NO_CLASS])
    return mapping[rules.predict(rule_set, np.asarray(table, dtype=bool))]


def used_filters(rule_set: rules.RuleSet) -> list[int]:
    """The filter indices the rules read, ascending."""
    return [rule_set.feature_index[name] for name in rule_set.used_features()]


def filter_use(rule_set: rules.RuleSet, class_names: Sequence[str]) -> np.ndarray:
    """(classes x filters) uint8: 1 where a rule of the class, or an exception or helper
    predicate those rules depend on, reads the filter. It is what the rules use, to put
    next to the training-time ownership of the sparsity loss."""
    reads: dict[rules.ClassKey | rules.PredicateKey, set[int]] = {}
    depends: dict = {}
    for rule in rule_set.rules:
        for literal in rule.body:
            if isinstance(literal, rules.FeatureLiteral):
                reads.setdefault(rule.head, set()).add(rule_set.feature_index[literal.feature])
            elif isinstance(literal, rules.AtomLiteral) and not isinstance(literal.key, rules.ClassKey):
                depends.setdefault(rule.head, set()).add(literal.key)
    use = np.zeros((len(class_names), len(rule_set.features)), dtype=np.uint8)
    for name in rule_set.classes:
        seen, stack = set(), [rules.ClassKey(name)]
        while stack:
            key = stack.pop()
            if key in seen:
                continue
            seen.add(key)
            use[list(class_names).index(name), sorted(reads.get(key, ()))] = 1
            stack.extend(depends.get(key, ()))
    return use
