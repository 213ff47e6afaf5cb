"""Reading, verifying and writing programs: the one place where IR text becomes ops.

Every error a user can cause with IR text surfaces as an `IRError` whose message starts
with `FILE:LINE:COL: error:`, the compiler convention that editors and CI logs understand.
Ops parsed from text carry their position as a `FileLineColLoc`, so a verifier failing
after any number of passes still points at the line the op came from.
"""

from __future__ import annotations

import gc
import hashlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from io import StringIO
from typing import Any, TypeVar

from xdsl.context import Context
from xdsl.dialects.arith import Arith
from xdsl.dialects.builtin import (
    Builtin,
    FileLineColLoc,
    ModuleOp,
    UnregisteredAttr,
)
from xdsl.ir import Operation, Region, SSAValue, TypeAttribute
from xdsl.printer import Printer
from xdsl.traits import IsolatedFromAbove
from xdsl.utils.exceptions import ParseError, VerifyException

from ir.dy import Dy, op_name
from ir.parser import LineIndex, LocatingParser
from ir.torch import Torch
from ir.torch_verify import torch_op_class

T = TypeVar("T")

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


def parse_module(text: str, filename: str = "<stdin>") -> ModuleOp:
    """Parse program text (custom or generic form) into a module; does not verify.

    The cyclic garbage collector is paused meanwhile: parsing allocates hundreds of
    thousands of objects that all stay alive, and the collections their count triggers
    would traverse all of them again and again, which made parsing time superlinear."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _parse_module(text, filename)
    finally:
        if collecting:
            gc.enable()


def _parse_module(text: str, filename: str) -> ModuleOp:
    lines = LineIndex(text)
    parser: LocatingParser | None = None
    try:
        # The lexer reads the first token already when the parser is made: inside the try.
        parser = LocatingParser(ProgramContext(), text, filename, lines)
        return parser.parse_module()
    except ParseError as error:
        undefined = parser.first_undefined_use() if parser is not None else None
        if undefined is not None:
            line, column, name = undefined
            raise IRError(filename, line, column, f"use of undefined value '%{name}'") from None
        line, column = lines.line_column(error.span.start)
        raise IRError(filename, line, column, _first_line(error.msg)) from None
    except (VerifyException, ValueError, OverflowError) as error:
        # xDSL's attribute constructors check values (an integer out of its type's range)
        # with these while the parser builds them: errors in the text all the same.
        line, column = lines.line_column(parser.pos if parser is not None else 0)
        raise IRError(filename, line, column, _first_line(error)) from None
    except RecursionError:
        line, column = lines.line_column(parser.pos if parser is not None else 0)
        raise IRError(filename, line, column, "nesting too deep for the stack") from None


DEEP_RECURSION_LIMIT = 200_000
DEEP_STACK_BYTES = 1 << 30


def call_with_deep_stack(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` on a thread with a 1 GiB stack and a recursion limit to match: how
    the command-line tools run, so that a program nested as deep as the parser admits
    (`ir.parser.MAX_REGION_NESTING`) is verified, transformed, printed and run instead of
    ending in a `RecursionError`. The limit is raised only while the thread runs; its
    exceptions are raised here."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = error

    previous_limit, previous_size = sys.getrecursionlimit(), threading.stack_size()
    sys.setrecursionlimit(max(previous_limit, DEEP_RECURSION_LIMIT))
    try:
        threading.stack_size(DEEP_STACK_BYTES)
        worker = threading.Thread(target=run, name="deep-stack", daemon=True)
        worker.start()
    finally:
        threading.stack_size(previous_size)
    try:
        worker.join()
    finally:
        sys.setrecursionlimit(previous_limit)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


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
            raise error_at(op, message.removeprefix(f"'{op_name(op)}' ")) from None


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


def print_module(module: Operation, *, generic: bool = False, debuginfo: bool = False) -> str:
    """Print a module; the generic form is the one that real MLIR parses. With `debuginfo`
    every op's location follows it as `loc(...)`, which parsing reads back."""
    stream = StringIO()
    Printer(stream=stream, print_generic_format=generic, print_debuginfo=debuginfo).print_op(module)
    stream.write("\n")
    return stream.getvalue()
