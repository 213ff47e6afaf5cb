"""Containers indexed by a value known only at run time: hard routing.

`self.experts[int(choice)](x)`, `self.branches[idx.item()]`, a dict of modules keyed by a
run-time int, `outputs[np.argmax(confidences)]`: the index selects among items the
evaluator knows. A list of tensors becomes a `!dy.list` read with `dy.list_get`; anything
else (modules, functions, tuples, numbers) becomes a `dy.switch` with one case per item,
whose default region traps (Python would raise IndexError / KeyError there). Modules and
functions are chosen lazily (`RuntimeChoice`): calling the choice runs the call inside
each case, so each expert is inlined or staged with its own weights.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from frontends.torch import recording, reductions, scalars
from frontends.torch.branches import staged_switch
from frontends.torch.joins import arrive
from frontends.torch.plans import list_element, materialize
from frontends.torch.state import PathEnded
from frontends.torch.values import (
    HostScalar,
    RuntimeChoice,
    StagedTensor,
    SymSize,
    Undefined,
    describe,
    is_staged,
    same,
)
from ir import dy
from ir.dy import ListType

if TYPE_CHECKING:
    from frontends.torch.converter import Converter

_VALUE_TYPES = (StagedTensor, torch.Tensor, HostScalar, SymSize, bool, int, float, type(None))


def select(cx: Converter, container: Any, index: Any, node: ast.AST) -> Any:
    """`container[index]` for a container the evaluator knows and an index it does not."""
    index = _run_time_int(cx, index, node)
    if isinstance(container, dict | nn.ModuleDict):
        keys = list(container.keys())
        if not all(type(key) is int for key in keys):
            raise cx.unsupported(node, "indexing", "a dict indexed at run time must have int keys")
        options = list(container.values())
        choice = RuntimeChoice(index, keys, options, f"key not in a dict of {len(keys)}")
    elif isinstance(container, list | tuple | nn.ModuleList | nn.Sequential):
        options = list(container)
        if _tensors_of_one_kind(cx, options) and isinstance(container, list | tuple):
            return _list_get(cx, options, index, node)
        selector = _non_negative(cx, index, len(options), node)
        message = f"index out of range for a {type(container).__name__} of {len(options)}"
        choice = RuntimeChoice(selector, list(range(len(options))), options, message)
    else:
        raise cx.unsupported(
            node,
            "indexing",
            f"a {type(container).__name__} indexed by a value known only at run time",
        )
    if all(_is_value(option) for option in options):
        return choose(cx, choice, lambda option: option, node)
    return choice


def choose(
    cx: Converter, choice: RuntimeChoice, compute: Callable[[Any], Any], node: ast.AST
) -> Any:
    """`compute(option)` for the option the choice's selector picks at run time: one
    `dy.switch` case per option, their results merged."""
    known = choice.selector.possible
    if known is not None and len(known) == 1 and next(iter(known)) in choice.cases:
        return compute(choice.options[choice.cases.index(next(iter(known)))])
    join = cx.new_join(carries_environment=False)
    arms = [
        lambda k, option=option: arrive(cx, join, compute(option), node)
        for option in choice.options
    ]
    result = staged_switch(cx, choice.selector, choice.cases, arms, join, node, choice.message)
    if not cx.reachable:
        raise PathEnded()
    if isinstance(result, Undefined):
        raise cx.unsupported(node, "run-time choice", result.reason)
    return result


def attribute(choice: RuntimeChoice, name: str) -> Any:
    """`choice.name`: the attribute when every option has the same one, else a choice of
    the options' attributes."""
    values = [getattr(option, name) for option in choice.options]
    if all(same(value, values[0]) for value in values):
        return values[0]
    return RuntimeChoice(choice.selector, choice.cases, values, choice.message)


def _run_time_int(cx: Converter, index: Any, node: ast.AST) -> HostScalar:
    if isinstance(index, StagedTensor):
        if index.example.dtype.is_floating_point or index.example.numel() != 1:
            raise cx.unsupported(node, "indexing", "a container index must be one integer")
        index = scalars.item(cx, index, node)
    if isinstance(index, SymSize):
        index = scalars.materialize_size(cx, index, node)
    if not isinstance(index, HostScalar) or index.kind is float:
        raise cx.unsupported(node, "indexing", f"a container index cannot be a {describe(index)}")
    return scalars.convert_scalar(cx, index, int, node)


