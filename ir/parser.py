"""The parsing layer over xDSL's parser: where it reads MLIR text as MLIR does, and where it
reads large programs faster.

`MLIRParser` fixes what xDSL reads differently from MLIR (hexadecimal float elements of dense
literals, string literals lexed in linear time); `LocatingParser` gives every op its
`FileLineColLoc` and parses what repeats in a program once per text: dialect types, function
signatures, the tails of one-line generic ops, and `dy.param` lines. `ir.program` is the
interface (`parse_module`); this module is its machinery.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_right
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import AnyFloat, FileLineColLoc, FunctionType, IntAttr, StringAttr
from xdsl.ir import Attribute, Operation
from xdsl.parser import AttrParser, Parser, UnresolvedOperand
from xdsl.parser.generic_parser import ParserState
from xdsl.utils.exceptions import ParseError
from xdsl.utils.lexer import Input, Span
from xdsl.utils.mlir_lexer import MLIRLexer, MLIRTokenKind

from ir import dy
from ir.torch import MAX_TYPE_NESTING

MAX_ATTRIBUTE_NESTING = MAX_TYPE_NESTING
"""How deep types and attributes may nest (`!torch.list<list<...>>`, `[[[...]]]`)."""
MAX_REGION_NESTING = 1_000
"""How deep regions may nest (`dy.if` in `dy.for` in ...). Both limits are far beyond any
program a model gives, and low enough that every later stage (verification, passes,
printing, the interpreter) runs within `DEEP_RECURSION_LIMIT` (see `ir.program`)."""


class LineIndex:
    """Turns offsets in a text into 1-based (line, column) pairs."""

    def __init__(self, text: str):
        self._line_starts = array("q", [0])
        self._line_starts.extend(match.end() for match in re.finditer("\n", text))

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
        self._depth: dict[str, int] = {}

    def parse_optional_type(self):
        with self.nesting("types and attributes", MAX_ATTRIBUTE_NESTING):
            return super().parse_optional_type()

    def parse_optional_attribute(self):
        with self.nesting("types and attributes", MAX_ATTRIBUTE_NESTING):
            return super().parse_optional_attribute()

    def _parse_tensor_literal(self):
        with self.nesting("types and attributes", MAX_ATTRIBUTE_NESTING):
            return super()._parse_tensor_literal()

    def parse_optional_region(self, arguments=None):
        with self.nesting("regions", MAX_REGION_NESTING):
            return super().parse_optional_region(arguments)

    @contextmanager
    def nesting(self, kind: str, limit: int):
        """Count how deep `kind` nests here: past `limit`, a located error instead of a
        `RecursionError` from wherever the stack happens to run out."""
        depth = self._depth.get(kind, 0) + 1
        if depth > limit:
            self.raise_error(f"{kind} nest deeper than {limit} levels")
        self._depth[kind] = depth
        try:
            yield
        finally:
            self._depth[kind] = depth - 1

    def _parse_tensor_literal_element(self) -> AttrParser._TensorLiteralElement:
        element = super()._parse_tensor_literal_element()
        digits = element.span.text.lstrip("-").lstrip()
        if type(element.value) is int and digits[:2] in ("0x", "0X"):
            return _FloatBitsElement(element.is_negative, element.value, element.span)
        return element


_SIMPLE_BODY = re.compile(r"<(?:[^<>\"\-]|<[^<>\"\-]*>)*>")
"""A dialect symbol's body without strings, arrows or deep nesting: `<[1,16,32,32],f32>`."""
_SSA_NAME = r"[0-9]+|[A-Za-z$._-][\w$.-]*"
_GENERIC_OP_LINE = re.compile(
    rf"(?P<results>%(?:{_SSA_NAME})(?:[ \t]*,[ \t]*%(?:{_SSA_NAME}))*[ \t]*=[ \t]*)?"
    r'"(?P<name>[\w.$-]+)"\((?P<operands>[^()\n]*)\)'
    r"(?P<tail>[ \t]*(?:<\{|\{|:)[^\n]*)"
)
"""A generic op on one line: results, quoted name, operands, and the tail after them (the
tail of an op with regions or successors starts with `(` or `[` and does not match)."""
_PARAM_LINE = re.compile(
    rf'%(?P<result>{_SSA_NAME})[ \t]*=[ \t]*dy\.param[ \t]+"(?P<key>[^"\\\n]+)"[ \t]*:[ \t]*'
    r"!torch\.vtensor(?P<body><[^<>\n]*>)[ \t]*(?=\n)"
)
_OPERAND = re.compile(rf"[ \t]*%({_SSA_NAME})(?:#([0-9]+))?[ \t]*(?:,|$)")
_RESULT_NAME = re.compile(rf"%({_SSA_NAME})")


@dataclass(frozen=True)
class _ParsedTail:
    """What the tail of a one-line generic op parsed to (see `LocatingParser`)."""

    op_type: type[Operation]
    properties: dict[str, Attribute]
    attributes: dict[str, Attribute]
    inputs: tuple[Attribute, ...]
    outputs: tuple[Attribute, ...]


