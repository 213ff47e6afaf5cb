"""The meaning of a rule-set: a stratified normal logic program over one sample `X`.

Every predicate is about one sample, so the program is propositional per sample:

* a *feature* is a column of the input table: binary (`f12(X)`, true when the value is
  nonzero) or numeric (`temp(X,N1), N1>38.5`, compared as float64);
* a *class atom* `target(X,'c')` (or `label(X,'c')`, whichever predicate the heads use)
  holds when one of the rules with that head holds;
* any other head (`ab1(X)`, `rule2(X)`) is a *defined predicate*, also true when one of
  its rules holds.

A rule holds when every literal of its body holds; `not p(X)` is negation as failure.
The program must be stratified (no cycle through `not`); positive recursion is allowed and
means the least fixpoint. The predicted class of a sample is the first class, in order of
first appearance as a rule head, whose class atom holds, or None.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from frontends.rules.syntax import NOWHERE, Position, quote

COMPARISONS = (">", "<", ">=", "=<", "=", "\\=")
"""Numeric comparison operators, as FOLD-R++ prints them."""

BINARY, NUMERIC = "binary", "numeric"


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    kind: str
    """``binary`` or ``numeric``: how the rules read the column."""


@dataclass(frozen=True, slots=True)
class ClassKey:
    """The class atom of class ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class PredicateKey:
    """A defined (non-class) predicate such as ``ab1``."""

    name: str


Key = ClassKey | PredicateKey


@dataclass(frozen=True, slots=True)
class FeatureLiteral:
    """`f(X)` / `not f(X)`: binary feature ``feature`` is true (false)."""

    feature: str
    negated: bool = False
    position: Position = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class ComparisonLiteral:
    """`f(X,N), N>v`: numeric feature ``feature`` compared with ``value``.

    A body may compare one feature several times (`N1>3, N1=<9`); each comparison is one
    literal. Printing names the variables N1, N2, ... by feature, in body order.
    """

    feature: str
    operator: str
    value: float
    text: str = ""
    """The number as written (printing it back keeps the user's spelling)."""
    position: Position = field(default=NOWHERE, compare=False)

    @property
    def value_text(self) -> str:
        return self.text or repr(self.value)


@dataclass(frozen=True, slots=True)
class AtomLiteral:
    """`p(X)`, `not p(X)`, `target(X,'c')`, `not target(X,'c')`: a derived atom."""

    key: Key
    negated: bool = False
    position: Position = field(default=NOWHERE, compare=False)


Literal = FeatureLiteral | ComparisonLiteral | AtomLiteral


@dataclass(frozen=True, slots=True)
class Rule:
    head: Key
    body: tuple[Literal, ...] = ()
    position: Position = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class RuleSetSize:
    """The measures of the NeSyFOLD papers: every rule, the distinct feature predicates,
    and the feature and defined-predicate literal occurrences (class literals only spell
    out the class order and are not counted)."""

    n_rules: int
    n_preds: int
    size: int


@dataclass(frozen=True, eq=False)
class RuleSet:
    """A checked rule-set (build it with :func:`frontends.rules.check.build` or parse it).

    ``features`` are the input columns in order; ``classes`` the classes in order of first
    appearance as a head (the prediction order); ``strata`` the predicates grouped into
    strongly connected components, each after every component it depends on.
    """

    rules: tuple[Rule, ...]
    features: tuple[Feature, ...]
    classes: tuple[str, ...]
    class_predicate: str
    strata: tuple[tuple[Key, ...], ...]
    recursive: frozenset[Key]
    """Keys on a positive cycle: evaluated as a least fixpoint."""
    source: str = "<rules>"

    @cached_property
    def rules_by_head(self) -> dict[Key, tuple[int, ...]]:
        grouped: dict[Key, list[int]] = {}
        for index, rule in enumerate(self.rules):
            grouped.setdefault(rule.head, []).append(index)
        return {key: tuple(indices) for key, indices in grouped.items()}

    @cached_property
    def feature_index(self) -> dict[str, int]:
        return {feature.name: index for index, feature in enumerate(self.features)}

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(feature.name for feature in self.features)

    @property
    def numeric(self) -> bool:
        """Whether the rules compare numbers (the input is then a float table)."""
        return any(feature.kind == NUMERIC for feature in self.features)

    def used_features(self) -> list[str]:
        """The features the bodies read, in column order."""
        used = {
            literal.feature
            for rule in self.rules
            for literal in rule.body
            if isinstance(literal, FeatureLiteral | ComparisonLiteral)
        }
        return [feature.name for feature in self.features if feature.name in used]

    def size(self) -> RuleSetSize:
        occurrences = sum(
            1
            for rule in self.rules
            for literal in rule.body
            if not (isinstance(literal, AtomLiteral) and isinstance(literal.key, ClassKey))
        )
        return RuleSetSize(len(self.rules), len(self.used_features()), occurrences)

    def key_text(self, key: Key) -> str:
        if isinstance(key, ClassKey):
            return f"{self.class_predicate}(X,{quote(key.name)})"
        return f"{key.name}(X)"

    def literal_text(self, literal: Literal) -> str:
        match literal:
            case FeatureLiteral(feature=name, negated=negated):
                return ("not " if negated else "") + f"{name}(X)"
            case ComparisonLiteral(feature=name, operator=op):
                return f"{name}(X,N1), N1{op}{literal.value_text}"
            case AtomLiteral(key=key, negated=negated):
                return ("not " if negated else "") + self.key_text(key)
        raise TypeError(literal)

    def rule_text(self, rule: Rule) -> str:
        if not rule.body:
            return f"{self.key_text(rule.head)}."
        return f"{self.key_text(rule.head)} :- {', '.join(_body_texts(self, rule.body))}."

    def __str__(self) -> str:
        return "".join(self.rule_text(rule) + "\n" for rule in self.rules)

    def iter_literals(self) -> Iterator[tuple[int, Literal]]:
        for index, rule in enumerate(self.rules):
            for literal in rule.body:
                yield index, literal


def _body_texts(rule_set: RuleSet, body: Sequence[Literal]) -> Iterator[str]:
    """Literals as text; comparisons of one feature share its binding atom and variable."""
    variables: dict[str, str] = {}
    for literal in body:
        if not isinstance(literal, ComparisonLiteral):
            yield rule_set.literal_text(literal)
            continue
        variable = variables.get(literal.feature)
        binding = ""
        if variable is None:
            variable = variables[literal.feature] = f"N{len(variables) + 1}"
            binding = f"{literal.feature}(X,{variable}), "
        yield f"{binding}{variable}{literal.operator}{literal.value_text}"
