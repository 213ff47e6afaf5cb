"""Host scalars: Python bools, ints and floats known only at run time (i1 / i64 / f64).

`.item()` of a one-element tensor becomes `dy.item`; conditions (`if t`, `bool(t)`,
comparisons) end here as i1 values; arithmetic, comparisons, `min`/`max`/`abs` on host
scalars become `arith` ops. A host scalar carries, when known, the finite set of values it
can take, so that a comparison with one possible outcome folds at compile time.
"""

from __future__ import annotations

import ast
import operator
from typing import TYPE_CHECKING, Any

import torch
from xdsl.dialects import arith
from xdsl.dialects.builtin import FloatAttr, IntegerAttr, f64, i1, i64
from xdsl.ir import SSAValue

from frontends.torch import ast_facts, recording, sizes, staging
from frontends.torch.stretch import Pending
from frontends.torch.values import (
    HostScalar,
    OptionalValue,
    SizeOf,
    SizeTerm,
    StagedList,
    StagedTensor,
    SymSize,
    Undefined,
    UserFunction,
    combine_possible,
    example_of,
    scalar_kind,
)
from ir import dy
from ir.dy import scalar_type_for_dtype

if TYPE_CHECKING:
    from frontends.torch.converter import Converter

_INT_PREDICATES = {
    ast.Lt: "slt",
    ast.LtE: "sle",
    ast.Gt: "sgt",
    ast.GtE: "sge",
    ast.Eq: "eq",
    ast.NotEq: "ne",
}


_FLOAT_PREDICATES = {
    ast.Lt: "olt",
    ast.LtE: "ole",
    ast.Gt: "ogt",
    ast.GtE: "oge",
    ast.Eq: "oeq",
    ast.NotEq: "une",
}


_INT_ARITH = {
    ast.Add: arith.AddiOp,
    ast.Sub: arith.SubiOp,
    ast.Mult: arith.MuliOp,
    ast.FloorDiv: arith.FloorDivSIOp,
}


_FLOAT_ARITH = {
    ast.Add: arith.AddfOp,
    ast.Sub: arith.SubfOp,
    ast.Mult: arith.MulfOp,
    ast.Div: arith.DivfOp,
}


_BOOL_ARITH = {ast.BitAnd: arith.AndIOp, ast.BitOr: arith.OrIOp, ast.BitXor: arith.XOrIOp}


def scalar_value(cx: Converter, value: Any, kind: type, node: ast.AST) -> SSAValue:
    """The SSA value of a host scalar, a symbolic size or a Python number, as `kind`."""
    if isinstance(value, SymSize):
        value = materialize_size(cx, value, node)
    if isinstance(value, HostScalar):
        if value.kind is kind:
            return value.value
        return convert_scalar(cx, value, kind, node).value
    if kind is bool:
        attr = IntegerAttr(int(bool(value)), i1)
    elif kind is int:
        attr = IntegerAttr(int(value), i64)
    else:
        attr = FloatAttr(float(value), f64)
    return cx.emit(arith.ConstantOp(attr), node).result


def materialize_size(cx: Converter, size: SymSize, node: ast.AST) -> HostScalar:
    """A symbolic size as a host int: `dy.dim` of the tensors it measures, then `arith`."""

    def value_of(term: SizeTerm) -> HostScalar | int:
        if isinstance(term, SizeOf):
            op = cx.emit(dy.DimOp(term.tensor, term.dim), node)
            return HostScalar(op.result, term.example.shape[term.dim])
        if not isinstance(term, tuple):
            return term
        operator_type, *operands = term
        values = [value_of(operand) for operand in operands]
        if operator_type is ast.USub:
            return scalar_arith(cx, ast.Sub(), 0, values[0], node)
        return scalar_arith(cx, operator_type(), values[0], values[1], node)

    result = value_of(size.term)
    if isinstance(result, int):
        return HostScalar(scalar_value(cx, result, int, node), result)
    return result


def as_scalar(cx: Converter, value: HostScalar | SymSize, node: ast.AST) -> HostScalar:
    """A host scalar for `value` (a symbolic size becomes `dy.dim` ops)."""
    return materialize_size(cx, value, node) if isinstance(value, SymSize) else value


def item(cx: Converter, tensor: StagedTensor, node: ast.AST) -> HostScalar:
    if tensor.example.numel() != 1:
        raise cx.unsupported(
            node, ".item()", f"the tensor has {tensor.example.numel()} elements, not one"
        )
    if isinstance(tensor.value, Pending):
        staging.flush(cx)
    tensor_value = tensor.value
    assert isinstance(tensor_value, SSAValue)
    result_type = scalar_type_for_dtype(tensor_value.type.element_type)
    op = cx.emit(dy.ItemOp(tensor_value, result_type), node)
    example = tensor.example.item()
    return HostScalar(op.result, example)


MAX_TOLIST_ITEMS = 256
"""`.tolist()` reads every item with its own `dy.item`: meant for small tensors (a few
depths or lengths), not for data."""


