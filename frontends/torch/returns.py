"""Returns of the entry function: every path's `dy.return`, emitted once all are known.

A `return` of `forward` may come from any depth (inside branches and staged loops). Each
one ends its path; what it returns is recorded with the block it ends. When the whole body
has been converted, the returned values of all paths are merged as a join merges them:
the same Python structure on every path, tensors whose sizes differ between paths (a
sequence that grew for a data-dependent number of steps) returned with `?` there, lists of
different lengths as `!dy.list`, values that are None on some paths with a presence flag.
Then every recorded block ends with a `dy.return` of the merged leaves, and the structure
becomes the function's `dy.result_tree`.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from xdsl.ir import Block

from frontends.torch import joins, staging
from frontends.torch.items import is_record, record_class_name, record_fields
from frontends.torch.plans import (
    CarryPlan,
    Conflict,
    Container,
    Hole,
    Keep,
    OptionalNode,
    UnionNode,
    add_leaf,
    materialize,
)
from frontends.torch.values import (
    SCALAR_KINDS,
    SCALAR_TYPES,
    HostScalar,
    StagedList,
    StagedTensor,
    SymSize,
    Undefined,
    describe,
    scalar_kind,
)
from ir import dy
from ir.torch import ValueTensorType

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


@dataclass(eq=False)
class ReturnPath:
    """A path that returned: the block it ends in, its (frozen) value and the statement."""

    block: Block
    value: Any
    node: ast.AST
    inputs: list[Any]
    """The value of each program input's handle there (in-place updates of the inputs)."""


def record_return(cx: Converter, value: Any, node: ast.AST) -> None:
    """End the current path with a return of `value` from the entry function."""
    undefined = _first_undefined(value)
    if undefined is not None:
        raise cx.unsupported(node, "return", undefined.reason)
    staging.flush(cx)
    inputs = [handle.value for _, handle in cx.inputs]
    cx.returns.append(ReturnPath(cx.block, joins.freeze(value, cx.frozen_constants), node, inputs))
    cx.reachable = False


def _first_undefined(value: Any) -> Undefined | None:
    if isinstance(value, Undefined):
        return value
    if isinstance(value, tuple | list):
        items = value
    elif isinstance(value, dict):
        items = list(value.values())
    else:
        return None
    return next((u for u in map(_first_undefined, items) if u is not None), None)


def moved_block(cx: Converter, old: Block, new: Block) -> None:
    """The ops of `old`, with the return that ends it, now end `new`."""
    for path in cx.returns:
        if path.block is old:
            path.block = new


def emit_returns(cx: Converter) -> tuple[str, list, list, list]:
    """End every returning path with its `dy.return`; the result tree (JSON), the result
    types of the entry function, the inputs it updates in place ([input, result]) and the
    tensors it appends to module attributes ([attribute path, result])."""
    paths = cx.returns
    if not paths:
        raise cx.unsupported(None, "forward", "no path through it returns")
    plan = CarryPlan(columns=[[] for _ in paths], unions=True)
    template = joins.merge(cx, [path.value for path in paths], plan, None)
    tree = _result_tree(cx, template, plan, paths)
    updated = []
    for index, (_, handle) in enumerate(cx.inputs):
        entry = cx.block.args[index]
        values = [path.inputs[index] for path in paths]
        if all(value is entry for value in values):
            continue
        column = [StagedTensor(value, handle.example) for value in values]
        hole = add_leaf(plan, column, "tensor", entry.type, handle.example)
        updated.append([index, hole.index])
    appended = []
    for logged in cx.logged_appends:
        value = logged.value
        example = value.example if isinstance(value, StagedTensor) else value
        value_type = staging.tensor_type_of(cx, value)
        hole = add_leaf(plan, [value] * len(paths), "tensor", value_type, example)
        appended.append([logged.path, hole.index])
    for path, column in zip(paths, plan.columns):
        with cx.at(path.block):
            operands = [
                materialize(cx, value, kind, path.node, expected)
                for value, kind, expected in zip(column, plan.kinds, plan.types)
            ]
            cx.emit(dy.ReturnOp(*operands), path.node)
    return json.dumps(tree, separators=(",", ":")), list(plan.types), updated, appended


def _result_tree(cx: Converter, node: Any, plan: CarryPlan, paths: list[ReturnPath]) -> Any:
    """JSON of the returned structure; leaves are result indices tagged with a kind."""
    if isinstance(node, Conflict):
        raise cx.unsupported(
            paths[-1].node,
            "return",
            f"forward returns values of different structure or types on different paths: "
            f"{node.reason}",
        )
    if isinstance(node, Container):
        items = [_result_tree(cx, item, plan, paths) for item in node.items]
        if node.kind is dict:
            return {"dict": dict(zip(node.keys, items))}
        if node.kind in (tuple, list):
            return {"tuple" if node.kind is tuple else "list": items}
        return {"record": [record_class_name(node.kind), record_fields(node.kind), items]}
    if isinstance(node, OptionalNode):
        present = _result_tree(cx, node.present, plan, paths)
        return {"optional": [present, _result_tree(cx, node.value, plan, paths)]}
    if isinstance(node, UnionNode):
        alternatives = [_result_tree(cx, item, plan, paths) for item in node.alternatives]
        return {"union": [_result_tree(cx, node.tag, plan, paths), alternatives]}
    if isinstance(node, Keep):
        node = _kept_leaf(cx, node.value, plan, paths)
        if isinstance(node, Keep):
            return {"const": node.value}
        if isinstance(node, Container):
            return _result_tree(cx, node, plan, paths)
    assert isinstance(node, Hole)
    kind = plan.kinds[node.index]
    if kind == "tensor":
        return {"tensor": node.index}
    if kind == "list":
        element = plan.types[node.index].element_type
        if not isinstance(element, ValueTensorType) and element not in SCALAR_KINDS:
            raise cx.unsupported(
                paths[-1].node,
                "return",
                f"a list of run-time length holding {element}: only lists of tensors or "
                "numbers are returned (return a tensor, or one field)",
            )
        return {"tensor_list": node.index}
    return {kind.__name__: node.index}


def _kept_leaf(cx: Converter, value: Any, plan: CarryPlan, paths: list[ReturnPath]) -> Any:
    """A value every path returns alike: a constant stays in the tree, a run-time value
    (or a tensor computed at compile time) is a result all the same."""
    column = [value] * len(paths)
    if value is None or type(value) in (bool, int, float, str):
        return Keep(value)
    if isinstance(value, StagedTensor | torch.Tensor):
        value_type = staging.tensor_type_of(cx, value)
        example = value.example if isinstance(value, StagedTensor) else value
        return add_leaf(plan, column, "tensor", value_type, example)
    if isinstance(value, StagedList):
        return add_leaf(plan, column, "list", value.value.type, value.example_item)
    if isinstance(value, HostScalar | SymSize):
        kind = scalar_kind(value)
        return add_leaf(plan, column, kind, SCALAR_TYPES[kind], value.example)
    if type(value) is list or is_record(value):
        items = [_kept_leaf(cx, item, plan, paths) for item in value]
        return Container(type(value), items)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = [_kept_leaf(cx, item, plan, paths) for item in value.values()]
        return Container(dict, items, list(value))
    raise cx.unsupported(paths[-1].node, "return", f"cannot return a {describe(value)}")
