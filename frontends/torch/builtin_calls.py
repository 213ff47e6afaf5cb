"""Python builtins applied to staged values: `len`, `bool`, `int`, `float`, `isinstance`,
`min`/`max`/`abs` of host scalars, `sum`, and the iteration helpers over static items."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from frontends.torch import list_loops, lists, operators, scalars, selection, sizes
from frontends.torch.loops import static_items
from frontends.torch.values import HostScalar, StagedList, StagedTensor, SymSize, scalar_kind

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