def to_list(cx: Converter, tensor: StagedTensor, node: ast.AST) -> Any:
    """`tensor.tolist()`: nested Python lists of host scalars (one `dy.item` each)."""
    shape = sizes.shape_of(cx, tensor)
    if not isinstance(shape, torch.Size):
        raise cx.unsupported(node, ".tolist()", "of a tensor whose size is known only at run time")
    count = tensor.example.numel()
    if count > MAX_TOLIST_ITEMS:
        raise cx.unsupported(
            node, ".tolist()", f"of {count} items (at most {MAX_TOLIST_ITEMS} become host values)"
        )
    flat = recording.stage_call(cx, node, torch.Tensor.reshape, (tensor, (-1,)), {})
    items = [
        item(cx, recording.stage_call(cx, node, torch.Tensor.__getitem__, (flat, i), {}), node)
        for i in range(count)
    ]

    def nest(dims: tuple, start: int) -> Any:
        if not dims:
            return items[start]
        stride = count_of(dims[1:])
        return [nest(dims[1:], start + i * stride) for i in range(dims[0])]

    return nest(tuple(shape), 0)


def count_of(dims: tuple) -> int:
    total = 1
    for size in dims:
        total *= size
    return total


def tensor_predicate(
    cx: Converter, function: Any, args: tuple, kwargs: dict, node: ast.AST
) -> bool | HostScalar:
    """`torch.equal(a, b)` / `torch.allclose(a, b, ...)` of run-time tensors, as a host bool
    (a condition of an `if`, most of the time)."""
    if function is torch.equal:
        first, second = args
        first_shape = _shape(cx, first)
        second_shape = _shape(cx, second)
        if any(isinstance(size, SymSize) for size in (*first_shape, *second_shape)):
            raise cx.unsupported(
                node, "torch.equal", "of tensors whose sizes are known only at run time"
            )
        if len(first_shape) != len(second_shape) or any(
            type(a) is int and type(b) is int and a != b for a, b in zip(first_shape, second_shape)
        ):
            return False

        reduced = recording.stage_call(cx, node, _all_equal, (first, second), {})
    else:
        reduced = recording.stage_call(cx, node, _all_close, args, kwargs)
    return truth(cx, reduced, node)


def _shape(cx: Converter, value: Any) -> tuple:
    if isinstance(value, StagedTensor):
        return tuple(sizes.shape_of(cx, value))
    return tuple(value.shape)


