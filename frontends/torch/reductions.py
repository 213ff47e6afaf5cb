"""Reductions over Python lists of run-time numbers: what research code computes on the
host with numpy or builtins, e.g. `np.argmax(confidences)` over a list of 0-d tensors.

The items (0-d or one-element staged tensors, host scalars, Python numbers) are stacked
into one tensor and reduced there, so the result is one staged op and, for numpy's
scalar results, one `dy.item`. numpy and torch agree on ties (the first index) and NaN
(NaN wins, its first index).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from frontends.torch import recording, scalars, staging
from frontends.torch.values import HostScalar, StagedTensor, SymSize, is_staged

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def _numpy_reduction(reduce: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    def reduction(cx: Converter, items: list, node: ast.AST) -> Any:
        stacked = _stack(cx, items, node, flatten=True)
        return scalars.item(cx, recording.stage_call(cx, node, reduce, (stacked,), {}), node)

    return reduction


def _builtin_extreme(pick: Callable) -> Callable:
    """Python's `max`/`min` of tensors returns the winning item itself."""

    def reduction(cx: Converter, items: list, node: ast.AST) -> Any:
        if not all(isinstance(item, StagedTensor | torch.Tensor) for item in items):
            return NotImplemented
        stacked = _stack(cx, items, node, flatten=False)
        return recording.stage_call(cx, node, pick, (stacked,), {})

    return reduction


REDUCTIONS: dict[Any, Callable] = {
    np.argmax: _numpy_reduction(torch.argmax),
    np.argmin: _numpy_reduction(torch.argmin),
    np.max: _numpy_reduction(torch.amax),
    np.amax: _numpy_reduction(torch.amax),
    np.min: _numpy_reduction(torch.amin),
    np.amin: _numpy_reduction(torch.amin),
    np.sum: _numpy_reduction(torch.sum),
    np.mean: _numpy_reduction(lambda t: torch.mean(t.double())),
    max: _builtin_extreme(lambda t: torch.amax(t, dim=0)),
    min: _builtin_extreme(lambda t: torch.amin(t, dim=0)),
}
"""Reductions of one list argument of run-time values, by the function the model calls."""


def reduce_list(cx: Converter, function: Any, args: tuple, kwargs: dict, node: ast.AST) -> Any:
    """The reduction of a list of run-time values, or NotImplemented when `function` is not
    one (or is not called on one such list)."""
    try:
        reduction = REDUCTIONS.get(function)
    except TypeError:
        return NotImplemented
    if reduction is None or len(args) != 1 or kwargs:
        return NotImplemented
    items = args[0]
    if not isinstance(items, list | tuple) or not items or not is_staged(items):
        return NotImplemented
    if not all(_is_number(item) for item in items):
        return NotImplemented
    return reduction(cx, list(items), node)


def tensor_of_numbers(
    cx: Converter, function: Any, args: tuple, kwargs: dict, node: ast.AST
) -> Any:
    """`torch.tensor(data)` / `torch.as_tensor(data)` where `data` is a run-time number or a
    flat list of them (`torch.tensor([beam.tokens[-1]])`): the numbers stacked in the
    program, with the dtype torch would infer (their promoted type) or the one given.
    torch.tensor cannot run on the traced values themselves: it reads their data.
    NotImplemented for every other call."""
    if function not in (torch.tensor, torch.as_tensor) or len(args) != 1:
        return NotImplemented
    data = args[0]
    if set(kwargs) - {"dtype", "device"} or not is_staged(data) or is_staged(kwargs):
        return NotImplemented
    if isinstance(data, HostScalar | SymSize):
        stacked = _stack(cx, [data], node, flatten=True)
        stacked = recording.stage_call(cx, node, torch.squeeze, (stacked, 0), {})
    elif isinstance(data, list | tuple) and data and all(_is_scalar(item) for item in data):
        stacked = _stack(cx, list(data), node, flatten=True)
    else:
        return NotImplemented
    dtype = kwargs.get("dtype")
    if dtype is None or dtype == stacked.example.dtype:
        return stacked
    return recording.stage_call(cx, node, torch.Tensor.to, (stacked, dtype), {})


def _is_scalar(item: Any) -> bool:
    if isinstance(item, StagedTensor):
        return item.example.dim() == 0
    if isinstance(item, torch.Tensor):
        return item.dim() == 0
    return isinstance(item, HostScalar | SymSize) or type(item) in (bool, int, float)


def _is_number(item: Any) -> bool:
    if isinstance(item, StagedTensor):
        return item.example.numel() == 1
    if isinstance(item, torch.Tensor):
        return item.numel() == 1
    return isinstance(item, HostScalar | SymSize) or type(item) in (bool, int, float)


def stack_numbers(cx: Converter, items: list, node: ast.AST) -> StagedTensor:
    """Run-time numbers (host scalars, one-element tensors, Python numbers) as one 1-d
    tensor, in list order."""
    return _stack(cx, items, node, flatten=True)


def _stack(cx: Converter, items: list, node: ast.AST, flatten: bool) -> StagedTensor:
    """The items as one tensor (their promoted dtype), in list order."""
    tensors = []
    for item in items:
        if isinstance(item, HostScalar | SymSize):
            item = staging.scalar_tensor(cx, scalars.as_scalar(cx, item, node), node)
        elif not isinstance(item, StagedTensor | torch.Tensor):
            item = torch.tensor(item)
        tensors.append(item)
    examples = [t.example if isinstance(t, StagedTensor) else t for t in tensors]
    dtype = examples[0].dtype
    for example in examples[1:]:
        dtype = torch.promote_types(dtype, example.dtype)

    def stack(*parts: torch.Tensor) -> torch.Tensor:
        parts = [p.reshape(()) if flatten else p for p in parts]
        return torch.stack([p.to(dtype) for p in parts])

    return recording.stage_call(cx, node, stack, tuple(tensors), {})
