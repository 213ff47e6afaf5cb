"""Justifications: why a row got its class, as the proof tree a NeSyFOLD user reads.

For the predicted class, the rule that fired is the first rule of that class (in text
order) whose body holds; each of its literals is justified by the feature value it reads
or, for a derived atom, by that atom's own derivation: the rule that made it hold, or,
when it fails (`not ab1(X)`), for every rule of it the first literal that fails. A row of
no class gets the failure of every class atom. Derivations are shared (a derived atom is
explained once per row and referred to after) and built bottom-up in stratum order, so a
chain of 5,000 exceptions is explained without recursion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from frontends.rules.evaluate import COMPARE, NO_CLASS, truth_values
from frontends.rules.model import (
    AtomLiteral,
    ClassKey,
    ComparisonLiteral,
    FeatureLiteral,
    Key,
    Literal,
    RuleSet,
)
from frontends.rules.syntax import NOWHERE


@dataclass
class LiteralProof:
    """One literal of a rule for one row: its text, whether it holds, and why."""

    text: str
    holds: bool
    reason: str
    derivation: Derivation | None = None


@dataclass
class Derivation:
    """Why a derived atom holds (``rule`` and all its literals) or fails (per rule, the
    first literal that fails)."""

    atom: str
    holds: bool
    rule: int | None = None
    literals: list[LiteralProof] = field(default_factory=list)
    failures: list[tuple[int, LiteralProof]] = field(default_factory=list)


@dataclass
class Explanation:
    row: int
    predicted: str | None
    rule: int | None
    """Index in ``rule_set.rules`` of the rule that fired, None for no class."""
    derivations: list[Derivation]
    """The class atom that holds, or every class atom, failing."""
    rule_set: RuleSet = field(repr=False)

    def __str__(self) -> str:
        return "\n".join(_Printer(self.rule_set).lines(self))


def explain(rule_set: RuleSet, table: np.ndarray, predicted: Sequence[int]) -> list[Explanation]:
    """Explains every row of ``table`` given the class indices a program predicted."""
    values = truth_values(rule_set, table)
    builder = _Builder(rule_set, np.asarray(table), values)
    explanations = []
    for row, index in enumerate(np.asarray(predicted).tolist()):
        explanations.append(builder.explain_row(row, index))
    return explanations


class _Builder:
    def __init__(self, rule_set: RuleSet, table: np.ndarray, values: dict[Key, np.ndarray]):
        self.rule_set = rule_set
        self.table = table
        self.values = values
        self.stratum_of = {key: n for n, stratum in enumerate(rule_set.strata) for key in stratum}

    def explain_row(self, row: int, predicted: int) -> Explanation:
        rules = self.rule_set
        holding = [i for i, name in enumerate(rules.classes) if self.values[ClassKey(name)][row]]
        expected = holding[0] if holding else NO_CLASS
        if predicted != expected:
            raise RuntimeError(
                f"row {row}: the program predicted class index {predicted} where the rule "
                f"semantics give {expected}: a compiler bug, please report it"
            )
        roots = [ClassKey(rules.classes[predicted])] if holding else [
            ClassKey(name) for name in rules.classes
        ]
        derivations = self._derive(row, roots)
        first = derivations[roots[0]]
        return Explanation(
            row,
            rules.classes[predicted] if holding else None,
            first.rule if holding else None,
            [derivations[key] for key in roots],
            rules,
        )

    def _derive(self, row: int, roots: list[Key]) -> dict[Key, Derivation]:
        needed: set[Key] = set()
        stack = list(roots)
        while stack:
            key = stack.pop()
            if key in needed:
                continue
            needed.add(key)
            for literal in self._relevant_literals(row, key):
                if isinstance(literal, AtomLiteral):
                    stack.append(literal.key)
        derivations = {
            key: Derivation(self.rule_set.key_text(key), bool(self.values[key][row]))
            for key in needed
        }
        for key in sorted(needed, key=self.stratum_of.__getitem__):
            self._fill(row, derivations[key], key, derivations)
        return derivations

    def _relevant_literals(self, row: int, key: Key) -> list[Literal]:
        if self.values[key][row]:
            return list(self.rule_set.rules[self._fired(row, key)].body)
        return [self._first_failure(row, index) for index in self.rule_set.rules_by_head[key]]

    def _fired(self, row: int, key: Key) -> int:
        for index in self.rule_set.rules_by_head[key]:
            if all(self._holds(row, lit) for lit in self.rule_set.rules[index].body):
                if key not in self.rule_set.recursive or self._founded(row, index):
                    return index
        raise AssertionError("an atom that holds has a rule whose body holds")

    def _founded(self, row: int, index: int) -> bool:
        """For positive recursion, a support that is not circular: every atom of the head's
        component that the rule reads became true in an earlier round of the fixpoint."""
        rule = self.rule_set.rules[index]
        ranks = self._ranks(row, rule.head)
        return all(
            ranks.get(lit.key, 0) < ranks[rule.head]
            for lit in rule.body
            if isinstance(lit, AtomLiteral) and lit.key in ranks
        )

    def _ranks(self, row: int, key: Key) -> dict[Key, int]:
        """The round of the least-fixpoint iteration in which each atom of ``key``'s
        component first holds on ``row``."""
        stratum = self.rule_set.strata[self.stratum_of[key]]
        members = set(stratum)
        ranks: dict[Key, int] = {}
        for round_number in range(1, len(stratum) + 1):
            new = [
                member
                for member in stratum
                if member not in ranks
                and any(
                    all(
                        (lit.key in ranks) if isinstance(lit, AtomLiteral) and lit.key in members
                        else self._holds(row, lit)
                        for lit in self.rule_set.rules[i].body
                    )
                    for i in self.rule_set.rules_by_head[member]
                )
            ]
            ranks.update((member, round_number) for member in new)
        return ranks

    def _first_failure(self, row: int, index: int) -> Literal:
        for literal in self.rule_set.rules[index].body:
            if not self._holds(row, literal):
                return literal
        raise AssertionError("a failing atom has a rule whose body holds")

    def _holds(self, row: int, literal: Literal) -> bool:
        match literal:
            case FeatureLiteral(feature=name, negated=negated):
                return bool(self._value(row, name) != 0) != negated
            case ComparisonLiteral(feature=name, operator=op, value=threshold):
                return bool(COMPARE[op](float(self._value(row, name)), threshold))
            case AtomLiteral(key=key, negated=negated):
                return bool(self.values[key][row]) != negated
        raise TypeError(literal)

    def _value(self, row: int, name: str):
        return self.table[row, self.rule_set.feature_index[name]]

    def _fill(self, row: int, derivation: Derivation, key: Key, all_of: dict) -> None:
        if derivation.holds:
            derivation.rule = self._fired(row, key)
            derivation.literals = [
                self._proof(row, literal, all_of) for literal in self.rule_set.rules[derivation.rule].body
            ]
            return
        for index in self.rule_set.rules_by_head[key]:
            derivation.failures.append((index, self._proof(row, self._first_failure(row, index), all_of)))

    def _proof(self, row: int, literal: Literal, all_of: dict) -> LiteralProof:
        text = self.rule_set.literal_text(literal)
        holds = self._holds(row, literal)
        if isinstance(literal, AtomLiteral):
            atom = all_of[literal.key]
            state = "holds" if atom.holds else "fails"
            return LiteralProof(text, holds, f"{atom.atom} {state}", atom)
        value = self._value(row, literal.feature)
        shown = bool(value) if isinstance(value, np.bool_ | bool) else float(value)
        return LiteralProof(text, holds, f"{literal.feature} = {shown}")


class _Printer:
    """Indented text; a derivation is written once per row and referred to afterwards."""

    def __init__(self, rule_set: RuleSet):
        self.rule_set = rule_set

    def rule_place(self, index: int) -> str:
        position = self.rule_set.rules[index].position
        where = f"{self.rule_set.source}:{position}" if position != NOWHERE else f"rule {index + 1}"
        return f"{where}: {self.rule_set.rule_text(self.rule_set.rules[index])}"

    def lines(self, explanation: Explanation) -> list[str]:
        if explanation.predicted is None:
            head = f"row {explanation.row}: no class (no class atom holds)"
        else:
            head = f"row {explanation.row}: {explanation.predicted!r} by {self.rule_place(explanation.rule)}"
        out = [head]
        written: set[int] = set()
        stack: list[tuple[int, object]] = [(1, d) for d in reversed(explanation.derivations)]
        if explanation.predicted is not None:
            written.add(id(explanation.derivations[0]))
            stack = [(1, p) for p in reversed(explanation.derivations[0].literals)]
        while stack:
            depth, item = stack.pop()
            pad = "  " * depth
            if isinstance(item, str):
                out.append(pad + item)
                continue
            if isinstance(item, LiteralProof):
                out.append(f"{pad}{item.text}: {item.reason}")
                derivation = item.derivation
                if derivation is None:
                    continue
                if id(derivation) in written:
                    out[-1] += " (as above)"
                    continue
                item, depth = derivation, depth + 1
                pad = "  " * depth
            written.add(id(item))
            children: list[tuple[int, object]] = []
            if item.holds:
                children.append((depth, f"{item.atom} holds by {self.rule_place(item.rule)}"))
                children += [(depth + 1, p) for p in item.literals]
            else:
                children.append((depth, f"{item.atom} fails: every rule has a failing literal"))
                for index, proof in item.failures:
                    children.append((depth + 1, self.rule_place(index)))
                    children.append((depth + 2, proof))
            stack.extend(reversed(children))
        return out
