"""Facts read off the Python AST alone, before any evaluation: what operators mean, which
exits a statement list can take, which names a loop body may update."""

from __future__ import annotations

import ast
import operator
from collections.abc import Iterable

BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.MatMult: operator.matmul,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
}
INPLACE = {
    ast.Add: operator.iadd,
    ast.Sub: operator.isub,
    ast.Mult: operator.imul,
    ast.Div: operator.itruediv,
    ast.FloorDiv: operator.ifloordiv,
    ast.Mod: operator.imod,
    ast.Pow: operator.ipow,
    ast.MatMult: operator.imatmul,
    ast.BitAnd: operator.iand,
    ast.BitOr: operator.ior,
    ast.BitXor: operator.ixor,
}
COMPARE = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
OPERATOR_SPELLING = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}

_MUTATING_METHODS = frozenset({"append", "extend", "insert", "pop", "remove", "clear"})


def as_load(target: ast.expr) -> ast.expr:
    """An assignment target re-read as an expression (`x[i] += 1` reads `x[i]` first)."""
    loaded = ast.parse(ast.unparse(target), mode="eval").body
    ast.copy_location(loaded, target)
    for child in ast.walk(loaded):
        if hasattr(child, "lineno"):
            child.lineno = target.lineno
            child.col_offset = target.col_offset
    return loaded


def exits(statements: Iterable[ast.stmt], in_loop: bool = False) -> set[str]:
    """The kinds of exit (return, break, continue) these statements may take to outside."""
    found: set[str] = set()
    for statement in statements:
        if isinstance(statement, ast.Return):
            found.add("return")
        elif isinstance(statement, ast.Break) and not in_loop:
            found.add("break")
        elif isinstance(statement, ast.Continue) and not in_loop:
            found.add("continue")
        elif isinstance(statement, ast.For | ast.While):
            found |= exits(statement.body, True) | exits(statement.orelse, in_loop)
        elif isinstance(statement, ast.If):
            found |= exits(statement.body, in_loop) | exits(statement.orelse, in_loop)
        elif isinstance(statement, ast.With):
            found |= exits(statement.body, in_loop)
        elif isinstance(statement, ast.Try):
            handlers = [s for handler in statement.handlers for s in handler.body]
            parts = statement.body + handlers + statement.orelse + statement.finalbody
            found |= exits(parts, in_loop)
    return found


def assigned_names(statements: list[ast.stmt]) -> set[str]:
    """Names a loop body may rebind or update in place (list methods, in-place tensor ops)."""
    names: set[str] = set()
    for statement in statements:
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and (isinstance(node.func.value, ast.Name))
            ):
                method = node.func.attr
                if method in _MUTATING_METHODS or (
                    method.endswith("_") and not method.startswith("_")
                ):
                    names.add(node.func.value.id)
            elif (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Store)
                and (isinstance(node.value, ast.Name))
            ):
                names.add(node.value.id)
    return names
