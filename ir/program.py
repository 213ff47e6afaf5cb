"""Reading, verifying and writing programs: the one place where IR text becomes ops.

Every error a user can cause with IR text surfaces as an `IRError` whose message starts
with `FILE:LINE:COL: error:`, the compiler convention that editors and CI logs understand.
Ops parsed from text carry their position as a `FileLineColLoc`, so a verifier failing
after any number of passes still points at the line the op came from.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from io import StringIO

from xdsl.context import Context
from xdsl.dialects.arith import Arith
from xdsl.dialects.builtin import (
    AnyFloat,
    Builtin,
    FileLineColLoc,
    FunctionType,
    IntAttr,
    ModuleOp,
    StringAttr,
    UnregisteredAttr,
)
from xdsl.ir import Attribute, Operation, Region, SSAValue, TypeAttribute
from xdsl.parser import AttrParser, Parser
from xdsl.parser.generic_parser import ParserState
from xdsl.printer import Printer
from xdsl.traits import IsolatedFromAbove
from xdsl.utils.exceptions import ParseError, VerifyException
from xdsl.utils.lexer import Input
from xdsl.utils.mlir_lexer import MLIRLexer, MLIRTokenKind

from ir.dy import Dy, op_name
from ir.torch import Torch
from ir.torch_verify import torch_op_class

CARRIED_NAMESPACE = "torch."
"""Ops and types of this namespace are carried as they are, without being registered."""


@dataclass
class IRError(Exception):
    """A diagnostic about user-supplied IR, pinned to a place in a file."""

    filename: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.column}: error: {self.message}"


class ProgramContext(Context):
    """An xDSL context for programs: builtin, arith, torch types and dy are registered;
    `torch.*` ops are carried unregistered but verified (`ir.torch_verify`), unknown
    `torch.*` types are carried opaquely, anything else unknown is an error.
    """

    def __init__(self):
        super().__init__(allow_unregistered=False)
        for dialect in (Builtin, Arith, Torch, Dy):
            self.load_dialect(dialect)

    def get_optional_op(self, name: str, *, dialect_stack=()):
        found = super().get_optional_op(name, dialect_stack=dialect_stack)
        if found is None and name.startswith(CARRIED_NAMESPACE):
            found = torch_op_class(name)
            self._loaded_ops[name] = found
        return found

    def get_optional_type(self, name: str) -> type[TypeAttribute] | None:
        found = super().get_optional_type(name)
        if found is None and name.startswith(CARRIED_NAMESPACE):
            found = UnregisteredAttr.with_name_and_type(name, True)
            self._loaded_types[name] = found
        return found

    def get_optional_attr(self, name: str):
        found = super().get_optional_attr(name)
        if found is None and name.startswith(CARRIED_NAMESPACE):
            found = UnregisteredAttr.with_name_and_type(name, False)
            self._loaded_attrs[name] = found
        return found


class _LineIndex:
    """Turns offsets in a text into 1-based (line, column) pairs."""

    def __init__(self, text: str):
        self._line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]

    def line_column(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1


class _LinearTimeLexer(MLIRLexer):
    """xDSL's string literal pattern, `"(?:[^"...]+|escape)*"`, nests `+` in `*` and so
    backtracks exponentially on an unterminated literal (a hang for a long line). Matching
    one character per repetition accepts the same literals in linear time."""

    _unescaped_characters_regex = re.compile(r'"(?:[^"\\\n\v\f]|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*"')


@dataclass
class _FloatBitsElement(AttrParser._TensorLiteralElement):
    """A hexadecimal integer in a dense literal. MLIR reads it as the bit pattern of the
    element when the element type is a float (`dense<0xFF800000> : tensor<f32>` is -inf,
    the only spelling MLIR prints for infinities and NaNs), and as an integer otherwise."""

    def to_type(self, parser: AttrParser, type: Attribute):
        if not isinstance(type, AnyFloat):
            return super().to_type(parser, type)
        if self.is_negative:
            parser.raise_error(
                "hexadecimal float literal should not have a leading minus sign", self.span
            )
        if self.value >= 1 << type.bitwidth:
            parser.raise_error(f"hexadecimal float constant out of range for {type}", self.span)
        return next(type.iter_unpack(self.value.to_bytes(type.compile_time_size, "little")))


class MLIRParser(Parser):
    """xDSL's parser where it differs from MLIR's reading of the same text: hexadecimal
    elements of float dense literals are bit patterns (see `_FloatBitsElement`), and string
    literals are lexed in linear time (see `_LinearTimeLexer`). Everything that reads IR
    text, ours or torch-mlir's, goes through it."""

    def __init__(self, ctx: Context, text: str, filename: str = "<unknown>"):
        # What `Parser.__init__` does, with the linear-time lexer.
        super(Parser, self).__init__(ParserState(_LinearTimeLexer(Input(text, filename))), ctx)
        self.ssa_values = {}
        self.blocks = {}
        self.forward_block_references = defaultdict(list)
        self.forward_ssa_references = {}

    def _parse_tensor_literal_element(self) -> AttrParser._TensorLiteralElement:
        element = super()._parse_tensor_literal_element()
        digits = element.span.text.lstrip("-").lstrip()
        if type(element.value) is int and digits[:2] in ("0x", "0X"):
            return _FloatBitsElement(element.is_negative, element.value, element.span)
        return element


