"""The open FOLD-RM learner (PyPI ``foldrm``) run on our binary tables.

FOLD-RM is the published multi-class predecessor of FOLD-SE-M. Its rules form
one decision list interleaving classes, which a class-ordered
:class:`~frontends.rules.RuleSet` (classes tried in class order) cannot express, so it is scored with its
own ``predict`` and its size is counted from its flattened rules with the same
measures as :class:`~frontends.rules.RuleSetSize`: every rule (target and
exception, after FOLD-RM's own de-duplication), distinct filter predicates, and
attribute and exception literal occurrences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from foldrm.algo import flatten_rules, foldrm, predict

from frontends.rules import RuleSetSize

DEFAULT_FOLDRM_RATIO = 0.5


@dataclass(frozen=True)
class FoldRmModel:
    rules: list
    class_names: tuple[str, ...]

    def predict(self, table: np.ndarray) -> np.ndarray:
        """Class indices per row; -1 where no rule fires."""
        predicted = predict(self.rules, _rows(table))
        return np.array(
            [self.class_names.index(name) if name is not None else -1 for name in predicted],
            dtype=np.int64,
        )

    def size(self) -> RuleSetSize:
        flat = flatten_rules(self.rules)
        attributes = {item[0] for rule in flat for item in rule[1]}
        occurrences = sum(len(rule[1]) + len(rule[2]) for rule in flat)
        return RuleSetSize(len(flat), len(attributes), occurrences)


def _rows(table: np.ndarray, labels: Sequence[str] | None = None) -> list[list]:
    rows = np.asarray(table, dtype=np.int64).tolist()
    if labels is not None:
        for row, label in zip(rows, labels, strict=True):
            row.append(label)
    else:
        for row in rows:
            row.append(None)
    return rows


def learn_foldrm(
    table: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    ratio: float = DEFAULT_FOLDRM_RATIO,
) -> FoldRmModel:
    """Runs FOLD-RM with 0/1 numeric attributes (literals ``fK > 0`` / ``fK <= 0``)."""
    names = [class_names[label] for label in np.asarray(labels)]
    return FoldRmModel(foldrm(_rows(table, names), ratio=ratio), tuple(class_names))