def _non_negative(cx: Converter, index: HostScalar, length: int, node: ast.AST) -> HostScalar:
    """`index + length` where Python counts a negative index from the end."""
    possible = index.possible
    if possible is not None and all(value >= 0 for value in possible):
        return index
    negative = scalars.compare_scalars(cx, ast.Lt(), index, 0, node)
    shifted = scalars.scalar_arith(cx, ast.Add(), index, length, node)
    return scalars.select(cx, negative, shifted, index, node)


def _is_value(option: Any) -> bool:
    if isinstance(option, tuple | list):
        return all(_is_value(item) for item in option)
    return isinstance(option, _VALUE_TYPES)


def _tensors_of_one_kind(cx: Converter, options: list) -> bool:
    if not options or not all(isinstance(o, StagedTensor | torch.Tensor) for o in options):
        return False
    element, _ = list_element(cx, [options])
    return element is not None


def _list_get(cx: Converter, options: list, index: HostScalar, node: ast.AST) -> StagedTensor:
    element, example = list_element(cx, [options])
    items = materialize(cx, options, "list", node, ListType(element))
    op = cx.emit(dy.ListGetOp(items, index.value), node)
    position = index.example if -len(options) <= index.example < len(options) else 0
    chosen = options[position]
    return StagedTensor(op.result, chosen.example if isinstance(chosen, StagedTensor) else chosen)


def sort(cx: Converter, items: list, key: Any, reverse: Any, node: ast.AST) -> list:
    """`sorted(items, key=..., reverse=...)` of a list the evaluator knows, by keys known
    only at run time: a stable sort of the stacked keys, then each position of the result
    chooses its item at run time (Python's sort is stable too, also with reverse=True)."""
    if not isinstance(reverse, bool):
        raise cx.unsupported(node, "sorted()", "reverse must be known at compile time")
    keys = [item if key is None else cx.call(key, (item,), {}, node) for item in items]
    if not is_staged(keys):
        order = sorted(range(len(items)), key=lambda i: keys[i], reverse=reverse)
        return [items[i] for i in order]
    if not items:
        return []
    stacked = reductions.stack_numbers(cx, keys, node)
    indices = recording.stage_call(cx, node, _stable_order, (stacked,), {"descending": reverse})
    result = []
    for position in range(len(items)):
        picked = recording.stage_call(cx, node, operator.getitem, (indices, position), {})
        selector = scalars.item(cx, picked, node)
        choice = RuntimeChoice(selector, list(range(len(items))), items, "sort index out of range")
        result.append(choose(cx, choice, lambda option: option, node))
    return result


def _stable_order(keys: torch.Tensor, descending: bool) -> torch.Tensor:
    """The permutation a stable sort of `keys` gives, from pairwise comparisons (torch-mlir
    has no stable sort; the lists sorted here are short): item i goes to the position that
    counts the items ordered before it, ties kept in list order."""
    count = keys.shape[0]
    positions = torch.arange(count)
    mine, theirs = keys[:, None], keys[None, :]
    ahead = (theirs > mine) if descending else (theirs < mine)
    tied_earlier = (theirs == mine) & (positions[None, :] < positions[:, None])
    rank = (ahead | tied_earlier).sum(1)
    return (rank[None, :] == positions[:, None]).long().argmax(1)


def assign_at(cx: Converter, container: list, index: Any, value: Any, node: ast.AST) -> None:
    """`container[index] = value` for a Python list and an index known only at run time:
    one `dy.switch` case per position, each yielding the list with that position replaced;
    out of range traps as Python raises IndexError."""
    selector = _non_negative(cx, _run_time_int(cx, index, node), len(container), node)
    options = [
        [value if i == j else item for i, item in enumerate(container)]
        for j in range(len(container))
    ]
    choice = RuntimeChoice(
        selector,
        list(range(len(container))),
        options,
        f"index out of range for a list of {len(container)}",
    )
    container[:] = choose(cx, choice, lambda option: option, node)
