"""Operators: arithmetic, unary, boolean and comparison operators on every kind of value.

On staged tensors an operator is a recorded tensor call; on host scalars it is `arith`;
on compile-time values it is Python's own. `and`/`or` short-circuit on what is known at
compile time; after an operand known only at run time the rest is evaluated in a `dy.if`,
and the result is the i1 truth of the operands.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from xdsl.dialects import arith

from frontends.torch import list_loops, lists, recording, scalars, sizes
from frontends.torch.ast_facts import BINARY, COMPARE, INPLACE
from frontends.torch.branches import staged_branch
from frontends.torch.joins import arrive
from frontends.torch.scalars import negate
from frontends.torch.state import PathEnded
from frontends.torch.values import (
    HostScalar,
    OptionalValue,
    StagedList,
    StagedMethod,
    StagedTensor,
    SymSize,
    Undefined,
    describe,
    is_staged,
    scalar_kind,
)

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def eval_bin_op(cx: Converter, node: ast.BinOp) -> Any:
    return binary(cx, node.op, cx.eval(node.left), cx.eval(node.right), node)


def _list_operator(
    cx: Converter, op: ast.operator, left: Any, right: Any, node: ast.AST, inplace: bool
) -> Any:
    """`+` / `+=` of lists, one of whose length is known only at run time."""
    lists_only = all(isinstance(v, list | StagedList) for v in (left, right))
    if not isinstance(op, ast.Add) or not lists_only:
        raise cx.unsupported(node, "operator", f"between {describe(left)} and {describe(right)}")
    if isinstance(left, StagedList) and isinstance(right, list):
        if inplace:
            for item in right:
                lists.list_append(cx, left, item, node)
            return left
        return lists.list_extended(cx, left, right, node)
    if inplace and isinstance(left, list):
        raise cx.unsupported(node, "operator", "+= of a list of run-time length to a Python list")
    return list_loops.concatenated(cx, left, right, node, inplace)


def binary(
    cx: Converter, op: ast.operator, left: Any, right: Any, node: ast.AST, inplace: bool = False
) -> Any:
    table = INPLACE if inplace else BINARY
    function = table.get(type(op), BINARY[type(op)])
    if isinstance(left, StagedList) or isinstance(right, StagedList):
        return _list_operator(cx, op, left, right, node, inplace)
    if isinstance(left, StagedTensor) or isinstance(right, StagedTensor):
        if not isinstance(left, StagedTensor):
            function = BINARY[type(op)]
        return recording.stage_call(cx, node, function, (left, right), {})
    if _size_arithmetic(op, left, right):
        return sizes.arithmetic(op, left, right)
    if isinstance(left, HostScalar | SymSize) or isinstance(right, HostScalar | SymSize):
        if isinstance(left, torch.Tensor) or isinstance(right, torch.Tensor):
            return recording.stage_call(cx, node, BINARY[type(op)], (left, right), {})
        if scalar_kind(left) is None or scalar_kind(right) is None:
            raise cx.unsupported(
                node, "operator", f"between {describe(left)} and {describe(right)}"
            )
        return scalars.scalar_arith(cx, op, left, right, node)
    for value in (left, right):
        if isinstance(value, Undefined):
            raise cx.unsupported(node, "operator", value.reason)
        if isinstance(value, OptionalValue):
            raise cx.unsupported(node, "operator", f"on a {describe(value)}")
    return function(left, right)


def _size_arithmetic(op: ast.operator, left: Any, right: Any) -> bool:
    """Whether `left op right` is arithmetic on sizes that stays a symbolic size."""
    return (
        (isinstance(left, SymSize) or isinstance(right, SymSize))
        and isinstance(op, sizes.SIZE_OPERATORS)
        and all(isinstance(v, SymSize) or type(v) is int for v in (left, right))
    )


def eval_unary_op(cx: Converter, node: ast.UnaryOp) -> Any:
    operand = cx.eval(node.operand)
    if isinstance(node.op, ast.Not):
        return negate(cx, scalars.truth(cx, operand, node.operand), node)
    function = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}[
        type(node.op)
    ]
    if isinstance(operand, StagedTensor):
        return recording.stage_call(cx, node, function, (operand,), {})
    if isinstance(operand, SymSize) and isinstance(node.op, ast.USub | ast.UAdd):
        return operand if isinstance(node.op, ast.UAdd) else sizes.arithmetic(node.op, operand)
    if isinstance(operand, SymSize):
        operand = scalars.materialize_size(cx, operand, node)
    if isinstance(operand, HostScalar):
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.USub) and operand.kind is not bool:
            return scalars.scalar_arith(
                cx, ast.Sub(), 0 if operand.kind is int else 0.0, operand, node
            )
        if isinstance(node.op, ast.Invert) and operand.kind is bool:
            return scalars.scalar_arith(cx, ast.BitXor(), operand, True, node)
        raise cx.unsupported(node, "unary operator", f"on a host {operand.kind.__name__}")
    return function(operand)


def eval_bool_op(cx: Converter, node: ast.BoolOp) -> Any:
    return _bool_operands(cx, node, node.values)


_SIMPLE_NODES = (
    ast.Name, ast.Constant, ast.Attribute, ast.Compare, ast.UnaryOp, ast.BoolOp, ast.BinOp,
    ast.expr_context, ast.cmpop, ast.boolop, ast.unaryop, ast.operator,
)  # fmt: skip


def _is_simple(node: ast.expr) -> bool:
    """Names, attributes, constants and operators on them: nothing that calls, indexes or
    reduces, so evaluating it on a run that does not need it changes nothing."""
    return all(isinstance(part, _SIMPLE_NODES) for part in ast.walk(node))


def _bool_operands(cx: Converter, node: ast.BoolOp, operands: list[ast.expr]) -> Any:
    """`and` / `or` of `operands`: a compile-time operand decides as in Python. After an
    operand known only at run time, simple operands (`_is_simple`) are evaluated at once
    and combined as i1 host scalars; any other is evaluated only on the runs that need it
    (a `dy.if`), as Python does: `h.sum() < 0.5 or x.max() > 1.0` must not take the max of
    an empty `x` when the sum decided."""
    is_and = isinstance(node.op, ast.And)
    result: Any = None
    staged: list[HostScalar] = []
    for position, value_node in enumerate(operands):
        if staged and not _is_simple(value_node):
            truth = _combine(cx, node, staged)
            return _short_circuit(cx, node, truth, operands[position:])
        value = cx.eval(value_node)
        truth = scalars.truth(cx, value, value_node)
        if isinstance(truth, bool):
            if truth != is_and:
                # `run-time and False` is falsy, `run-time or True` truthy, on every run.
                return value
            result = value
            continue
        staged.append(truth)
    return _combine(cx, node, staged) if staged else result


def _combine(cx: Converter, node: ast.BoolOp, staged: list[HostScalar]) -> HostScalar:
    is_and = isinstance(node.op, ast.And)
    combined = staged[0]
    combine = arith.AndIOp if is_and else arith.OrIOp
    for other in staged[1:]:
        example = (
            (combined.example and other.example) if is_and else (combined.example or other.example)
        )
        combined = HostScalar(cx.emit(combine(combined.value, other.value), node).result, example)
    return combined


def _short_circuit(
    cx: Converter, node: ast.BoolOp, truth: HostScalar, rest: list[ast.expr]
) -> HostScalar:
    is_and = isinstance(node.op, ast.And)
    join = cx.new_join(carries_environment=False)

    def decided(_continuation: Callable[[], None]) -> None:
        arrive(cx, join, scalars.as_host_bool(cx, not is_and, node), node)

    def evaluate_rest(_continuation: Callable[[], None]) -> None:
        value = _bool_operands(cx, node, rest)
        arrive(cx, join, scalars.as_host_bool(cx, scalars.truth(cx, value, node), node), node)

    arms = [evaluate_rest, decided] if is_and else [decided, evaluate_rest]
    merged = staged_branch(cx, truth, arms, join, lambda: None, node)
    if not cx.reachable:
        raise PathEnded()
    return merged


def eval_compare(cx: Converter, node: ast.Compare) -> Any:
    left = cx.eval(node.left)
    results = []
    for op, right_node in zip(node.ops, node.comparators):
        right = cx.eval(right_node)
        results.append(compare(cx, op, left, right, node))
        left = right
    if len(results) == 1:
        return results[0]
    if any(isinstance(r, StagedTensor) for r in results):
        combined = results[0]
        for other in results[1:]:
            combined = recording.stage_call(cx, node, operator.and_, (combined, other), {})
        return combined
    if all(isinstance(r, bool) for r in results):
        return all(results)
    truths = [scalars.as_host_bool(cx, scalars.truth(cx, r, node), node) for r in results]
    combined = truths[0]
    for other in truths[1:]:
        combined = HostScalar(
            cx.emit(arith.AndIOp(combined.value, other.value), node).result,
            combined.example and other.example,
        )
    return combined


def _holds_size(value: Any) -> bool:
    return isinstance(value, tuple | list) and any(isinstance(v, SymSize) for v in value)


def _compare_shapes(cx: Converter, op: ast.cmpop, left: Any, right: Any, node: ast.AST) -> Any:
    """`==` / `!=` of shapes with sizes known only at run time, element by element."""
    if not isinstance(op, ast.Eq | ast.NotEq) or not all(
        isinstance(v, tuple | list) for v in (left, right)
    ):
        raise cx.unsupported(node, "comparison", "of shapes with sizes known only at run time")
    equal: Any = len(left) == len(right)
    for a, b in zip(left, right) if equal else ():
        same = compare(cx, ast.Eq(), a, b, node)
        if same is False:
            equal = False
            break
        if same is not True:
            equal = same if equal is True else _and(cx, equal, same, node)
    return negate(cx, equal, node) if isinstance(op, ast.NotEq) else equal


def _and(cx: Converter, left: HostScalar, right: HostScalar, node: ast.AST) -> HostScalar:
    return HostScalar(
        cx.emit(arith.AndIOp(left.value, right.value), node).result,
        left.example and right.example,
    )


def compare(cx: Converter, op: ast.cmpop, left: Any, right: Any, node: ast.AST) -> Any:
    method = next((v for v in (left, right) if isinstance(v, StagedMethod)), None)
    if method is not None and not isinstance(op, ast.Is | ast.IsNot):
        raise cx.unsupported(node, "comparison", "of a tensor method that is not called")
    if isinstance(op, ast.Is | ast.IsNot):
        optional = left if isinstance(left, OptionalValue) else right
        if isinstance(optional, OptionalValue):
            if (left if optional is right else right) is not None:
                raise cx.unsupported(
                    node, "'is'", "a value that may be None can only be compared with None"
                )
            if isinstance(op, ast.IsNot):
                return optional.present
            return negate(cx, optional.present, node)
        same = left is right
        return same if isinstance(op, ast.Is) else not same
    if isinstance(op, ast.In | ast.NotIn):
        if is_staged(left) or is_staged(right):
            raise cx.unsupported(node, "'in'", "on run-time values")
        found = left in right
        return found if isinstance(op, ast.In) else not found
    if isinstance(left, StagedTensor) or isinstance(right, StagedTensor):
        return recording.stage_call(cx, node, COMPARE[type(op)], (left, right), {})
    if isinstance(left, HostScalar | SymSize) or isinstance(right, HostScalar | SymSize):
        if isinstance(left, torch.Tensor) or isinstance(right, torch.Tensor):
            return recording.stage_call(cx, node, COMPARE[type(op)], (left, right), {})
        if scalar_kind(left) is None or scalar_kind(right) is None:
            raise cx.unsupported(
                node, "comparison", f"between {describe(left)} and {describe(right)}"
            )
        return scalars.compare_scalars(cx, op, left, right, node)
    if _holds_size(left) or _holds_size(right):
        return _compare_shapes(cx, op, left, right, node)
    for value in (left, right):
        if isinstance(value, StagedList | Undefined):
            raise cx.unsupported(node, "comparison", f"of a {describe(value)}")
    return COMPARE[type(op)](left, right)


EXPRESSIONS: dict[type[ast.expr], Callable[[Converter, Any], Any]] = {
    ast.BinOp: eval_bin_op,
    ast.UnaryOp: eval_unary_op,
    ast.BoolOp: eval_bool_op,
    ast.Compare: eval_compare,
}
