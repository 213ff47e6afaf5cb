"""Expressions other than operators and calls: names, attributes, subscripts, literals of
containers, comprehensions over static iterables, lambdas and conditional expressions."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from frontends.torch import (
    attribute_logs,
    list_loops,
    lists,
    masks,
    recording,
    scalars,
    selection,
    sizes,
)
from frontends.torch.assignment import assign
from frontends.torch.branches import staged_branch
from frontends.torch.errors import first_line
from frontends.torch.joins import arrive
from frontends.torch.loops import static_items
from frontends.torch.state import PathEnded
from frontends.torch.values import (
    TENSOR_STATIC_ATTRIBUTES,
    HostScalar,
    OptionalValue,
    RuntimeChoice,
    StagedList,
    StagedMethod,
    StagedTensor,
    Undefined,
    UserFunction,
    describe,
    is_staged,
    scalar_kind,
)

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def eval_constant(cx: Converter, node: ast.Constant) -> Any:
    return node.value


def eval_name(cx: Converter, node: ast.Name) -> Any:
    frame = cx.frame
    assert frame is not None
    try:
        value = frame.lookup(node.id)
    except KeyError:
        raise cx.unsupported(
            node, f"name '{node.id}'", "it is not defined", NameError(node.id)
        ) from None
    if isinstance(value, Undefined):
        raise cx.unsupported(node, f"use of '{node.id}'", value.reason)
    return value


def eval_attribute(cx: Converter, node: ast.Attribute) -> Any:
    return get_attribute(cx, cx.eval(node.value), node.attr, node)


def get_attribute(cx: Converter, value: Any, name: str, node: ast.AST) -> Any:
    """`value.name`: static metadata of a staged tensor is read off its example; a method of
    a staged value waits for its call (`calls`)."""
    if isinstance(value, StagedTensor):
        if name == "shape":
            return sizes.shape_of(cx, value)
        if name in TENSOR_STATIC_ATTRIBUTES:
            return getattr(value.example, name)
        attribute = getattr(torch.Tensor, name, None)
        if callable(attribute):
            return StagedMethod(value, name)
        return recording.stage_call(cx, node, operator.attrgetter(name), (value,), {})
    if isinstance(value, StagedList):
        return StagedMethod(value, name)
    if isinstance(value, RuntimeChoice):
        return selection.attribute(value, name)
    if isinstance(value, HostScalar | Undefined | OptionalValue):
        raise cx.unsupported(node, f"attribute '{name}'", f"of a {describe(value)}")
    if isinstance(value, UserFunction):
        raise cx.unsupported(node, f"attribute '{name}'", "of a nested function")
    try:
        attribute = getattr(value, name)
    except AttributeError as error:
        raise cx.unsupported(node, f"attribute '{name}'", str(error), error) from None
    if isinstance(value, nn.Module):
        attribute_logs.note_read(cx, value, name, attribute)
    return attribute


def eval_subscript(cx: Converter, node: ast.Subscript) -> Any:
    value = cx.eval(node.value)
    index = cx.eval(node.slice)
    if isinstance(value, StagedTensor) or (isinstance(value, torch.Tensor) and is_staged(index)):
        return recording.stage_call(cx, node, masks.getitem, (value, index), {})
    if isinstance(value, StagedList):
        if isinstance(index, slice):
            return lists.list_slice(cx, value, index, node)
        if scalar_kind(index) is not int:
            raise cx.unsupported(node, "list index", "must be an int")
        return lists.list_get(cx, value, index, node)
    if isinstance(value, RuntimeChoice):
        return selection.choose(cx, value, lambda option: option[index], node)
    if is_staged(index):
        return selection.select(cx, value, index, node)
    try:
        return value[index]
    except Exception as error:  # noqa: BLE001 - whatever the model's own code raises
        raise cx.unsupported(node, "indexing", first_line(error), error) from None


def eval_slice(cx: Converter, node: ast.Slice) -> slice:
    parts = [None if p is None else cx.eval(p) for p in (node.lower, node.upper, node.step)]
    return slice(*parts)


def eval_tuple(cx: Converter, node: ast.Tuple) -> tuple:
    return tuple(eval_elements(cx, node.elts))


def eval_list(cx: Converter, node: ast.List) -> list:
    return eval_elements(cx, node.elts)


def eval_set(cx: Converter, node: ast.Set) -> set:
    return set(eval_elements(cx, node.elts))


def eval_elements(cx: Converter, elements: list[ast.expr]) -> list:
    items = []
    for element in elements:
        if isinstance(element, ast.Starred):
            items.extend(static_items(cx, cx.eval(element.value), element))
        else:
            items.append(cx.eval(element))
    return items


def eval_dict(cx: Converter, node: ast.Dict) -> dict:
    result = {}
    for key, value in zip(node.keys, node.values):
        if key is None:
            result.update(cx.eval(value))
        else:
            result[cx.eval(key)] = cx.eval(value)
    return result


def eval_joined_str(cx: Converter, node: ast.JoinedStr) -> str:
    parts = []
    for value in node.values:
        if isinstance(value, ast.FormattedValue):
            inner = cx.eval(value.value)
            if is_staged(inner):
                raise cx.unsupported(node, "f-string", "formats a run-time value")
            spec = cx.eval(value.format_spec) if value.format_spec else ""
            converted = {-1: inner, 115: str(inner), 114: repr(inner), 97: ascii(inner)}[
                value.conversion
            ]
            parts.append(format(converted, spec))
        else:
            parts.append(cx.eval(value))
    return "".join(parts)


def eval_lambda(cx: Converter, node: ast.Lambda) -> UserFunction:
    frame = cx.frame
    assert frame is not None
    return UserFunction(node, frame)


def eval_if_exp(cx: Converter, node: ast.IfExp) -> Any:
    condition = scalars.truth(cx, cx.eval(node.test), node.test)
    if isinstance(condition, bool):
        return cx.eval(node.body if condition else node.orelse)
    join = cx.new_join(carries_environment=False)
    arms = [lambda k, e=e: arrive(cx, join, cx.eval(e), node) for e in (node.body, node.orelse)]
    merged = staged_branch(cx, condition, arms, join, lambda: None, node)
    if not cx.reachable:
        raise PathEnded()
    return check_defined(cx, merged, node)


def check_defined(cx: Converter, value: Any, node: ast.AST) -> Any:
    """`value`, unless the paths that computed it disagreed on its type."""
    if isinstance(value, Undefined):
        raise cx.unsupported(node, "branch result", value.reason)
    return value


def eval_comprehension(
    cx: Converter,
    node: ast.expr,
    generators: list,
    produce: Callable,
    first_iterable: Any = NotImplemented,
    restage_run_time_filters: bool = False,
) -> None:
    """Unroll a comprehension over iterables known at compile time (`first_iterable`, when
    given, is the first one, already evaluated). A filter known only at run time is an
    error, or, with `restage_run_time_filters`, raises `_RunTimeFilter` for the caller to
    stage the loop instead."""
    frame = cx.frame
    assert frame is not None
    saved = dict(frame.env)

    def run(level: int) -> None:
        if level == len(generators):
            produce()
            return
        generator = generators[level]
        if generator.is_async:
            raise cx.unsupported(node, "async comprehension", "not supported")
        if level == 0 and first_iterable is not NotImplemented:
            iterable = first_iterable
        else:
            iterable = cx.eval(generator.iter)
        for item in static_items(cx, iterable, generator.iter):
            assign(cx, generator.target, item)
            conditions = [scalars.truth(cx, cx.eval(c), c) for c in generator.ifs]
            if any(isinstance(c, HostScalar) for c in conditions):
                if restage_run_time_filters:
                    raise _RunTimeFilter()
                raise cx.unsupported(node, "comprehension", "its filter depends on run-time values")
            if all(conditions):
                run(level + 1)

    try:
        run(0)
    finally:
        frame.env = saved


class _RunTimeFilter(Exception):
    """An unrolled comprehension met a filter whose truth is known only at run time."""


def eval_list_comp(cx: Converter, node: ast.ListComp) -> list | StagedList:
    items = _comprehension_items(cx, node)
    return items if isinstance(items, StagedList) else list(items)


def eval_generator_exp(cx: Converter, node: ast.GeneratorExp) -> tuple | StagedList:
    items = _comprehension_items(cx, node)
    return items if isinstance(items, StagedList) else tuple(items)


def _comprehension_items(cx: Converter, node: ast.ListComp | ast.GeneratorExp) -> list | StagedList:
    """The items, unrolled, or, when a filter depends on run-time values (or the iterable
    has a run-time length), the loop Python runs, staged (`list_loops.comprehension`): a
    list of run-time length."""
    first = cx.eval(node.generators[0].iter)
    if isinstance(first, StagedList):
        return list_loops.comprehension(cx, node, first, node.generators, node.elt)
    result: list = []
    produce = lambda: result.append(cx.eval(node.elt))
    try:
        eval_comprehension(
            cx,
            node,
            node.generators,
            produce,
            first,
            restage_run_time_filters=len(node.generators) == 1,
        )
    except _RunTimeFilter:
        return list_loops.comprehension(cx, node, first, node.generators, node.elt)
    return result


def eval_set_comp(cx: Converter, node: ast.SetComp) -> set:
    items = _comprehension_items(
        cx, ast.copy_location(ast.ListComp(node.elt, node.generators), node)
    )
    if isinstance(items, StagedList):
        raise cx.unsupported(node, "set comprehension", "its items are known only at run time")
    return set(items)


def eval_dict_comp(cx: Converter, node: ast.DictComp) -> dict:
    result: dict = {}

    def produce() -> None:
        result[cx.eval(node.key)] = cx.eval(node.value)

    eval_comprehension(cx, node, node.generators, produce)
    return result


EXPRESSIONS: dict[type[ast.expr], Callable[[Converter, Any], Any]] = {
    ast.Constant: eval_constant,
    ast.Name: eval_name,
    ast.Attribute: eval_attribute,
    ast.Subscript: eval_subscript,
    ast.Slice: eval_slice,
    ast.Tuple: eval_tuple,
    ast.List: eval_list,
    ast.Set: eval_set,
    ast.Dict: eval_dict,
    ast.JoinedStr: eval_joined_str,
    ast.Lambda: eval_lambda,
    ast.IfExp: eval_if_exp,
    ast.ListComp: eval_list_comp,
    ast.GeneratorExp: eval_generator_exp,
    ast.SetComp: eval_set_comp,
    ast.DictComp: eval_dict_comp,
}
