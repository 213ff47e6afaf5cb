"""Statements: the driver that runs a statement list, and one handler per statement kind.

Control flow is evaluated in continuation-passing style: a statement list runs with a
continuation `k` (what follows it). Simple statements run in order; a compound statement
(`if`, `for`, `while`, `with`, `try`) takes the rest of the list as its continuation, so that a
branch can run what follows inside its arms when it must (see `branches`). Exits (`return`,
`break`, `continue`) end the current path: as a `dy` exit op where the dialect has one, or
as an arrival at the join of their target (the end of an inlined helper, of an unrolled
loop).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from frontends.torch import (
    branches,
    exceptions,
    lists,
    loops,
    operators,
    scalars,
    sources,
    staging,
)
from frontends.torch.assignment import assign
from frontends.torch.ast_facts import as_load
from frontends.torch.errors import first_line
from frontends.torch.joins import arrive
from frontends.torch.returns import record_return
from frontends.torch.state import PathEnded, StagedLoop, UnrolledLoop
from frontends.torch.values import (
    RuntimeChoice,
    StagedList,
    UserFunction,
    describe,
    is_staged,
    scalar_kind,
)
from ir import dy

if TYPE_CHECKING:
    from frontends.torch.converter import Converter

HARMLESS_CONTEXTS = (torch.no_grad, torch.enable_grad, torch.inference_mode)


def run(cx: Converter, statements: list[ast.stmt], k: Callable[[], None]) -> None:
    """Run `statements`, then `k` on every path that falls off their end."""
    for index, statement in enumerate(statements):
        if not cx.reachable:
            return
        cx.node = statement
        compound = COMPOUND_STATEMENTS.get(type(statement))
        if compound is not None:
            rest = statements[index + 1 :]
            compound(cx, statement, lambda rest=rest: cx.exec(rest, k))
            return
        handler = SIMPLE_STATEMENTS.get(type(statement), _unsupported_statement)
        try:
            handler(cx, statement)
        except PathEnded:
            cx.reachable = False
            return
    if cx.reachable:
        k()


def _unsupported_statement(cx: Converter, statement: ast.stmt) -> None:
    raise cx.unsupported(
        statement, type(statement).__name__.lower(), "this statement is not supported"
    )


def exec_with(cx: Converter, statement: ast.With, rest: Callable[[], None]) -> None:
    for item in statement.items:
        context = cx.eval(item.context_expr)
        if not (isinstance(context, HARMLESS_CONTEXTS) or context in HARMLESS_CONTEXTS):
            raise cx.unsupported(
                item.context_expr,
                "with",
                "only torch.no_grad()/inference_mode() contexts are supported",
            )
        if item.optional_vars is not None:
            raise cx.unsupported(statement, "with ... as", "not supported")
    cx.exec(statement.body, rest)


def exec_expression(cx: Converter, statement: ast.Expr) -> None:
    cx.eval(statement.value)


def exec_assign(cx: Converter, statement: ast.Assign) -> None:
    value = cx.eval(statement.value)
    for target in statement.targets:
        assign(cx, target, value)


def exec_annotated_assign(cx: Converter, statement: ast.AnnAssign) -> None:
    if statement.value is not None:
        assign(cx, statement.target, cx.eval(statement.value))


def exec_augmented_assign(cx: Converter, statement: ast.AugAssign) -> None:
    current = cx.eval(as_load(statement.target))
    value = cx.eval(statement.value)
    result = operators.binary(cx, statement.op, current, value, statement, inplace=True)
    assign(cx, statement.target, result)


def exec_pass(cx: Converter, statement: ast.Pass) -> None:
    pass


def exec_function_def(cx: Converter, statement: ast.FunctionDef) -> None:
    frame = cx.frame
    assert frame is not None
    if statement.decorator_list:
        raise cx.unsupported(statement, "decorated nested function", "not supported")
    frame.env[statement.name] = UserFunction(statement, frame)


def exec_assert(cx: Converter, statement: ast.Assert) -> None:
    test = scalars.truth(cx, cx.eval(statement.test), statement)
    if test is False:
        raise cx.unsupported(statement, "assert", "the assertion fails for the example inputs")


def exec_delete(cx: Converter, statement: ast.Delete) -> None:
    frame = cx.frame
    assert frame is not None
    for target in statement.targets:
        if isinstance(target, ast.Name):
            frame.env.pop(target.id, None)
        elif isinstance(target, ast.Subscript):
            _delete_item(cx, target)
        else:
            raise cx.unsupported(statement, "del", "only names and items can be deleted")


def _delete_item(cx: Converter, target: ast.Subscript) -> None:
    container = cx.eval(target.value)
    index = cx.eval(target.slice)
    if isinstance(container, StagedList) and scalar_kind(index) is int:
        lists.list_remove(cx, container, index, target)
        return
    if not isinstance(container, list | dict) or is_staged(index):
        raise cx.unsupported(
            target,
            "del",
            f"of an item of a {describe(container)} (Python lists and dicts, at positions "
            "known at compile time)",
        )
    sources.check_local_update(cx, container, "del", target)
    try:
        del container[index]
    except Exception as error:  # noqa: BLE001 - whatever the model's own code raises
        raise cx.unsupported(target, "del", first_line(error), error) from None


def exec_raise(cx: Converter, statement: ast.Raise) -> None:
    raise cx.unsupported(
        statement,
        "raise",
        "the model raises an exception on this path; exceptions cannot be compiled",
        _raised_exception(cx, statement),
    )


def _raised_exception(cx: Converter, statement: ast.Raise) -> BaseException | None:
    """The exception a `raise` with a compile-time value raises (a `try` may handle it)."""
    if statement.exc is None:
        return None
    value = cx.eval(statement.exc)
    if isinstance(value, type) and issubclass(value, BaseException):
        try:
            return value()
        except Exception:  # noqa: BLE001 - a class that needs arguments
            return None
    return value if isinstance(value, BaseException) else None


# ---------------------------------------------------------------------------- exits


def exec_return(cx: Converter, statement: ast.Return) -> None:
    value = None if statement.value is None else cx.eval(statement.value)
    frame = cx.frame
    assert frame is not None
    if frame.return_join is None:
        return_each_choice(cx, value, statement)
    else:
        arrive(cx, frame.return_join, value, statement)


def return_each_choice(cx: Converter, value: Any, statement: ast.AST) -> None:
    """Return `value` from forward; a part of it chosen at run time (a value whose kind
    differs by path, merged by an inlined helper's return) is returned from each arm of
    a chain of `dy.if`s on its tag, so each path returns its own alternative."""
    choice = _first_choice(value)
    if choice is None:
        record_return(cx, value, statement)
        return
    _return_options_from(cx, value, choice, 0, statement)


def _return_options_from(
    cx: Converter, value: Any, choice: RuntimeChoice, index: int, statement: ast.AST
) -> None:
    """`if tag == case[index]: return option[index] else: ...`, the last option without a
    test (the tag always names one, and the function still ends with a `dy.return`)."""
    chosen = _substituted(value, choice, choice.options[index])
    if index == len(choice.options) - 1:
        return_each_choice(cx, chosen, statement)
        return
    taken = scalars.compare_scalars(cx, ast.Eq(), choice.selector, choice.cases[index], statement)
    if isinstance(taken, bool):
        if taken:
            return_each_choice(cx, chosen, statement)
        else:
            _return_options_from(cx, value, choice, index + 1, statement)
        return
    arms = [
        lambda k: return_each_choice(cx, chosen, statement),
        lambda k: _return_options_from(cx, value, choice, index + 1, statement),
    ]
    branches.staged_branch(cx, taken, arms, None, lambda: None, statement)
    cx.reachable = False


def _first_choice(value: Any) -> RuntimeChoice | None:
    if isinstance(value, RuntimeChoice):
        return value
    items = value.values() if isinstance(value, dict) else value
    if isinstance(value, tuple | list | dict):
        return next((c for c in map(_first_choice, items) if c is not None), None)
    return None


def _substituted(value: Any, choice: RuntimeChoice, option: Any) -> Any:
    if value is choice:
        return option
    if isinstance(value, dict):
        return {key: _substituted(item, choice, option) for key, item in value.items()}
    if isinstance(value, list):
        return [_substituted(item, choice, option) for item in value]
    if isinstance(value, tuple):
        items = [_substituted(item, choice, option) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value


def exec_break(cx: Converter, statement: ast.Break) -> None:
    loop = innermost_loop(cx, statement, "break")
    if isinstance(loop, UnrolledLoop):
        loops.leave_unrolled(cx, loop, statement)
    else:
        loops.staged_loop_exit(cx, loop, dy.BreakOp, statement)


def exec_continue(cx: Converter, statement: ast.Continue) -> None:
    loop = innermost_loop(cx, statement, "continue")
    if isinstance(loop, UnrolledLoop):
        assert loop.next_iteration is not None
        staging.flush(cx)
        loop.next_iteration()
        cx.reachable = False
    else:
        loops.staged_loop_exit(cx, loop, dy.ContinueOp, statement)


def innermost_loop(cx: Converter, node: ast.AST, what: str) -> UnrolledLoop | StagedLoop:
    frame = cx.frame
    assert frame is not None
    if not frame.loops:
        raise cx.unsupported(node, what, "outside a loop")
    return frame.loops[-1]


COMPOUND_STATEMENTS: dict[type[ast.stmt], Callable[[Converter, Any, Callable[[], None]], None]] = {
    ast.If: branches.exec_if,
    ast.For: loops.exec_for,
    ast.While: loops.exec_while,
    ast.With: exec_with,
    ast.Try: exceptions.exec_try,
}
"""Statements that take the rest of their statement list as a continuation."""

SIMPLE_STATEMENTS: dict[type[ast.stmt], Callable[[Converter, Any], None]] = {
    ast.Expr: exec_expression,
    ast.Assign: exec_assign,
    ast.AnnAssign: exec_annotated_assign,
    ast.AugAssign: exec_augmented_assign,
    ast.Return: exec_return,
    ast.Break: exec_break,
    ast.Continue: exec_continue,
    ast.Pass: exec_pass,
    ast.FunctionDef: exec_function_def,
    ast.Assert: exec_assert,
    ast.Delete: exec_delete,
    ast.Raise: exec_raise,
}
