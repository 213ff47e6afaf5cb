"""Tensor sizes when some are known only at run time.

A staged tensor whose type has a `?` dimension (a dynamic batch, the result of boolean
indexing) reports that dimension as a `SymSize`. A pending tensor of a stretch that may
produce such sizes is imported first, so that its shape is the one torch-mlir inferred
rather than the example's; in a stretch whose sizes are all fixed the example answers.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

import torch

from frontends.torch import staging
from frontends.torch.stretch import Pending
from frontends.torch.values import SizeOf, StagedTensor, SymSize, is_staged
from ir.torch import DYNAMIC_DIM, ValueTensorType

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


def shape_of(cx: Converter, tensor: StagedTensor) -> tuple:
    """`tensor.shape`: a `torch.Size` when every size is fixed, else a tuple whose dynamic
    entries are `SymSize`s."""
    value = tensor.value
    if isinstance(value, Pending):
        if not value.stretch.dynamic:
            return tensor.example.shape
        staging.flush(cx)
        value = tensor.value
    value_type = value.type
    assert isinstance(value_type, ValueTensorType) and value_type.shape is not None
    if DYNAMIC_DIM not in value_type.shape:
        return tensor.example.shape
    return tuple(
        SymSize(SizeOf(value, d, tensor.example), tensor.example.shape[d])
        if size == DYNAMIC_DIM
        else size
        for d, size in enumerate(value_type.shape)
    )


def product(sizes: tuple) -> Any:
    """The product of sizes, symbolic when one of them is."""
    result: Any = 1
    for size in sizes:
        result = multiply(result, size)
    return result


def multiply(left: Any, right: Any) -> Any:
    if isinstance(left, SymSize) or isinstance(right, SymSize):
        return arithmetic(ast.Mult(), left, right)
    return left * right


def arithmetic(op: ast.operator | ast.unaryop, *operands: Any) -> SymSize:
    """`left op right` (or `op operand`) of sizes and ints, as a symbolic size."""
    terms = [o.term if isinstance(o, SymSize) else o for o in operands]
    examples = [o.example if isinstance(o, SymSize) else o for o in operands]
    if isinstance(op, ast.USub):
        return SymSize((ast.USub, terms[0]), -examples[0])
    left, right = examples
    example = {
        ast.Add: lambda: left + right,
        ast.Sub: lambda: left - right,
        ast.Mult: lambda: left * right,
        ast.FloorDiv: lambda: left // right if right else 0,
        ast.Mod: lambda: left % right if right else 0,
    }[type(op)]()
    return SymSize((type(op), *terms), example)


SIZE_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)
"""Operators whose result on sizes and ints is again a size (stays symbolic)."""


def tensor_metadata(
    cx: Converter, tensor: StagedTensor, name: str, args: tuple, kwargs: dict, node: ast.AST
) -> Any:
    """`size()`, `numel()`, `dim()` and the other methods fixed by shape and dtype."""
    if is_staged((args, kwargs)):
        raise cx.unsupported(node, f".{name}()", "with run-time arguments")
    shape = shape_of(cx, tensor)
    if name == "size":
        dim = kwargs.get("dim", args[0] if args else None)
        return shape if dim is None else shape[dim]
    if name in ("numel", "nelement"):
        return product(shape)
    if name == "stride" and not isinstance(shape, torch.Size):
        raise cx.unsupported(node, ".stride()", "of a tensor with sizes known only at run time")
    return getattr(tensor.example, name)(*args, **kwargs)


def static_length(cx: Converter, tensor: StagedTensor, node: ast.AST, what: str) -> int:
    """The first dimension of `tensor`, where the construct needs it at compile time."""
    shape = shape_of(cx, tensor)
    if not shape:
        raise cx.unsupported(node, what, "of a 0-d tensor")
    if isinstance(shape[0], SymSize):
        raise cx.unsupported(node, what, "the tensor's first dimension is known only at run time")
    return shape[0]
