"""Hypothesis strategies for rule-sets and tables, with an evaluator of their own.

A generated rule-set is first an abstract program (`GeneratedRules`): features (binary and
numeric), classes and exception predicates, each with a level; a body may read atoms of
lower levels under `not` and atoms of its own level positively (positive recursion), so
the program is stratified by construction. It is printed as text in the styles of the
learners (interleaved classes, `label`/`target` heads, comments, `\\+`, numbers on either
side of a comparison). `GeneratedRules.predict` evaluates the abstract program row by row
with a naive fixpoint, independently of everything in `frontends.rules`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

OPERATORS = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "=<": operator.le,
             "=": operator.eq, "\\=": operator.ne}
FLIPPED = {">": "<", "<": ">", ">=": "=<", "=<": ">=", "=": "=", "\\=": "\\="}
THRESHOLDS = (-1.5, 0.0, 0.5, 1.0, 2.25, 3.0)
"""Values the numeric columns also take, so `=` and `\\=` are exercised both ways."""


@dataclass(frozen=True)
class Literal:
    kind: str  # "binary", "compare", "atom"
    name: str
    negated: bool = False
    operator: str = ""
    value: float = 0.0


@dataclass(frozen=True)
class GeneratedRules:
    binary: tuple[str, ...]
    numeric: tuple[str, ...]
    classes: tuple[str, ...]
    """In order of first appearance as a head (the prediction order)."""
    rules: tuple[tuple[str, tuple[Literal, ...]], ...]
    """(head, body) in text order; a head is a class name or an exception name."""
    levels: dict
    class_predicate: str
    text: str

    @property
    def features(self) -> list[str]:
        return [*self.binary, *self.numeric]

    def predict(self, table: np.ndarray) -> list[str | None]:
        column = {name: i for i, name in enumerate(self.features)}
        order = sorted({self.levels[h] for h, _ in self.rules})
        out = []
        for row in table:
            true: set[str] = set()

            def holds(literal: Literal) -> bool:
                if literal.kind == "binary":
                    value = row[column[literal.name]] != 0
                elif literal.kind == "compare":
                    value = OPERATORS[literal.operator](float(row[column[literal.name]]), literal.value)
                else:
                    value = literal.name in true
                return bool(value) != literal.negated

            for level in order:
                changed = True
                while changed:
                    changed = False
                    for head, body in self.rules:
                        if self.levels[head] == level and head not in true and all(map(holds, body)):
                            true.add(head)
                            changed = True
            out.append(next((c for c in self.classes if c in true), None))
        return out

    @property
    def numeric_columns(self) -> bool:
        return bool(self.numeric)

    def table(self, data: st.DataObject, rows: int, dtype) -> np.ndarray:
        values = []
        for _ in range(rows):
            row = [float(data.draw(st.booleans())) for _ in self.binary]
            row += [
                data.draw(st.sampled_from(THRESHOLDS) | st.floats(-4, 4, width=32) | st.just(np.nan))
                for _ in self.numeric
            ]
            values.append(row)
        array = np.array(values, dtype=np.float64).reshape(rows, len(self.features))
        return array.astype(dtype)


@st.composite
def rule_sets(draw, max_rules: int = 12, numeric: bool = True) -> GeneratedRules:
    n_binary = draw(st.integers(1, 5))
    n_numeric = draw(st.integers(0, 2)) if numeric else 0
    binary = tuple(f"f{i}" for i in range(n_binary))
    numeric_names = tuple(f"temp{i}" for i in range(n_numeric))
    classes = [f"c{i}" for i in range(draw(st.integers(1, 4)))]
    exceptions = [f"ab{i + 1}" for i in range(draw(st.integers(0, 4)))]
    heads = classes + exceptions
    levels = {head: draw(st.integers(0, 3)) for head in heads}
    class_predicate = draw(st.sampled_from(["target", "label"]))

    def literal() -> Literal:
        kinds = ["binary"] + (["compare"] if numeric_names else []) + ["atom"]
        kind = draw(st.sampled_from(kinds))
        if kind == "binary":
            return Literal("binary", draw(st.sampled_from(binary)), draw(st.booleans()))
        if kind == "compare":
            return Literal("compare", draw(st.sampled_from(numeric_names)), False,
                           draw(st.sampled_from(sorted(OPERATORS))), draw(st.sampled_from(THRESHOLDS)))
        return None  # decided per head below

    rules = []
    for head in heads:  # every head gets at least one rule
        rules.append(head)
    rules += draw(st.lists(st.sampled_from(heads), max_size=max(0, max_rules - len(heads))))
    rules = draw(st.permutations(rules))
    built = []
    for head in rules:
        body = []
        for _ in range(draw(st.integers(0, 4))):
            candidate = literal()
            if candidate is None:
                lower = [h for h in heads if levels[h] < levels[head]]
                same = [h for h in heads if levels[h] == levels[head]]
                choice = draw(st.sampled_from(lower + same)) if lower or same else None
                if choice is None:
                    continue
                negated = levels[choice] < levels[head] and draw(st.booleans())
                candidate = Literal("atom", choice, negated)
            body.append(candidate)
        built.append((head, tuple(body)))
    order = tuple(dict.fromkeys(h for h, _ in built if h in classes))
    text = _print(built, set(classes), class_predicate, draw)
    return GeneratedRules(binary, numeric_names, order, tuple(built), levels, class_predicate, text)


def _print(rules, classes: set[str], class_predicate: str, draw) -> str:
    def atom(name: str) -> str:
        return f"{class_predicate}(X,'{name}')" if name in classes else f"{name}(X)"

    lines = ["% generated rule-set"]
    for head, body in rules:
        parts, variables = [], 0
        for literal in body:
            if literal.kind == "compare":
                variables += 1
                variable = f"N{variables}"
                if draw(st.booleans()):
                    comparison = f"{variable}{literal.operator}{literal.value!r}"
                else:
                    comparison = f"{literal.value!r} {FLIPPED[literal.operator]} {variable}"
                parts.append(f"{literal.name}(X,{variable}), {comparison}")
            else:
                negation = draw(st.sampled_from(["not ", "\\+ "])) if literal.negated else ""
                parts.append(negation + (atom(literal.name) if literal.kind == "atom" else f"{literal.name}(X)"))
        separator = draw(st.sampled_from([", ", ",\n    ", " , "]))
        lines.append(atom(head) + (" :- " + separator.join(parts) if parts else "") + ".")
        if draw(st.booleans()):
            lines.append("% a comment")
    return "\n".join(lines) + "\n"
