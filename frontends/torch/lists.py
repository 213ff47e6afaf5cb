"""Python lists whose length is known only at run time: `!dy.list` values.

A list the evaluator can follow stays a Python list; one that a data-dependent loop or
branch grows becomes a `StagedList` of tensors, numbers, lists or tuples (`items`), updated
with `dy.list_append` / `dy.list_set` / `dy.list_remove`, measured with `dy.list_len`, read
with `dy.list_get`, sliced with `dy.list_slice`, joined into one tensor with
`dy.list_stack` / `dy.list_cat` (whose result has a `?` dimension) or, for numbers, made a
tensor with `dy.list_to_tensor`. Sorting and the builtins that iterate are in `list_loops`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from frontends.torch import guards, items, scalars
from frontends.torch.errors import callable_name
from frontends.torch.values import (
    SCALAR_KINDS,
    HostScalar,
    StagedList,
    StagedTensor,
    describe,
    element_type,
    is_unknown_item,
    join_types,
    torch_dtype,
)
from ir import dy
from ir.torch import DYNAMIC_DIM, ValueTensorType

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def list_len(cx: Converter, value: StagedList, node: ast.AST) -> HostScalar:
    op = cx.emit(dy.ListLenOp(value.value), node)
    return HostScalar(op.result, 1)


def check_owned(cx: Converter, target: StagedList, what: str, node: ast.AST) -> None:
    """Refuse an in-place update of a list read out of another run-time list."""
    if target.borrowed:
        raise cx.unsupported(
            node,
            what,
            "of a list read out of a list of run-time length, in place: the outer list "
            "would not see it (build a new list: `tokens + [word]`, `list(tokens)`)",
        )


def list_append(cx: Converter, target: StagedList, item: Any, node: ast.AST) -> None:
    check_owned(cx, target, "append", node)
    item_type = items.item_type(cx, item)
    if item_type is None:
        raise cx.unsupported(
            node,
            "append",
            f"a list whose length depends on the data cannot hold a {describe(item)} "
            "(only tensors, numbers, lists and tuples of these)",
        )
    observed = target.observed_element
    if observed is not None:
        observed = join_types(observed, item_type)
        if observed is None:
            raise cx.unsupported(
                node,
                "append",
                f"item {item_type} differs from the earlier items "
                f"{target.observed_element} in dtype, rank or kind",
            )
    element = target.element_type
    if not items.conforms(item_type, element):
        raise cx.unsupported(
            node, "append", f"item {item_type} does not match the list's items {element}"
        )
    packed = items.pack(cx, item, item_type if is_unknown_item(element) else element, node)
    cx.mutations.append((target, (target.value, target.observed_element)))
    target.value = cx.emit(dy.ListAppendOp(target.value, packed), node).result
    target.observed_element = observed or item_type
    if target.example_item is None:
        target.example_item = items.item_example(item)


def list_get(cx: Converter, target: StagedList, index: Any, node: ast.AST) -> Any:
    """`target[index]` (`dy.list_get`; out of range is a run-time error)."""
    from_index = scalars.scalar_value(cx, index, int, node)
    op = cx.emit(dy.ListGetOp(target.value, from_index), node)
    return items.unpack(cx, op.result, target.example_item, node)


def list_remove(cx: Converter, target: StagedList, index: Any, node: ast.AST) -> None:
    """`del target[index]` (`dy.list_remove`), updating the list in place."""
    check_owned(cx, target, "del", node)
    from_index = scalars.scalar_value(cx, index, int, node)
    cx.mutations.append((target, (target.value, target.observed_element)))
    target.value = cx.emit(dy.ListRemoveOp(target.value, from_index), node).result


def list_pop(cx: Converter, target: StagedList, index: Any, node: ast.AST) -> StagedTensor:
    """`target.pop(index)`: the item, and the list without it."""
    item = list_get(cx, target, index, node)
    list_remove(cx, target, index, node)
    return item


def list_join(cx: Converter, function: Callable, target: StagedList, dim: int, node: ast.AST):
    element = target.element_type
    if not isinstance(element, ValueTensorType):
        raise cx.unsupported(
            node, callable_name(function), f"of a list of {element}: only tensors join"
        )
    if element.shape is None or element.element_type is None:
        raise cx.unsupported(
            node, callable_name(function), f"the list's item type {element} is not known"
        )
    item_example = target.example_item
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
    op = cx.emit(op_type(target.value, position, result_type), node)
    return StagedTensor(op.result, example)


def list_set(cx: Converter, target: StagedList, index: Any, item: Any, node: ast.AST) -> None:
    """`target[index] = item` (`dy.list_set`), updating the list in place."""
    check_owned(cx, target, "item assignment", node)
    item_type = items.item_type(cx, item)
    element = target.element_type
    if item_type is None or not items.conforms(item_type, element) or is_unknown_item(element):
        raise cx.unsupported(
            node, "item assignment", f"a {describe(item)} into a list of {element}"
        )
    from_index = scalars.scalar_value(cx, index, int, node)
    packed = items.pack(cx, item, element, node)
    cx.mutations.append((target, (target.value, target.observed_element)))
    target.value = cx.emit(dy.ListSetOp(target.value, from_index, packed), node).result


def list_replace(cx: Converter, target: StagedList, new: StagedList, node: ast.AST) -> None:
    """Make `target` hold `new`'s items (an in-place update: `items.sort()`)."""
    check_owned(cx, target, "in-place update", node)
    cx.mutations.append((target, (target.value, target.observed_element)))
    target.value, target.observed_element = new.value, new.observed_element