class _LocatingParser(MLIRParser):
    """Records where each op starts in the text, as its location."""

    def __init__(self, ctx: Context, text: str, filename: str, lines: _LineIndex):
        super().__init__(ctx, text, filename)
        self._filename = StringAttr(filename)
        self._text = text
        self._lines = lines
        self._symbols: dict[tuple[bool, str, str], Attribute] = {}
        self._signatures: dict[str, FunctionType] = {}

    def _get_op_by_name(self, name: str) -> type[Operation]:
        """Report an unknown op at its name, not at the token after it."""
        if self.ctx.get_optional_op(name, dialect_stack=self._parser_state.dialect_stack) is None:
            at = self._text.rfind(name, 0, self.pos)
            self.raise_error(f"unknown operation '{name}'", at, at + len(name))
        return super()._get_op_by_name(name)

    def first_undefined_use(self) -> tuple[int, int, str] | None:
        """(line, column, name) of the earliest op using a value that is never defined in
        its scope; xDSL itself only reports such values at the end of the input."""
        uses = []
        for name, references in self.forward_ssa_references.items():
            for value in references.values():
                for use in value.uses:
                    location = use.operation.location
                    if isinstance(location, FileLineColLoc):
                        uses.append((location.line.data, location.column.data, name))
        return min(uses, default=None)

    def _parse_extended_type_or_attribute(self, attr_or_dialect_name: str, is_type: bool):
        """Parse each distinct dialect type or attribute once per text.

        A program names a few hundred distinct types thousands of times (every generic op
        spells out its operand and result types), and parsing them token by token was most
        of the cost of reading a large program. The MLIR grammar delimits a dialect
        symbol's body by balanced brackets alone, so a raw scan finds its text, and a text
        seen before is looked up instead of parsed; attributes are immutable values, so
        sharing one instance is sound. Aliases and the opaque `!dialect<...>` syntax (no dot
        in the name), bodies the scan rejects, and parses that do not end where the scan
        did (a dialect parser off the grammar) take xDSL's path and are not remembered.
        """
        if "." not in attr_or_dialect_name:
            return super()._parse_extended_type_or_attribute(attr_or_dialect_name, is_type)
        start = end = self.pos
        if self._current_token.kind == MLIRTokenKind.LESS:
            try:
                end = self._raw_scan_balanced(start + 1) + 1
            except ParseError:
                return super()._parse_extended_type_or_attribute(attr_or_dialect_name, is_type)
        key = (is_type, attr_or_dialect_name, self._text[start:end])
        found = self._symbols.get(key)
        if found is not None:
            if end != start:
                self._resume_from(end)
            return found
        parsed = super()._parse_extended_type_or_attribute(attr_or_dialect_name, is_type)
        if self._ends_at(start, end):
            self._symbols[key] = parsed
        return parsed

    def parse_optional_function_type(self) -> FunctionType | None:
        """Parse each distinct signature that ends its line once per text.

        A generic op's `(operand types) -> result types` closes its line, and a program
        repeats a few hundred signatures thousands of times: like dialect types (see
        `_parse_extended_type_or_attribute`), a line's rest that was parsed as a function
        type before is looked up. Only a parse that ended at the line's end is remembered,
        and a hit is not taken where the next line opens with `<`, which a type at the end
        of the line could still take as its body.
        """
        if self._current_token.kind != MLIRTokenKind.L_PAREN:
            return None
        start = self.pos
        end = self._text.find("\n", start)
        if end < 0:
            return super().parse_optional_function_type()
        found = self._signatures.get(self._text[start:end])
        if found is not None:
            self._resume_from(end)
            if self._current_token.kind != MLIRTokenKind.LESS:
                return found
            self._resume_from(start)
        parsed = super().parse_optional_function_type()
        if parsed is not None and self._ends_at(start, end):
            self._signatures[self._text[start:end]] = parsed
        return parsed

    def _ends_at(self, start: int, end: int) -> bool:
        """Whether what was parsed since `start` is exactly `text[start:end]`."""
        if end == start:
            return self.pos == start
        return self.pos >= end and not self._text[end : self.pos].strip()

    def parse_operation(self) -> Operation:
        start = self._current_token.span.start
        op = super().parse_operation()
        if not isinstance(op.location, FileLineColLoc):
            line, column = self._lines.line_column(start)
            op.location = FileLineColLoc(self._filename, IntAttr(line), IntAttr(column))
        return op


