"""Hypothesis strategies for the inputs and parameters of any `dy` program, read from its
entry function's signature and its `dy.param` ops.

Every dynamic (`?`) dimension of one call gets the same size, drawn per call, so inputs
that meet in one op (`x + y` of two `[?,4]` tensors) agree, and successive calls of one
program run at different sizes. Tensor values come from a seeded generator (they shrink
to seed 0); integer tensors hold small non-negative values (valid indices), host scalars
are drawn near the values programs compare them with.
"""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Attribute

from ir import dy
from ir.torch import DYNAMIC_DIM, ValueTensorType
from runtime.torch_ops import torch_dtype_of

MAX_DYNAMIC_SIZE = 3


def entry_function(module: ModuleOp) -> dy.FuncOp:
    for op in module.ops:
        if isinstance(op, dy.FuncOp) and op.sym_name.data == dy.ENTRY_FUNCTION:
            return op
    raise ValueError(f"the module has no 'dy.func @{dy.ENTRY_FUNCTION}'")


def random_tensor(tensor_type: ValueTensorType, shape: list[int], generator) -> torch.Tensor:
    dtype = torch_dtype_of(tensor_type) or torch.float32
    if dtype == torch.bool:
        return torch.rand(shape, generator=generator) > 0.5
    if not dtype.is_floating_point:
        return torch.randint(0, 3, shape, generator=generator, dtype=dtype)
    return torch.randn(shape, generator=generator).to(dtype)


def _concrete_shape(tensor_type: ValueTensorType, dynamic_size: int) -> list[int]:
    if tensor_type.shape is None:
        return [dynamic_size]
    return [dynamic_size if d == DYNAMIC_DIM else d for d in tensor_type.shape]


def _value(draw, value_type: Attribute, dynamic_size: int, generator) -> Any:
    if isinstance(value_type, ValueTensorType):
        return random_tensor(value_type, _concrete_shape(value_type, dynamic_size), generator)
    if isinstance(value_type, dy.ListType):
        element = value_type.element_type
        return tuple(
            random_tensor(element, _concrete_shape(element, dynamic_size), generator)
            for _ in range(draw(st.integers(0, 3)))
        )
    kind = str(value_type)
    if kind == "i1":
        return draw(st.booleans())
    if kind == "i64":
        return draw(st.integers(-2, 5))
    if kind == "f64":
        return draw(st.sampled_from([0.0, -0.5, 1.5, 0.25]))
    raise ValueError(f"cannot draw an input of type {value_type}")


@st.composite
def inputs_for(draw, module: ModuleOp) -> list[Any]:
    """One call's inputs for the entry function of `module`."""
    dynamic_size = draw(st.integers(1, MAX_DYNAMIC_SIZE))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    return [_value(draw, t, dynamic_size, generator) for t in entry_function(module).arg_types]


@st.composite
def params_for(draw, module: ModuleOp) -> dict[str, torch.Tensor]:
    """A tensor for every `dy.param` key of `module`, of the declared (static) type, scaled
    down so that chains of matrix products stay finite."""
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    params = {}
    for op in module.walk():
        if isinstance(op, dy.ParamOp) and op.key.data not in params:
            tensor_type = op.result.type
            assert isinstance(tensor_type, ValueTensorType)
            tensor = random_tensor(tensor_type, list(tensor_type.shape), generator)
            params[op.key.data] = tensor * 0.6 if tensor.is_floating_point() else tensor
    return params
