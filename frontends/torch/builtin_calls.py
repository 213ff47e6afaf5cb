"""Python builtins applied to staged values: `len`, `bool`, `int`, `float`, `isinstance`,
`min`/`max`/`abs` of host scalars, `sum`, the iteration helpers over static items, the
builtins of lists of run-time length, and `math` functions of run-time numbers."""

from __future__ import annotations

import ast
import math
from typing import TYPE_CHECKING, Any

import torch

from frontends.torch import (
    guards,
    list_loops,
    lists,
    operators,
    recording,
    scalars,
    selection,
    sizes,
)
from frontends.torch.loops import static_items
from frontends.torch.values import (
    HostScalar,
    StagedList,
    StagedTensor,
    SymSize,
    element_type,
    scalar_kind,
)
from ir import dy
from ir.torch import ValueTensorType

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def call_builtin(cx: Converter, function: Any, args: tuple, kwargs: dict, node: ast.AST) -> Any:
    value = args[0] if args else None
    if function is len:
        if isinstance(value, StagedTensor):
            shape = sizes.shape_of(cx, value)
            if not shape:
                raise cx.unsupported(node, "len()", "of a 0-d tensor")
            return shape[0]
        if isinstance(value, StagedList):
            return lists.list_len(cx, value, node)
    if isinstance(value, StagedList) and len(args) == 1:
        return _over_staged_list(cx, function, value, kwargs, node)
    if function is sum and isinstance(value, StagedList) and len(args) == 2 and not kwargs:
        return list_loops.total(cx, value, args[1], node)
    if function is bool:
        return scalars.truth(cx, value, node)
    if function in (int, float) and len(args) == 1:
        kind = function
        if isinstance(value, SymSize):
            if kind is int:
                return value
            value = scalars.materialize_size(cx, value, node)
        if isinstance(value, StagedTensor):
            value = scalars.item(cx, value, node)
        if isinstance(value, HostScalar):
            return scalars.convert_scalar(cx, value, kind, node)
    if function is isinstance:
        probe = value.example if isinstance(value, StagedTensor | HostScalar | SymSize) else value
        return isinstance(probe, args[1])
    if function in (zip, enumerate, list, tuple, reversed, range) and not any(
        isinstance(a, HostScalar | StagedList | SymSize) for a in args
    ):
        items = [static_items(cx, a, node) if isinstance(a, StagedTensor) else a for a in args]
        return function(*items, **kwargs)
    if function in (min, max, abs) and all(scalar_kind(a) is not None for a in args):
        return scalars.min_max_abs(cx, function, args, node)
    if function in (all, any) and len(args) == 1 and isinstance(value, list | tuple):
        return scalars.all_or_any(cx, function is all, list(value), node)
    if function is sorted and isinstance(value, list | tuple):
        return selection.sort(
            cx, list(value), kwargs.get("key"), kwargs.get("reverse", False), node
        )
    if function in (min, max) and len(args) == 1 and isinstance(value, list | tuple):
        if all(scalar_kind(a) is not None for a in value) and value:
            return scalars.min_max_abs(cx, function, tuple(value), node)
    if function is sum and isinstance(value, list | tuple):
        total: Any = args[1] if len(args) > 1 else 0
        for item in value:
            total = operators.binary(cx, ast.Add(), total, item, node)
        return total
    raise cx.unsupported(node, f"{function.__name__}()", "on values known only at run time")


def _over_staged_list(
    cx: Converter, function: Any, value: StagedList, kwargs: dict, node: ast.AST
) -> Any:
    """Builtins of one list whose length is known only at run time."""
    if function is sorted and set(kwargs) <= {"key", "reverse"}:
        return list_loops.sort(cx, value, kwargs.get("key"), kwargs.get("reverse", False), node)
    if function in (max, min):
        return list_loops.extreme(cx, function is max, value, kwargs, node)
    if function in (all, any) and not kwargs:
        return list_loops.all_or_any(cx, function is all, value, node)
    if function is sum and not kwargs:
        return list_loops.total(cx, value, 0, node)
    if function is list and not kwargs:
        return StagedList(value.value, value.example_item, value.observed_element)
    raise cx.unsupported(
        node, f"{function.__name__}()", "on a list whose length depends on the data"
    )


MATH_FUNCTIONS = {
    math.log: torch.log,
    math.log2: torch.log2,
    math.log10: torch.log10,
    math.log1p: torch.log1p,
    math.exp: torch.exp,
    math.expm1: torch.expm1,
    math.sqrt: torch.sqrt,
    math.tanh: torch.tanh,
}
"""`math` functions of one float, and the tensor function that computes the same."""


def math_function(cx: Converter, function: Any, value: Any, node: ast.AST) -> HostScalar:
    """`math.log(p)` of a run-time number: the function on a 0-d float64 tensor (math computes
    in double precision too), read back as a host float. Where math raises on a finite
    argument (`log(0)`, `exp(1000)`: a domain or range error) the tensor gives an infinity or
    NaN: the program stops there with a located error instead."""
    as_float = scalars.convert_scalar(cx, value, float, node)
    example = torch.tensor(float(as_float.example), dtype=torch.float64)
    op = dy.ScalarToTensorOp(as_float.value, ValueTensorType([], element_type(torch.float64)))
    argument = StagedTensor(cx.emit(op, node).result, example)
    result = recording.stage_call(cx, node, MATH_FUNCTIONS[function], (argument,), {})
    fails = recording.stage_call(cx, node, _fails_where_math_raises, (argument, result), {})
    message = f"math.{function.__name__}: math domain or range error"
    guards.trap_if(cx, scalars.item(cx, fails, node), message, node)
    return scalars.item(cx, result, node)


def _fails_where_math_raises(argument: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(argument) & ~torch.isfinite(result)


def is_math_function(function: Any) -> bool:
    try:
        return function in MATH_FUNCTIONS
    except TypeError:  # an unhashable callable
        return False
