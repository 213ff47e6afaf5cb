"""Rule-sets: stratified normal logic programs over binarized CNN filters.

A :class:`RuleSet` is what FOLD-SE-M learns and what the compiler lowers. Its
text form is the one printed by the NeSyFOLD line of work::

    target(X,'bathroom') :- f12(X), not f7(X), not ab1(X).
    target(X,'bedroom') :- f301(X), not target(X,'bathroom').
    ab1(X) :- f88(X), f4(X).

Semantics. ``fK(X)`` holds when filter ``K`` of image ``X`` is active in the
binary table. A predicate holds when the body of at least one of its rules
holds; a body is a conjunction of literals; ``not`` is negation as failure.
``abN`` predicates are exceptions. Target classes form a decision list: they
are tried in the order their rules first appear, and an image is assigned the
first class whose target predicate holds (or no class). ``not target(X,'c')``
literals make that order explicit in the text; the program is stratified, so
a rule may only refer to targets defined before it and exceptions must not be
recursive.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from frontends.nesy.errors import NesyError, RuleSyntaxError

NO_CLASS = -1
"""Prediction for an image that no target rule covers."""


@dataclass(frozen=True)
class FilterLiteral:
    """``fK(X)``: filter ``K`` is active (or, negated, inactive)."""

    filter_index: int
    negated: bool = False

    def atom_text(self) -> str:
        return f"f{self.filter_index}(X)"


@dataclass(frozen=True)
class ExceptionLiteral:
    """``abN(X)``: exception predicate ``N`` holds."""

    exception_id: int
    negated: bool = True

    def atom_text(self) -> str:
        return f"ab{self.exception_id}(X)"


@dataclass(frozen=True)
class TargetLiteral:
    """``target(X,'c')``: the image is assigned class ``c`` by earlier rules."""

    class_name: str
    negated: bool = True

    def atom_text(self) -> str:
        return f"target(X,{quote_class_name(self.class_name)})"


Literal = FilterLiteral | ExceptionLiteral | TargetLiteral


@dataclass(frozen=True)
class TargetHead:
    class_name: str

    def atom_text(self) -> str:
        return f"target(X,{quote_class_name(self.class_name)})"


@dataclass(frozen=True)
class ExceptionHead:
    exception_id: int

    def atom_text(self) -> str:
        return f"ab{self.exception_id}(X)"


Head = TargetHead | ExceptionHead


@dataclass(frozen=True)
class Rule:
    head: Head
    body: tuple[Literal, ...] = ()

    def __str__(self) -> str:
        if not self.body:
            return f"{self.head.atom_text()}."
        literals = ", ".join(
            ("not " if literal.negated else "") + literal.atom_text() for literal in self.body
        )
        return f"{self.head.atom_text()} :- {literals}."


def quote_class_name(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


@dataclass(frozen=True)
class RuleSetSize:
    """The size measures used by the NeSyFOLD papers.

    ``n_rules`` counts every rule (target and exception rules); ``n_preds``
    counts the distinct filter predicates; ``size`` counts filter and exception
    literal occurrences in all bodies. The ``not target(...)`` literals only
    spell out the decision-list order and are not counted.
    """

    n_rules: int
    n_preds: int
    size: int


@dataclass(frozen=True)
class RuleSet:
    """An ordered stratified program plus the dataset's class names.

    ``class_names`` indexes predictions: :meth:`predict` returns positions in
    it. Classes that no rule concludes are never predicted.
    """

    class_names: tuple[str, ...]
    rules: tuple[Rule, ...]

    def __post_init__(self):
        for problem in find_problems(self.class_names, self.rules):
            raise NesyError(f"invalid rule-set: rule {problem.rule_index + 1}: {problem.message}")

    def __str__(self) -> str:
        return "".join(f"{rule}\n" for rule in self.rules)

    def decision_order(self) -> list[str]:
        """Target classes in the order their rules first appear."""
        order: list[str] = []
        for rule in self.rules:
            if isinstance(rule.head, TargetHead) and rule.head.class_name not in order:
                order.append(rule.head.class_name)
        return order

    def used_filters(self) -> list[int]:
        return sorted(
            {
                literal.filter_index
                for rule in self.rules
                for literal in rule.body
                if isinstance(literal, FilterLiteral)
            }
        )

    def size(self) -> RuleSetSize:
        occurrences = sum(
            1
            for rule in self.rules
            for literal in rule.body
            if isinstance(literal, (FilterLiteral, ExceptionLiteral))
        )
        return RuleSetSize(len(self.rules), len(self.used_filters()), occurrences)

    def predict(self, table: np.ndarray) -> np.ndarray:
        """Classifies every row of a binary filter table.

        Returns, per row, the index in ``class_names`` of the first class (in
        decision order) whose target predicate holds, or ``NO_CLASS``.
        """
        table = _as_binary_table(table, self.used_filters())
        evaluator = _Evaluator(self, table)
        predictions = np.full(table.shape[0], NO_CLASS, dtype=np.int64)
        undecided = np.ones(table.shape[0], dtype=bool)
        for class_name in self.decision_order():
            fires = evaluator.target(class_name) & undecided
            predictions[fires] = self.class_names.index(class_name)
            undecided &= ~fires
        return predictions


@dataclass(frozen=True)
class RuleProblem:
    rule_index: int
    literal_index: int | None
    message: str


def find_problems(class_names: Sequence[str], rules: Sequence[Rule]) -> Iterator[RuleProblem]:
    """Yields every violation of the well-formedness conditions.

    Conditions: target heads name known classes; a class's rules are
    contiguous; target literals name a class whose rules all come earlier
    (stratification); every exception literal has a defining rule; exception
    rules do not refer to targets; the exception dependencies are acyclic.
    """
    yield from _check_targets(class_names, rules)
    yield from _check_exceptions(rules)


def _check_targets(class_names: Sequence[str], rules: Sequence[Rule]) -> Iterator[RuleProblem]:
    finished: set[str] = set()
    current: str | None = None
    for rule_index, rule in enumerate(rules):
        if isinstance(rule.head, TargetHead):
            name = rule.head.class_name
            if name not in class_names:
                yield RuleProblem(rule_index, None, f"unknown class {quote_class_name(name)}")
            if name in finished:
                yield RuleProblem(
                    rule_index, None, f"rules for class {quote_class_name(name)} are not contiguous"
                )
            if current is not None and current != name:
                finished.add(current)
            current = name
        for literal_index, literal in enumerate(rule.body):
            if (
                isinstance(rule.head, TargetHead)
                and isinstance(literal, TargetLiteral)
                and literal.class_name not in finished
            ):
                yield RuleProblem(
                    rule_index,
                    literal_index,
                    f"target(X,{quote_class_name(literal.class_name)}) is not defined by earlier rules",
                )


def _check_exceptions(rules: Sequence[Rule]) -> Iterator[RuleProblem]:
    defined = {rule.head.exception_id for rule in rules if isinstance(rule.head, ExceptionHead)}
    for rule_index, rule in enumerate(rules):
        for literal_index, literal in enumerate(rule.body):
            if isinstance(literal, ExceptionLiteral) and literal.exception_id not in defined:
                yield RuleProblem(rule_index, literal_index, f"ab{literal.exception_id} has no defining rule")
            if isinstance(rule.head, ExceptionHead) and isinstance(literal, TargetLiteral):
                yield RuleProblem(
                    rule_index, literal_index, "exception rules may not refer to target predicates"
                )
    depends: dict[int, set[int]] = {}
    first_rule: dict[int, int] = {}
    for rule_index, rule in enumerate(rules):
        if isinstance(rule.head, ExceptionHead):
            first_rule.setdefault(rule.head.exception_id, rule_index)
            depends.setdefault(rule.head.exception_id, set()).update(
                literal.exception_id for literal in rule.body if isinstance(literal, ExceptionLiteral)
            )
    state: dict[int, str] = {}

    def on_cycle(node: int) -> bool:
        state[node] = "open"
        for successor in depends.get(node, ()):
            if state.get(successor) == "open" or (successor not in state and on_cycle(successor)):
                return True
        state[node] = "done"
        return False

    for exception_id in sorted(depends):
        if exception_id not in state and on_cycle(exception_id):
            yield RuleProblem(first_rule[exception_id], None, f"ab{exception_id} depends on itself")
            return


def _as_binary_table(table: np.ndarray, used_filters: Sequence[int]) -> np.ndarray:
    table = np.asarray(table)
    if table.ndim != 2:
        raise NesyError(f"binary table must be 2-D (images x filters), got shape {table.shape}")
    if used_filters and used_filters[-1] >= table.shape[1]:
        raise NesyError(
            f"rule-set uses f{used_filters[-1]} but the table has only {table.shape[1]} filter columns"
        )
    if table.dtype != bool:
        if not np.isin(table, (0, 1)).all():
            raise NesyError("binary table must contain only 0/1 values")
        table = table.astype(bool)
    return table


class _Evaluator:
    """Evaluates predicates column-wise over all rows at once, memoized."""

    def __init__(self, rule_set: RuleSet, table: np.ndarray):
        self.table = table
        self.rules_by_head: dict[Head, list[Rule]] = {}
        for rule in rule_set.rules:
            self.rules_by_head.setdefault(rule.head, []).append(rule)
        self.values: dict[Head, np.ndarray] = {}

    def target(self, class_name: str) -> np.ndarray:
        return self._predicate(TargetHead(class_name))

    def _predicate(self, head: Head) -> np.ndarray:
        if head not in self.values:
            holds = np.zeros(self.table.shape[0], dtype=bool)
            for rule in self.rules_by_head.get(head, ()):
                holds |= self._body(rule.body)
            self.values[head] = holds
        return self.values[head]

    def _body(self, body: tuple[Literal, ...]) -> np.ndarray:
        holds = np.ones(self.table.shape[0], dtype=bool)
        for literal in body:
            match literal:
                case FilterLiteral(filter_index=index):
                    value = self.table[:, index]
                case ExceptionLiteral(exception_id=exception_id):
                    value = self._predicate(ExceptionHead(exception_id))
                case TargetLiteral(class_name=name):
                    value = self._predicate(TargetHead(name))
            holds &= ~value if literal.negated else value
        return holds


_TOKEN = re.compile(
    r"(?P<space>[ \t\r]+)|(?P<newline>\n)|(?P<comment>%[^\n]*)"
    r"|(?P<neck>:-)|(?P<punct>[(),.])"
    r"|(?P<string>'(?:[^'\n]|'')*')"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
)
_FILTER_NAME = re.compile(r"f(0|[1-9][0-9]*)")
_EXCEPTION_NAME = re.compile(r"ab([1-9][0-9]*)")


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    line: int
    column: int


@dataclass
class _ParsedRule:
    rule: Rule
    head_token: _Token
    literal_tokens: list[_Token]


class _RuleParser:
    """Recursive-descent parser for the NeSyFOLD rule text."""

    def __init__(self, text: str, source_name: str):
        self.source_name = source_name
        self.tokens = list(self._tokenize(text))
        self.position = 0

    def _error(self, token: _Token, message: str) -> RuleSyntaxError:
        return RuleSyntaxError(self.source_name, token.line, token.column, message)

    def _tokenize(self, text: str) -> Iterator[_Token]:
        line, line_start, offset = 1, 0, 0
        while offset < len(text):
            match = _TOKEN.match(text, offset)
            column = offset - line_start + 1
            if match is None:
                raise RuleSyntaxError(
                    self.source_name, line, column, f"unexpected character {text[offset]!r}"
                )
            kind = match.lastgroup
            if kind == "newline":
                line, line_start = line + 1, match.end()
            elif kind not in ("space", "comment"):
                yield _Token(kind, match.group(), line, column)
            offset = match.end()
        yield _Token("end", "end of input", line, offset - line_start + 1)

    def _peek(self) -> _Token:
        return self.tokens[self.position]

    def _next(self) -> _Token:
        token = self.tokens[self.position]
        if token.kind != "end":
            self.position += 1
        return token

    def _expect(self, text: str) -> _Token:
        token = self._next()
        if token.text != text or token.kind == "string":
            raise self._error(token, f"expected '{text}', found '{token.text}'")
        return token

    def parse(self) -> list[_ParsedRule]:
        parsed = []
        while self._peek().kind != "end":
            parsed.append(self._rule())
        return parsed

    def _rule(self) -> _ParsedRule:
        head_token = self._peek()
        if head_token.text == "not":
            raise self._error(head_token, "a rule head cannot be negated")
        head = self._atom()
        if isinstance(head, FilterLiteral):
            raise self._error(head_token, "filter predicates are facts from the table, not rule heads")
        head = (
            TargetHead(head.class_name)
            if isinstance(head, TargetLiteral)
            else ExceptionHead(head.exception_id)
        )
        body, literal_tokens = [], []
        if self._peek().kind == "neck":
            self._next()
            while True:
                literal_tokens.append(self._peek())
                body.append(self._literal())
                if self._peek().text != ",":
                    break
                self._next()
        self._expect(".")
        return _ParsedRule(Rule(head, tuple(body)), head_token, literal_tokens)

    def _literal(self) -> Literal:
        negated = self._peek().kind == "name" and self._peek().text == "not"
        if negated:
            self._next()
        atom = self._atom()
        return type(atom)(*(_atom_key(atom)), negated=negated)

    def _atom(self) -> Literal:
        name = self._next()
        if name.kind != "name" or not name.text[0].islower():
            raise self._error(name, f"expected a predicate name, found '{name.text}'")
        self._expect("(")
        variable = self._next()
        if variable.kind != "name" or variable.text != "X":
            raise self._error(variable, f"expected the variable 'X', found '{variable.text}'")
        if name.text == "target":
            self._expect(",")
            class_token = self._next()
            if class_token.kind != "string":
                raise self._error(class_token, f"expected a quoted class name, found '{class_token.text}'")
            self._expect(")")
            return TargetLiteral(class_token.text[1:-1].replace("''", "'"))
        self._expect(")")
        if match := _FILTER_NAME.fullmatch(name.text):
            return FilterLiteral(int(match.group(1)))
        if match := _EXCEPTION_NAME.fullmatch(name.text):
            return ExceptionLiteral(int(match.group(1)))
        raise self._error(name, f"unknown predicate '{name.text}' (expected target, fK or abN)")


def _atom_key(atom: Literal) -> tuple:
    match atom:
        case FilterLiteral(filter_index=index):
            return (index,)
        case ExceptionLiteral(exception_id=exception_id):
            return (exception_id,)
        case TargetLiteral(class_name=name):
            return (name,)


def parse_rules(text: str, source_name: str = "<rules>", class_names: Sequence[str] | None = None) -> RuleSet:
    """Parses rule text into a verified :class:`RuleSet`.

    ``class_names`` fixes the prediction indices; by default they are the
    target classes in order of appearance. Errors are :class:`RuleSyntaxError`
    located at the offending token.
    """
    parser = _RuleParser(text, source_name)
    parsed = parser.parse()
    rules = tuple(item.rule for item in parsed)
    if class_names is None:
        class_names = []
        for rule in rules:
            if isinstance(rule.head, TargetHead) and rule.head.class_name not in class_names:
                class_names.append(rule.head.class_name)
    for problem in find_problems(class_names, rules):
        item = parsed[problem.rule_index]
        token = (
            item.head_token if problem.literal_index is None else item.literal_tokens[problem.literal_index]
        )
        raise parser._error(token, problem.message)
    return RuleSet(tuple(class_names), rules)