def list_slice(cx: Converter, target: StagedList, bounds: slice, node: ast.AST) -> StagedList:
    """`target[start:stop]` (`dy.list_slice`): a new list."""
    if bounds.step not in (None, 1):
        raise cx.unsupported(node, "slice", "a list of run-time length sliced with a step")
    for bound in (bounds.start, bounds.stop):
        if bound is not None and not isinstance(bound, int | HostScalar):
            raise cx.unsupported(node, "slice", f"a bound that is a {describe(bound)}")
    start = scalars.scalar_value(cx, 0 if bounds.start is None else bounds.start, int, node)
    if bounds.stop is None:
        stop = list_len(cx, target, node).value
    else:
        stop = scalars.scalar_value(cx, bounds.stop, int, node)
    op = cx.emit(dy.ListSliceOp(target.value, start, stop), node)
    return StagedList(op.result, target.example_item, target.observed_element)


def list_extended(cx: Converter, target: StagedList, extra: list, node: ast.AST) -> StagedList:
    """`target + extra` for a Python list `extra`: a new list (the operands unchanged)."""
    result = StagedList(target.value, target.example_item, target.observed_element)
    for item in extra:
        list_append(cx, result, item, node)
    return result


def list_to_tensor(
    cx: Converter, target: StagedList, dtype: torch.dtype | None, node: ast.AST
) -> StagedTensor:
    """`torch.tensor(target, dtype=...)` of a list of numbers (`dy.list_to_tensor`). Without
    a dtype, torch infers int64 / float32 / bool from the items, and float32 for an empty
    list: for a list of ints or bools that may be empty, an empty one traps at run time
    rather than give a tensor of another dtype."""
    element = items.list_item_type(target)
    kind = SCALAR_KINDS.get(element)
    if kind is None:
        raise cx.unsupported(
            node, "torch.tensor()", f"of a list of run-time length holding {element}"
        )
    inferred = {bool: torch.bool, int: torch.int64, float: torch.get_default_dtype()}[kind]
    if dtype is None and inferred != torch.get_default_dtype():
        _trap_if_empty(cx, target, node)
    dtype = dtype or inferred
    result_type = ValueTensorType([DYNAMIC_DIM], element_type(dtype))
    op = cx.emit(dy.ListToTensorOp(target.value, result_type), node)
    return StagedTensor(op.result, torch.zeros([items.STAND_IN_SIZE], dtype=dtype))


def _trap_if_empty(cx: Converter, target: StagedList, node: ast.AST) -> None:
    empty = scalars.compare_scalars(cx, ast.Eq(), list_len(cx, target, node), 0, node)
    message = "torch.tensor() of an empty list is float32: pass dtype= for a list that may be empty"
    guards.trap_if(cx, empty, message, node)
