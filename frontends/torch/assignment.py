"""Assignment targets: names, tuple unpacking, item assignment."""

from __future__ import annotations

import ast
import operator
from typing import TYPE_CHECKING, Any

import torch

from frontends.torch import lists, masks, recording, selection, sizes, sources, staging
from frontends.torch.errors import first_line
from frontends.torch.values import (
    HostScalar,
    StagedList,
    StagedTensor,
    Undefined,
    describe,
    is_staged,
    scalar_kind,
)

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def assign(cx: Converter, target: ast.expr, value: Any) -> None:
    frame = cx.frame
    assert frame is not None
    if isinstance(target, ast.Name):
        frame.env[target.id] = value
    elif isinstance(target, ast.Tuple | ast.List):
        if any(isinstance(element, ast.Starred) for element in target.elts):
            raise cx.unsupported(target, "starred assignment", "not supported")
        items = unpack(cx, value, len(target.elts), target)
        for element, item in zip(target.elts, items):
            assign(cx, element, item)
    elif isinstance(target, ast.Subscript):
        container = cx.eval(target.value)
        index = cx.eval(target.slice)
        if isinstance(container, torch.Tensor) and (is_staged(value) or is_staged(index)):
            container = staging.promote(cx, container, target)
        if isinstance(container, StagedTensor):
            recording.stage_call(cx, target, masks.setitem, (container, index, value), {})
        elif isinstance(container, StagedList):
            if scalar_kind(index) is not int:
                raise cx.unsupported(target, "item assignment", "a list index must be an int")
            lists.list_set(cx, container, index, value, target)
        elif is_staged(index):
            if not isinstance(container, list):
                raise cx.unsupported(
                    target,
                    "item assignment",
                    f"a {describe(container)} updated at a position known only at run time",
                )
            sources.check_local_update(cx, container, "item assignment", target)
            selection.assign_at(cx, container, index, value, target)
        else:
            if isinstance(container, list | dict):
                sources.check_local_update(cx, container, "item assignment", target)
            try:
                container[index] = value
            except Exception as error:  # noqa: BLE001 - whatever the model's own code raises
                raise cx.unsupported(target, "item assignment", first_line(error), error) from None
    else:
        raise cx.unsupported(
            target,
            "assignment",
            f"assigning to {type(target).__name__} is not supported "
            "(the model's attributes must not change in forward)",
        )


def unpack(cx: Converter, value: Any, count: int, node: ast.AST) -> list:
    """`a, b = value`: the items of a value whose length is known at compile time."""
    if isinstance(value, StagedTensor):
        if sizes.static_length(cx, value, node, "unpacking") != count:
            raise cx.unsupported(node, "unpacking", f"cannot unpack {value} into {count}")
        return [
            recording.stage_call(cx, node, operator.getitem, (value, i), {}) for i in range(count)
        ]
    if isinstance(value, StagedList | HostScalar | Undefined):
        raise cx.unsupported(node, "unpacking", "the value has no compile-time length")
    items = list(value)
    if len(items) != count:
        raise cx.unsupported(node, "unpacking", f"expected {count} values, got {len(items)}")
    return items