def parse_module(text: str, filename: str = "<stdin>") -> ModuleOp:
    """Parse program text (custom or generic form) into a module; does not verify."""
    lines = _LineIndex(text)
    parser: _LocatingParser | None = None
    try:
        # The lexer reads the first token already when the parser is made: inside the try.
        parser = _LocatingParser(ProgramContext(), text, filename, lines)
        return parser.parse_module()
    except ParseError as error:
        undefined = parser.first_undefined_use() if parser is not None else None
        if undefined is not None:
            line, column, name = undefined
            raise IRError(filename, line, column, f"use of undefined value '%{name}'") from None
        line, column = lines.line_column(error.span.start)
        raise IRError(filename, line, column, _first_line(error.msg)) from None
    except VerifyException as error:
        line, column = lines.line_column(parser.pos if parser is not None else 0)
        raise IRError(filename, line, column, _first_line(error)) from None


def _first_line(error: Exception | str) -> str:
    if isinstance(error, str):
        text = error
    else:
        text = str(error.args[0]) if error.args else type(error).__name__
    lines = [line.strip() for line in text.strip().splitlines()]
    if not lines:
        return "invalid IR"
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]


def location_of(op: Operation, default_filename: str = "<unknown>") -> tuple[str, int, int]:
    """The (file, line, column) an op came from, or its nearest located ancestor's."""
    current: Operation | None = op
    while current is not None:
        if isinstance(current.location, FileLineColLoc):
            loc = current.location
            return loc.filename.data, loc.line.data, loc.column.data
        current = current.parent_op()
    return default_filename, 0, 0


def error_at(op: Operation, message: str) -> IRError:
    """An `IRError` placed at `op`, its message prefixed with the op's name."""
    filename, line, column = location_of(op)
    return IRError(filename, line, column, f"'{op_name(op)}' op {message}")


def verify_module(module: ModuleOp) -> None:
    """Verify that every value is defined before its uses, then every op, innermost first,
    reporting the first failure at the op's place. Scopes go first so that a value leaking
    into an isolated op is reported at its use, not by the isolated op's trait."""
    _verify_dominance(module.body, [])
    for op in module.walk(region_first=True):
        try:
            op.verify(verify_nested_ops=False)
        except VerifyException as error:
            message = _first_line(error).removeprefix("Operation does not verify: ")
            raise error_at(op, message) from None


def _verify_dominance(region: Region, visible: list[set[SSAValue]]) -> None:
    """In structured code a value is usable after its definition in the same block and in
    the regions nested below it, except across an op that is isolated from above."""
    for block in region.blocks:
        defined: set[SSAValue] = set(block.args)
        scopes = [*visible, defined]
        for op in block.ops:
            for index, operand in enumerate(op.operands):
                if not any(operand in scope for scope in scopes):
                    raise error_at(
                        op, f"operand #{index} is used before it is defined or outside its scope"
                    )
            for nested in op.regions:
                _verify_dominance(nested, [] if op.has_trait(IsolatedFromAbove) else scopes)
            defined.update(op.results)


def parse_and_verify(text: str, filename: str = "<stdin>") -> ModuleOp:
    module = parse_module(text, filename)
    verify_module(module)
    return module


CHECKSUM_PREFIX = "// sha256 "


def _sha256(key: str, text: str) -> str:
    return hashlib.sha256(f"{len(key)}\0{key}\0{text}".encode()).hexdigest()


def with_checksum(text: str, key: str = "") -> str:
    """`text` followed by a comment that holds the SHA-256 of `key` and `text`: how the
    caches store programs.

    A damaged or truncated entry is then recognised without parsing it, and an intact one,
    whose text was verified before it was stored, need not be verified again; the key an
    entry is stored under is part of the digest, so an intact entry copied under another
    key is recognised too. The comment comes last, so the stored file parses as it is,
    with the lines of `text`.
    """
    return f"{text}{CHECKSUM_PREFIX}{_sha256(key, text)}\n"


def checked_text(stored: str, key: str = "") -> str | None:
    """The text `with_checksum` stored under `key`, or None when `stored` has changed
    since or was stored under another key."""
    cut = stored.rfind(CHECKSUM_PREFIX)
    if cut < 0:
        return None
    text = stored[:cut]
    return text if stored == with_checksum(text, key) else None


def print_module(module: Operation, *, generic: bool = False) -> str:
    """Print a module; the generic form is the one that real MLIR parses."""
    stream = StringIO()
    Printer(stream=stream, print_generic_format=generic).print_op(module)
    stream.write("\n")
    return stream.getvalue()