class LocatingParser(MLIRParser):
    """Records where each op starts in the text, as its location."""

    def __init__(self, ctx: Context, text: str, filename: str, lines: LineIndex):
        super().__init__(ctx, text, filename)
        self._filename = StringAttr(filename)
        self._text = text
        self._lines = lines
        self._symbols: dict[tuple[bool, str, str], Attribute] = {}
        self._signatures: dict[str, FunctionType] = {}
        self._tails: dict[tuple[str, str], _ParsedTail] = {}
        self._in_symbol_body = False
        self._columns: dict[int, IntAttr] = {}

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
        if "." not in attr_or_dialect_name or self._in_symbol_body:
            # Nested symbols are inside a body being looked up or parsed already: scanning
            # each of them again would make deep nesting quadratic.
            return super()._parse_extended_type_or_attribute(attr_or_dialect_name, is_type)
        start = end = self.pos
        found = None
        if self._current_token.kind == MLIRTokenKind.LESS:
            # A body with at most one level of nested brackets, as most are, is found by
            # a regex; a text equal to a remembered one scans to the same end.
            simple = _SIMPLE_BODY.match(self._text, start)
            if simple is not None:
                found = self._symbols.get((is_type, attr_or_dialect_name, simple[0]))
                end = simple.end()
            if found is None:
                try:
                    end = self._raw_scan_balanced(start + 1) + 1
                except ParseError:
                    return super()._parse_extended_type_or_attribute(attr_or_dialect_name, is_type)
        key = (is_type, attr_or_dialect_name, self._text[start:end])
        found = found or self._symbols.get(key)
        if found is not None:
            if end != start:
                self._resume_from(end)
            return found
        self._in_symbol_body = True
        try:
            parsed = super()._parse_extended_type_or_attribute(attr_or_dialect_name, is_type)
        finally:
            self._in_symbol_body = False
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
        line = _GENERIC_OP_LINE.match(self._text, start)
        op = self._parse_repeated_tail(line) if line is not None else self._parse_param(start)
        if op is None:
            op = super().parse_operation()
            if line is not None:
                self._remember_tail(line, op)
        if not isinstance(op.location, FileLineColLoc):
            op.location = self._location(start)
        return op

    def _location(self, offset: int) -> FileLineColLoc:
        line, column = self._lines.line_column(offset)
        column_attr = self._columns.get(column)
        if column_attr is None:
            column_attr = self._columns[column] = IntAttr(column)
        return FileLineColLoc(self._filename, IntAttr(line), column_attr)

    def _parse_param(self, start: int) -> Operation | None:
        """`%w = dy.param "key" : !torch.vtensor<...>` of a type parsed before, built
        directly: the commonest op with a custom form, one per weight. None for any other
        line (xDSL's path then parses it)."""
        line = _PARAM_LINE.match(self._text, start)
        if line is None:
            return None
        found = self._symbols.get((True, "torch.vtensor", line["body"]))
        if found is None:
            return None
        op = dy.ParamOp.create(properties={"key": StringAttr(line["key"])}, result_types=[found])
        name_end = start + 1 + len(line["result"])
        span = Span(start, name_end, self.lexer.input)
        self._register_ssa_definition(line["result"], op.results, span)
        self._resume_from(line.end())
        return op

    def _remember_tail(self, line: re.Match, op: Operation) -> None:
        """After xDSL parsed a one-line generic op, keep what its tail (everything after
        the operands: properties, attributes, signature) parsed to, under the text of the
        tail: ops that differ only in their SSA names then take `_parse_repeated_tail`."""
        if op.regions or op.successors or "loc(" in line["tail"]:
            return  # an explicit location is the op's own, not the tail's
        if not self._ends_at(line.start(), line.end()):
            return
        attributes = {k: v for k, v in op.attributes.items() if k != "op_name__"}
        self._tails[(line["name"], line["tail"])] = _ParsedTail(
            type(op),
            dict(op.properties),
            attributes,
            tuple(operand.type for operand in op.operands),
            tuple(result.type for result in op.results),
        )

    def _parse_repeated_tail(self, line: re.Match) -> Operation | None:
        """A one-line generic op whose tail was parsed before (see `_remember_tail`),
        built without lexing it again; None when it is not one (xDSL's path then parses
        it, errors included)."""
        tail = self._tails.get((line["name"], line["tail"]))
        if tail is None:
            return None
        operands = _OPERAND.findall(line["operands"]) if line["operands"].strip() else []
        results = _RESULT_NAME.findall(line["results"] or "")
        if len(operands) != len(tail.inputs) or len(results) != len(tail.outputs):
            return None
        resolved = []
        cursor = line.start("operands")
        for (name, index), operand_type in zip(operands, tail.inputs):
            at = self._text.index("%" + name, cursor)
            cursor = at + len(name) + 1
            span = Span(at, cursor, self.lexer.input)
            resolved.append(
                self.resolve_operand(UnresolvedOperand(span, int(index or 0)), operand_type)
            )
        op = tail.op_type.create(
            operands=resolved,
            result_types=tail.outputs,
            properties=dict(tail.properties),
            attributes=dict(tail.attributes),
        )
        cursor = line.start()
        for index, name in enumerate(results):
            at = self._text.index("%" + name, cursor)
            cursor = at + len(name) + 1
            self._register_ssa_definition(
                name, op.results[index : index + 1], Span(at, cursor, self.lexer.input)
            )
        self._resume_from(line.end())
        return op
