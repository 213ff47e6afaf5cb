"""Python lists of tensors whose length is known only at run time: `!dy.list` values.

A list the evaluator can follow stays a Python list of staged tensors; one that a
data-dependent loop or branch grows becomes a `StagedList`, updated with `dy.list_append`,
measured with `dy.list_len`, read with `dy.list_get`, and joined into one tensor with
`dy.list_stack` / `dy.list_cat` (whose result has a `?` dimension).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from frontends.torch import scalars, staging
from frontends.torch.errors import callable_name
from frontends.torch.values import (
    HostScalar,
    StagedList,
    StagedTensor,
    describe,
    join_types,
    torch_dtype,
)
from ir import dy
from ir.torch import ValueTensorType

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def list_len(cx: Converter, value: StagedList, node: ast.AST) -> HostScalar:
    op = cx.emit(dy.ListLenOp(value.value), node)
    return HostScalar(op.result, 1)


def list_append(cx: Converter, target: StagedList, item: Any, node: ast.AST) -> None:
    if not isinstance(item, StagedTensor | torch.Tensor):
        raise cx.unsupported(
            node,
            "append",
            f"a list of tensors whose length depends on the data cannot hold a {describe(item)}",
        )
    item_value = staging.tensor_value(cx, item, node)
    observed = target.observed_element
    if observed is not None:
        observed = join_types(observed, item_value.type)
        if observed is None:
            raise cx.unsupported(
                node,
                "append",
                f"item {item_value.type} differs from the earlier items "
                f"{target.observed_element} in dtype or rank",
            )
    if not dy.tensor_conforms(item_value.type, target.element_type):
        raise cx.unsupported(
            node,
            "append",
            f"item {item_value.type} does not match the list's items {target.element_type}",
        )
    cx.mutations.append((target, (target.value, target.observed_element)))
    target.value = cx.emit(dy.ListAppendOp(target.value, item_value), node).result
    target.observed_element = observed or item_value.type
    if target.example_item is None:
        target.example_item = item.example if isinstance(item, StagedTensor) else item


def list_get(cx: Converter, items: StagedList, index: Any, node: ast.AST) -> StagedTensor:
    """`items[index]` (`dy.list_get`; out of range is a run-time error)."""
    from_index = scalars.scalar_value(cx, index, int, node)
    op = cx.emit(dy.ListGetOp(items.value, from_index), node)
    example = items.example_item
    if example is None:  # appended to only in a staged loop: an item of the element type
        example = _stand_in_item(cx, items, node, "indexing")
    return StagedTensor(op.result, example)


STAND_IN_SIZE = 2
"""The size of a `?` dimension in a stand-in example item (not 0 or 1, which tracing
specialises)."""


def _stand_in_item(cx: Converter, items: StagedList, node: ast.AST, what: str) -> torch.Tensor:
    element = items.element_type
    if element.shape is None or element.element_type is None:
        raise cx.unsupported(node, what, f"the list's item type {element} is not known")
    shape = [STAND_IN_SIZE if size < 0 else size for size in element.shape]
    return torch.zeros(shape, dtype=torch_dtype(element.element_type))


def list_remove(cx: Converter, target: StagedList, index: Any, node: ast.AST) -> None:
    """`del target[index]` (`dy.list_remove`), updating the list in place."""
    from_index = scalars.scalar_value(cx, index, int, node)
    cx.mutations.append((target, (target.value, target.observed_element)))
    target.value = cx.emit(dy.ListRemoveOp(target.value, from_index), node).result


def list_pop(cx: Converter, target: StagedList, index: Any, node: ast.AST) -> StagedTensor:
    """`target.pop(index)`: the item, and the list without it."""
    item = list_get(cx, target, index, node)
    list_remove(cx, target, index, node)
    return item


def list_join(cx: Converter, function: Callable, items: StagedList, dim: int, node: ast.AST):
    element = items.element_type
    if element.shape is None or element.element_type is None:
        raise cx.unsupported(
            node, callable_name(function), f"the list's item type {element} is not known"
        )
    item_example = items.example_item
    if item_example is None:
        item_example = torch.zeros(
            [max(size, 0) for size in element.shape], dtype=torch_dtype(element.element_type)
        )
    rank = len(element.shape)
    if function is torch.stack:
        position = dim if dim >= 0 else dim + rank + 1
        shape = list(element.shape)
        shape.insert(position, -1)
        op_type = dy.ListStackOp
        example = torch.stack([item_example], dim=dim)
    else:
        position = dim if dim >= 0 else dim + rank
        shape = list(element.shape)
        shape[position] = -1
        op_type = dy.ListCatOp
        example = torch.cat([item_example], dim=dim)
    result_type = ValueTensorType(shape, element.element_type)
    op = cx.emit(op_type(items.value, position, result_type), node)
    return StagedTensor(op.result, example)