def _all_equal(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.eq(a, b).all()


def _all_close(a: torch.Tensor, b: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return torch.isclose(a, b, *args, **kwargs).all()


def all_or_any(cx: Converter, is_all: bool, items: list, node: ast.AST) -> bool | HostScalar:
    """`all(items)` / `any(items)`: folded where an item's truth is known at compile time,
    the rest combined with `arith.andi` / `arith.ori`."""
    staged: list[HostScalar] = []
    for value in items:
        truth_value = truth(cx, value, node)
        if isinstance(truth_value, bool):
            if truth_value != is_all:
                return truth_value
            continue
        staged.append(truth_value)
    if not staged:
        return is_all
    combine = arith.AndIOp if is_all else arith.OrIOp
    combined = staged[0]
    for other in staged[1:]:
        example = (
            (combined.example and other.example) if is_all else (combined.example or other.example)
        )
        combined = HostScalar(cx.emit(combine(combined.value, other.value), node).result, example)
    return combined


def truth(cx: Converter, value: Any, node: ast.AST) -> bool | HostScalar:
    """Python truthiness: a bool when known at compile time, else an i1 HostScalar."""
    if isinstance(value, StagedTensor):
        return truth(cx, item(cx, value, node), node)
    if isinstance(value, SymSize):
        value = materialize_size(cx, value, node)
    if isinstance(value, HostScalar):
        return convert_scalar(cx, value, bool, node)
    if isinstance(value, StagedList):
        length = HostScalar(cx.emit(dy.ListLenOp(value.value), node).result, 1)
        return compare_scalars(cx, ast.NotEq(), length, 0, node)
    if isinstance(value, Undefined):
        raise cx.unsupported(node, "condition", value.reason)
    if isinstance(value, OptionalValue):
        raise cx.unsupported(
            node,
            "condition",
            "the truth of a value that may be None; test it with 'is not None'",
        )
    if isinstance(value, UserFunction):
        return True
    return bool(value)


def as_host_bool(cx: Converter, condition: bool | HostScalar, node: ast.AST) -> HostScalar:
    if isinstance(condition, HostScalar):
        return condition
    return HostScalar(scalar_value(cx, condition, bool, node), condition)


def convert_scalar(cx: Converter, scalar: HostScalar, kind: type, node: ast.AST) -> HostScalar:
    if scalar.kind is kind:
        return scalar
    if kind is bool:
        zero = scalar_value(cx, 0 if scalar.kind is int else 0.0, scalar.kind, node)
        if scalar.kind is int:
            op = arith.CmpiOp(scalar.value, zero, "ne")
        else:
            op = arith.CmpfOp(scalar.value, zero, "une")
        return HostScalar(cx.emit(op, node).result, bool(scalar.example))
    if kind is int:
        if scalar.kind is bool:
            op = arith.ExtUIOp(scalar.value, i64)
        else:
            op = arith.FPToSIOp(scalar.value, i64)
        return HostScalar(cx.emit(op, node).result, int(scalar.example))
    widened = convert_scalar(cx, scalar, int, node) if scalar.kind is bool else scalar
    op = arith.SIToFPOp(widened.value, f64)
    return HostScalar(cx.emit(op, node).result, float(scalar.example))


def compare_scalars(
    cx: Converter, op: ast.cmpop, left: Any, right: Any, node: ast.AST
) -> HostScalar | bool:
    outcomes = combine_possible(ast_facts.COMPARE[type(op)], left, right)
    if outcomes is not None and len(outcomes) == 1:
        return bool(next(iter(outcomes)))
    kinds = {scalar_kind(left), scalar_kind(right)}
    kind = float if float in kinds else int
    lhs = scalar_value(cx, left, kind, node)
    rhs = scalar_value(cx, right, kind, node)
    example = ast_facts.COMPARE[type(op)](example_of(left), example_of(right))
    if kind is float:
        compare = arith.CmpfOp(lhs, rhs, _FLOAT_PREDICATES[type(op)])
    else:
        compare = arith.CmpiOp(lhs, rhs, _INT_PREDICATES[type(op)])
    return HostScalar(cx.emit(compare, node).result, example, outcomes)


def scalar_arith(
    cx: Converter, op: ast.operator, left: Any, right: Any, node: ast.AST
) -> HostScalar:
    kinds = {scalar_kind(left), scalar_kind(right)}
    example = ast_facts.BINARY[type(op)](example_of(left), example_of(right))
    if kinds == {bool} and type(op) in _BOOL_ARITH:
        lhs, rhs = (scalar_value(cx, v, bool, node) for v in (left, right))
        return HostScalar(cx.emit(_BOOL_ARITH[type(op)](lhs, rhs), node).result, example)
    kind = float if float in kinds or isinstance(op, ast.Div) else int
    if kind is int and isinstance(op, ast.Mod):
        return _python_int_modulo(cx, left, right, example, node)
    table = _FLOAT_ARITH if kind is float else _INT_ARITH
    if type(op) not in table:
        raise cx.unsupported(
            node,
            f"'{ast_facts.OPERATOR_SPELLING.get(type(op), '?')}' on host scalars",
            f"not supported for Python {kind.__name__}s",
        )
    lhs, rhs = (scalar_value(cx, v, kind, node) for v in (left, right))
    possible = combine_possible(ast_facts.BINARY[type(op)], left, right) if kind is int else None
    return HostScalar(cx.emit(table[type(op)](lhs, rhs), node).result, example, possible)


def _python_int_modulo(cx: Converter, left: Any, right: Any, example: int, node: ast.AST):
    """Python's `a % b` takes the sign of `b`: `a - b * (a // b)` with flooring division
    (`arith.remsi` truncates, as C does)."""
    lhs, rhs = (scalar_value(cx, v, int, node) for v in (left, right))
    quotient = cx.emit(arith.FloorDivSIOp(lhs, rhs), node).result
    product = cx.emit(arith.MuliOp(rhs, quotient), node).result
    possible = combine_possible(operator.mod, left, right)
    return HostScalar(cx.emit(arith.SubiOp(lhs, product), node).result, example, possible)


def negate(cx: Converter, truth: bool | HostScalar, node: ast.AST) -> bool | HostScalar:
    if isinstance(truth, bool):
        return not truth
    true = scalar_value(cx, True, bool, node)
    return HostScalar(cx.emit(arith.XOrIOp(truth.value, true), node).result, not truth.example)


def min_max_abs(cx: Converter, function: Any, args: tuple, node: ast.AST) -> Any:
    if function is abs:
        (value,) = args
        negated = scalar_arith(cx, ast.Sub(), 0 if value.kind is not float else 0.0, value, node)
        negative = compare_scalars(cx, ast.Lt(), value, 0, node)
        return select(cx, negative, negated, value, node)
    # As Python's max/min: a later item replaces the result only when it compares greater
    # (smaller), so a NaN first stays and a NaN later is skipped.
    result = args[0]
    for other in args[1:]:
        replace = compare_scalars(
            cx, ast.Gt() if function is max else ast.Lt(), other, result, node
        )
        result = select(cx, replace, other, result, node)
    return result


def select(
    cx: Converter, condition: HostScalar | bool, if_true: Any, if_false: Any, node: ast.AST
) -> Any:
    if isinstance(condition, bool):
        return if_true if condition else if_false
    kinds = {scalar_kind(if_true), scalar_kind(if_false)}
    kind = float if float in kinds else int
    lhs = scalar_value(cx, if_true, kind, node)
    rhs = scalar_value(cx, if_false, kind, node)
    example = example_of(if_true) if condition.example else example_of(if_false)
    return HostScalar(cx.emit(arith.SelectOp(condition.value, lhs, rhs), node).result, example)
