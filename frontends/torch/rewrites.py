"""Source rewrites applied before evaluation: returns from inside `while` loops of inlined
helpers.

A `return` inside a staged `while` of an inlined helper leaves towards the end of the
helper, a point no `dy` exit reaches: a `dy.while` can only be left by `dy.break`. As
AutoGraph does, such a return becomes an assignment to a slot plus a `break`; after each
loop that may have returned, the slot is tested: another `break` while a `while` still
encloses it, the real `return` outside them. (A return inside `for` loops alone needs no
rewrite: those loops are unrolled, and their paths reach the helper's end one by one.) The
slot is None until a return fills it with a 1-tuple, so its test is `is not None`, which
the evaluator narrows: the return value is plain inside the test's arm.
"""

from __future__ import annotations

import ast
import copy

RETURN_SLOT = "__dy_return"


def lower_while_returns(function: ast.FunctionDef) -> ast.FunctionDef:
    """`function` with every `return` inside a `while` loop turned into slot-and-break (the
    same node when it has none)."""
    if not _rewritten_returns(function.body, while_above=False):
        return function
    rewritten = copy.deepcopy(function)
    first = rewritten.body[0]
    initial = ast.Assign([ast.Name(RETURN_SLOT, ast.Store())], ast.Constant(None))
    rewritten.body = [ast.copy_location(initial, first), *_rewrite(rewritten.body, False)]
    return ast.fix_missing_locations(rewritten)


def _rewritten_returns(statements: list[ast.stmt], while_above: bool) -> bool:
    """Whether these statements hold a return that the rewrite changes."""
    for statement in statements:
        if isinstance(statement, ast.Return) and while_above:
            return True
        if isinstance(statement, ast.For | ast.While):
            inside = while_above or isinstance(statement, ast.While)
            if _rewritten_returns(statement.body, inside):
                return True
            if _rewritten_returns(statement.orelse, while_above):
                return True
        elif isinstance(statement, ast.If):
            if _rewritten_returns(statement.body + statement.orelse, while_above):
                return True
        elif isinstance(statement, ast.With):
            if _rewritten_returns(statement.body, while_above):
                return True
    return False


def _rewrite(statements: list[ast.stmt], while_above: bool) -> list[ast.stmt]:
    rewritten: list[ast.stmt] = []
    for statement in statements:
        if isinstance(statement, ast.Return) and while_above:
            rewritten.extend(_slot_and_break(statement))
        elif isinstance(statement, ast.For | ast.While):
            inside = while_above or isinstance(statement, ast.While)
            returns = _rewritten_returns(statement.body, inside)
            statement.body = _rewrite(statement.body, inside)
            statement.orelse = _rewrite(statement.orelse, while_above)
            rewritten.append(statement)
            if returns:
                rewritten.append(_after_loop(statement, while_above))
        elif isinstance(statement, ast.If):
            statement.body = _rewrite(statement.body, while_above)
            statement.orelse = _rewrite(statement.orelse, while_above)
            rewritten.append(statement)
        elif isinstance(statement, ast.With):
            statement.body = _rewrite(statement.body, while_above)
            rewritten.append(statement)
        else:
            rewritten.append(statement)
    return rewritten


def _slot_and_break(statement: ast.Return) -> list[ast.stmt]:
    value = statement.value if statement.value is not None else ast.Constant(None)
    fill = ast.Assign([ast.Name(RETURN_SLOT, ast.Store())], ast.Tuple([value], ast.Load()))
    return [ast.copy_location(fill, statement), ast.copy_location(ast.Break(), statement)]


def _after_loop(loop: ast.For | ast.While, while_above: bool) -> ast.stmt:
    """`if __dy_return is not None: break` (a `while` still encloses the loop), else
    `if __dy_return is not None: return __dy_return[0]`."""
    test = ast.Compare(ast.Name(RETURN_SLOT, ast.Load()), [ast.IsNot()], [ast.Constant(None)])
    if while_above:
        leave: ast.stmt = ast.Break()
    else:
        slot = ast.Subscript(ast.Name(RETURN_SLOT, ast.Load()), ast.Constant(0), ast.Load())
        leave = ast.Return(slot)
    end = ast.copy_location(ast.If(test, [leave], []), loop)
    end.lineno = getattr(loop, "end_lineno", loop.lineno)
    return end
