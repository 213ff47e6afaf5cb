"""Giving parsed clauses their meaning, and rejecting what has none.

Name resolution decides what every atom is (class atom, defined predicate, binary or
numeric feature) and checks it is used consistently; stratification groups the defined
predicates into strongly connected components (an iterative Tarjan, so chains of any
length are fine) and rejects a cycle through negation, naming its rules. Everything is a
dictionary look-up or a graph step per literal: linear in the size of the rule-set.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from frontends.rules.model import (
    BINARY,
    NUMERIC,
    AtomLiteral,
    ClassKey,
    ComparisonLiteral,
    Feature,
    FeatureLiteral,
    Key,
    Literal,
    PredicateKey,
    Rule,
    RuleSet,
)
from frontends.rules.syntax import (
    NOWHERE,
    Clause,
    Comparison,
    Position,
    RuleError,
    Term,
    parse_clauses,
    quote,
)
from frontends.rules.syntax import AtomLiteral as SourceAtomLiteral

EXCEPTION_NAME = re.compile(r"ab[0-9]+")
"""Exception predicates: never taken for features, so a missing `abN` rule is an error."""

_FLIPPED = {">": "<", "<": ">", ">=": "=<", "=<": ">=", "=": "=", "\\=": "\\="}


@dataclass
class _Problem(Exception):
    position: Position
    message: str


def parse(text: str, source: str = "<rules>", features: Sequence[str] | None = None) -> RuleSet:
    """Parses and checks a rule text; ``features`` fixes the input columns (default: the
    predicates no rule defines, in order of first use)."""
    return check_clauses(parse_clauses(text, source), source, features)


def check_clauses(
    clauses: Sequence[Clause], source: str, features: Sequence[str] | None = None
) -> RuleSet:
    try:
        return _Resolver(clauses, features).rule_set(source)
    except _Problem as problem:
        raise RuleError(source, problem.position.line, problem.position.column, problem.message)


def build(
    rules: Sequence[Rule],
    features: Sequence[str | Feature],
    class_predicate: str = "target",
    source: str = "<rules>",
) -> RuleSet:
    """A checked rule-set from rules made in Python (a rule learner's output).

    Errors name the rule by its 1-based index, as ``SOURCE:0:0: error: rule N: ...``.
    """
    declared = [f if isinstance(f, Feature) else Feature(f, BINARY) for f in features]
    kinds = {feature.name: feature.kind for feature in declared}
    heads = {rule.head for rule in rules}
    for index, rule in enumerate(rules):
        for literal in rule.body:
            problem = _literal_problem(literal, kinds, heads)
            if problem:
                raise RuleError(source, 0, 0, f"rule {index + 1}: {problem}")
    classes = list(dict.fromkeys(r.head.name for r in rules if isinstance(r.head, ClassKey)))
    try:
        return _finish(tuple(rules), tuple(declared), tuple(classes), class_predicate, source)
    except _Problem as problem:
        raise RuleError(source, 0, 0, problem.message) from None


def _literal_problem(literal: Literal, kinds: dict[str, str], heads: set[Key]) -> str | None:
    if isinstance(literal, AtomLiteral):
        return None if literal.key in heads else f"{_key_name(literal.key)} has no rule"
    expected = NUMERIC if isinstance(literal, ComparisonLiteral) else BINARY
    if literal.feature not in kinds:
        return f"unknown feature '{literal.feature}'"
    if kinds[literal.feature] != expected:
        return f"feature '{literal.feature}' is {kinds[literal.feature]}, used as {expected}"
    return None


def _key_name(key: Key) -> str:
    return f"class {quote(key.name)}" if isinstance(key, ClassKey) else key.name


class _Resolver:
    """Resolves the names of a clause list into model rules, literal by literal."""

    def __init__(self, clauses: Sequence[Clause], features: Sequence[str] | None):
        self.clauses = clauses
        self.declared = None if features is None else list(features)
        self.class_predicate: str | None = None
        self.class_head_at: Position | None = None
        self.classes: dict[str, None] = {}
        self.defined: dict[str, Position] = {}
        self.kinds: dict[str, tuple[str, Position]] = {}
        self.first_use: dict[str, None] = {}
        self.declared_set = set(self.declared or ())
        self.unary_heads = {c.head.predicate for c in clauses if len(c.head.args) == 1}
        self.all_classes = {c.head.args[1].constant for c in clauses if len(c.head.args) == 2}

    def rule_set(self, source: str) -> RuleSet:
        if self.declared is not None:
            duplicate = _first_duplicate(self.declared)
            if duplicate is not None:
                raise _Problem(NOWHERE, f"feature '{duplicate}' is listed twice")
        heads = [self._head(clause) for clause in self.clauses]
        rules = tuple(
            Rule(head, self._body(clause), clause.position)
            for head, clause in zip(heads, self.clauses)
        )
        names = self.declared if self.declared is not None else list(self.first_use)
        features = tuple(
            Feature(name, self.kinds.get(name, (BINARY, NOWHERE))[0]) for name in names
        )
        return _finish(rules, features, tuple(self.classes), self.class_predicate or "target", source)

    def _head(self, clause: Clause) -> Key:
        head = clause.head
        first = head.args[0]
        if first.kind != "variable":
            raise _Problem(first.position, f"a rule head's first argument is the sample variable, found {first.text!r}")
        if len(head.args) == 1:
            if self.declared is not None and head.predicate in self.declared:
                raise _Problem(head.position, f"'{head.predicate}' is a feature; it cannot be a rule head")
            self.defined.setdefault(head.predicate, head.position)
            return PredicateKey(head.predicate)
        if len(head.args) != 2 or head.args[1].kind == "variable":
            raise _Problem(head.position, "a rule head is p(X) or a class atom such as target(X,'c')")
        if self.class_predicate is None:
            self.class_predicate, self.class_head_at = head.predicate, head.position
        elif head.predicate != self.class_predicate:
            raise _Problem(
                head.position,
                f"class atoms use '{self.class_predicate}' (first at {self.class_head_at}), "
                f"not '{head.predicate}'",
            )
        name = head.args[1].constant
        self.classes.setdefault(name, None)
        return ClassKey(name)

    def _body(self, clause: Clause) -> tuple[Literal, ...]:
        variable = clause.head.args[0].text
        bindings: dict[str, tuple[str, Position]] = {}
        for literal in clause.body:
            if isinstance(literal, SourceAtomLiteral) and len(literal.atom.args) == 2:
                self._binding(literal, variable, bindings)
        body: list[Literal] = []
        for literal in clause.body:
            if isinstance(literal, Comparison):
                body.append(self._comparison(literal, variable, bindings))
            elif len(literal.atom.args) != 2 or literal.atom.args[1].kind != "variable":
                body.append(self._atom_literal(literal, variable))
        return tuple(body)

    def _sample_variable(self, term: Term, variable: str) -> None:
        if term.kind != "variable" or term.text != variable:
            raise _Problem(term.position, f"expected the sample variable '{variable}' (the head's), found {term.text!r}")

    def _binding(self, literal: SourceAtomLiteral, variable: str, bindings: dict) -> None:
        atom = literal.atom
        self._sample_variable(atom.args[0], variable)
        value = atom.args[1]
        if value.kind != "variable":
            return
        if literal.negated:
            raise _Problem(literal.position, f"a negated literal cannot bind {value.text} (write the comparison in an exception rule)")
        if value.text == variable:
            raise _Problem(value.position, f"'{variable}' is the sample; a numeric feature binds a new variable")
        if value.text in bindings:
            previous = bindings[value.text][1]
            raise _Problem(value.position, f"{value.text} is already bound at {previous}")
        self._use_feature(atom.predicate, NUMERIC, atom.position)
        bindings[value.text] = (atom.predicate, atom.position)

    def _comparison(self, literal: Comparison, variable: str, bindings: dict) -> ComparisonLiteral:
        left, right, operator = literal.left, literal.right, literal.operator
        if left.kind != "variable":
            left, right, operator = right, left, _FLIPPED[operator]
        if left.kind != "variable" or right.kind != "number":
            raise _Problem(literal.position, "a comparison relates a variable bound by a numeric feature to a number")
        if left.text not in bindings:
            raise _Problem(left.position, f"{left.text} is not bound by a feature atom such as temp(X,{left.text}) in this rule")
        value = float(right.text)
        if math.isnan(value):
            raise _Problem(right.position, "cannot compare with NaN")
        return ComparisonLiteral(bindings[left.text][0], operator, value, right.text, literal.position)

    def _atom_literal(self, literal: SourceAtomLiteral, variable: str) -> Literal:
        atom = literal.atom
        self._sample_variable(atom.args[0], variable)
        if len(atom.args) > 2:
            raise _Problem(atom.position, f"'{atom.predicate}' has {len(atom.args)} arguments; atoms here take X and at most one more")
        if len(atom.args) == 2:
            if atom.predicate != self.class_predicate:
                raise _Problem(atom.position, f"{atom.predicate}(X,{atom.args[1].text}) is a categorical literal; only class atoms take a constant (binarize '{atom.predicate}' into features)")
            name = atom.args[1].constant
            if name not in self.all_classes:
                raise _Problem(atom.position, f"class {quote(name)} has no rule")
            return AtomLiteral(ClassKey(name), literal.negated, literal.position)
        if atom.predicate in self.unary_heads:
            return AtomLiteral(PredicateKey(atom.predicate), literal.negated, literal.position)
        if atom.predicate == self.class_predicate:
            raise _Problem(atom.position, f"'{atom.predicate}' is the class predicate: write {atom.predicate}(X,'class')")
        self._use_feature(atom.predicate, BINARY, atom.position)
        return FeatureLiteral(atom.predicate, literal.negated, literal.position)

    def _use_feature(self, name: str, kind: str, position: Position) -> None:
        if EXCEPTION_NAME.fullmatch(name) and name not in self.declared_set:
            raise _Problem(position, f"{name} has no rule (exception predicates must be defined)")
        if self.declared is not None and name not in self.declared_set:
            raise _Problem(position, f"unknown predicate '{name}': it is not a feature and no rule defines it")
        known = self.kinds.get(name)
        if known is not None and known[0] != kind:
            raise _Problem(position, f"'{name}' is used as a {known[0]} feature at {known[1]} and as a {kind} one here")
        self.kinds.setdefault(name, (kind, position))
        self.first_use.setdefault(name, None)


def _first_duplicate(names: Iterable[str]) -> str | None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


@dataclass(frozen=True, slots=True)
class _Edge:
    target: Key
    negated: bool
    rule: int
    position: Position


def _finish(
    rules: tuple[Rule, ...],
    features: tuple[Feature, ...],
    classes: tuple[str, ...],
    class_predicate: str,
    source: str,
) -> RuleSet:
    """Stratifies the rules (rejecting a cycle through negation) into a `RuleSet`."""
    edges: dict[Key, list[_Edge]] = {rule.head: [] for rule in rules}
    for index, rule in enumerate(rules):
        for literal in rule.body:
            if isinstance(literal, AtomLiteral):
                edges[rule.head].append(_Edge(literal.key, literal.negated, index, literal.position))
    components = _strongly_connected(edges)
    recursive: set[Key] = set()
    for component in components:
        members = set(component)
        looped = len(component) > 1 or any(
            edge.target in members for edge in edges[component[0]]
        )
        if not looped:
            continue
        recursive |= members
        for key in component:
            for edge in edges[key]:
                if edge.negated and edge.target in members:
                    raise _Problem(edge.position, _cycle_message(rules, class_predicate, edges, members, key, edge))
    return RuleSet(rules, features, classes, class_predicate, tuple(components), frozenset(recursive), source)


def _strongly_connected(edges: dict[Key, list[_Edge]]) -> list[tuple[Key, ...]]:
    """Tarjan's algorithm without recursion; components come dependencies first."""
    index_of: dict[Key, int] = {}
    low: dict[Key, int] = {}
    on_stack: set[Key] = set()
    stack: list[Key] = []
    components: list[tuple[Key, ...]] = []
    for root in edges:
        if root in index_of:
            continue
        work = [(root, 0)]
        while work:
            node, next_edge = work.pop()
            if next_edge == 0:
                index_of[node] = low[node] = len(index_of)
                stack.append(node)
                on_stack.add(node)
            successors = edges[node]
            while next_edge < len(successors):
                target = successors[next_edge].target
                next_edge += 1
                if target not in index_of:
                    work.append((node, next_edge))
                    work.append((target, 0))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index_of[target])
            else:
                if low[node] == index_of[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(tuple(reversed(component)))
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    return components


def _cycle_message(rules, class_predicate, edges, members, start: Key, negative: _Edge) -> str:
    """`cycle through negation: ...` listing the rules along one cycle through the edge."""
    previous: dict[Key, tuple[Key, _Edge]] = {}
    queue = deque([negative.target])
    seen = {negative.target}
    while queue and start not in seen:
        node = queue.popleft()
        for edge in edges[node]:
            if edge.target in members and edge.target not in seen:
                seen.add(edge.target)
                previous[edge.target] = (node, edge)
                queue.append(edge.target)
    path = [(start, negative)]
    node = start
    while node != negative.target:
        parent, edge = previous[node]
        path.append((parent, edge))
        node = parent
    path = [path[0], *reversed(path[1:])]

    def text(key: Key) -> str:
        return f"{class_predicate}(X,{quote(key.name)})" if isinstance(key, ClassKey) else f"{key.name}(X)"

    steps = [
        f"{text(head)} depends on {'not ' if edge.negated else ''}{text(edge.target)} "
        f"(rule {_rule_place(rules, edge.rule)})"
        for head, edge in path
    ]
    if len(steps) > 6:  # one readable line however long the cycle
        steps = [*steps[:3], f"... ({len(steps) - 5} more)", *steps[-2:]]
    return "cycle through negation: " + ", ".join(steps)


def _rule_place(rules: Sequence[Rule], index: int) -> str:
    position = rules[index].position
    return f"at {position}" if position != NOWHERE else f"#{index + 1}"
