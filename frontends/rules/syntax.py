"""Rule text to clauses: the lark grammar in `rules.lark`, and errors located in the file.

The parser is LALR(1) with lark's basic lexer (15% faster here than its contextual one),
and the tree is built by an inline transformer (no parse tree in between): parsing is
linear in the size of the text and
never recurses per clause or per literal, so a file of 100k rules or a 5,000-deep chain
of exception rules parses like any other. Whatever is wrong with a file is reported as a
:class:`RuleError`, ``FILE:LINE:COL: error: message``; a file that is not UTF-8 is located
at its first bad byte.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

GRAMMAR_FILE = Path(__file__).with_name("rules.lark")


class RuleError(Exception):
    """A rule file (or rule-set) that cannot be used, located as ``FILE:LINE:COL``.

    ``line`` and ``column`` are 1-based; 0 means the problem has no place in a text (a
    rule-set built in Python, an input tensor of the wrong shape).
    """

    def __init__(self, source: str, line: int, column: int, message: str):
        self.source = source
        self.line = line
        self.column = column
        self.message = message
        super().__init__(f"{source}:{line}:{column}: error: {message}")


@dataclass(frozen=True, slots=True)
class Position:
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


NOWHERE = Position(0, 0)
"""The position of what was not read from a text."""


@dataclass(frozen=True, slots=True)
class Term:
    """An argument: a variable (`X`, `N1`), a quoted constant, a number or a name."""

    kind: str
    """One of ``variable``, ``string``, ``number``, ``name``."""
    text: str
    position: Position

    @property
    def constant(self) -> str:
        """The constant a string, number or name term denotes, as text."""
        return unquote(self.text) if self.kind == "string" else self.text


@dataclass(frozen=True, slots=True)
class Atom:
    predicate: str
    args: tuple[Term, ...]
    position: Position


@dataclass(frozen=True, slots=True)
class AtomLiteral:
    """`p(...)` or `not p(...)` in a body; ``position`` is where the literal starts."""

    atom: Atom
    negated: bool
    position: Position


@dataclass(frozen=True, slots=True)
class Comparison:
    """`N1 > 38.5`: a variable bound by a numeric feature atom against a number."""

    left: Term
    operator: str
    right: Term
    position: Position


SourceLiteral = AtomLiteral | Comparison


@dataclass(frozen=True, slots=True)
class Clause:
    """One rule (or fact) as written: ``head :- body.``"""

    head: Atom
    body: tuple[SourceLiteral, ...]
    position: Position


def quote(name: str) -> str:
    """A constant as a quoted Prolog atom: quotes doubled, backslashes escaped."""
    return "'" + name.replace("\\", "\\\\").replace("'", "''") + "'"


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'"}


def unquote(text: str) -> str:
    """The constant a quoted atom spells (``''`` and ``\\'`` are quotes)."""
    body, out, index = text[1:-1], [], 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            out.append(_ESCAPES.get(body[index + 1], body[index + 1]))
            index += 2
        elif char == "'":
            out.append("'")
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _position(token: Token) -> Position:
    return Position(token.line, token.column)


class _ClauseBuilder(Transformer):
    """Builds clauses while LALR reduces, bottom-up (lark calls it inline)."""

    def start(self, clauses):
        return clauses

    def fact(self, children):
        (head,) = children
        return Clause(head, (), head.position)

    def rule(self, children):
        head, _neck, body = children
        return Clause(head, tuple(body), head.position)

    def body(self, literals):
        return literals

    def positive(self, children):
        (atom,) = children
        return AtomLiteral(atom, False, atom.position)

    def negative(self, children):
        keyword, atom = children
        return AtomLiteral(atom, True, _position(keyword))

    def comparison(self, children):
        left, operator, right = children
        return Comparison(left, str(operator), right, left.position)

    def atom(self, children):
        name, *args = children
        return Atom(str(name), tuple(args), _position(name))

    def term(self, children):
        (token,) = children
        kind = {"VARIABLE": "variable", "STRING": "string", "NUMBER": "number"}.get(
            token.type, "name"
        )
        return Term(kind, str(token), _position(token))


@functools.cache
def _parser() -> Lark:
    return Lark(
        GRAMMAR_FILE.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="basic",
        transformer=_ClauseBuilder(),
        cache=False,
    )


_EXPECTED_NAMES = {
    "PREDICATE": "a predicate name",
    "VARIABLE": "a variable",
    "STRING": "a quoted constant",
    "NUMBER": "a number",
    "NOT": "'not'",
    "PROLOG_NOT": "'\\+'",
    "NECK": "':-'",
    "COMPARISON": "a comparison (>, <, >=, =<, =, \\=)",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "DOT": "'.'",
    "$END": "end of input",
}


def _describe_expected(names) -> str:
    described = sorted({_EXPECTED_NAMES.get(name, name) for name in names})
    if not described:
        return "nothing here"
    if len(described) == 1:
        return described[0]
    return ", ".join(described[:-1]) + " or " + described[-1]


def _acceptable(error: UnexpectedToken | UnexpectedCharacters) -> set[str]:
    """The terminals the parser would accept here, after the reductions the unexpected
    token would have caused (LALR's raw expected set mixes in other contexts' terminals)."""
    parser = getattr(error, "interactive_parser", None)
    if parser is not None:
        try:
            return set(parser.accepts())
        except UnexpectedInput:
            pass
    return set(error.expected if isinstance(error, UnexpectedToken) else error.allowed or ())


def _syntax_error(source: str, error: UnexpectedInput, text: str) -> RuleError:
    if isinstance(error, UnexpectedToken):
        token = error.token
        expected = _describe_expected(_acceptable(error))
        if token.type == "$END":
            line = text.count("\n") + 1
            column = len(text) - (text.rfind("\n") + 1) + 1
            return RuleError(source, line, column, f"expected {expected}, found end of input")
        return RuleError(
            source, error.line, error.column, f"expected {expected}, found {str(token)!r}"
        )
    if isinstance(error, UnexpectedCharacters):
        expected = _describe_expected(_acceptable(error))
        return RuleError(
            source,
            error.line,
            error.column,
            f"expected {expected}, found unexpected character {error.char!r}",
        )
    return RuleError(source, getattr(error, "line", 0), getattr(error, "column", 0), str(error))


def parse_clauses(text: str, source: str = "<rules>") -> list[Clause]:
    """The clauses of a rule text, in order; a :class:`RuleError` where it does not parse."""
    try:
        return _parser().parse(text)
    except UnexpectedInput as error:
        raise _syntax_error(source, error, text) from None
    except VisitError as error:  # a bug in the builder, not in the text
        raise RuntimeError(f"rule parser: {error.orig_exc!r}") from error.orig_exc


def decode_rule_bytes(data: bytes, source: str) -> str:
    """UTF-8 text (a byte-order mark is dropped); else an error at the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as failure:
        offset = failure.start
        line_start = data.rfind(b"\n", 0, offset) + 1
        line = data.count(b"\n", 0, offset) + 1
        column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
        raise RuleError(
            source, line, column, f"the file is not UTF-8 text (byte 0x{data[offset]:02x})"
        ) from None


def read_rule_file(path: str | Path) -> str:
    """The text of a rule file; unreadable or non-UTF-8 files are located errors."""
    path = Path(path)
    try:
        if not path.is_file():
            raise RuleError(str(path), 0, 0, "no such rule file (or not a regular file)")
        data = path.read_bytes()
    except OSError as failure:
        raise RuleError(str(path), 0, 0, f"cannot read the rule file ({failure.strerror})") from None
    return decode_rule_bytes(data, str(path))
