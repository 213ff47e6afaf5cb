"""Seed programs for the IR fuzzers, and the inputs and parameters to run them with."""

from __future__ import annotations

import random
from typing import Any

import torch
from xdsl.dialects.builtin import ModuleOp, f64, i1, i64

from ir import dy
from ir.torch import ValueTensorType
from ir.torch_verify import torch_dtypes
from tests.support.snippets import SNIPPETS

T = "!torch.vtensor<[2,4],f32>"
NETWORK = f"""builtin.module {{
  dy.func @forward(%x: {T}, %n: i64) -> ({T}, i64) {{
    %c0 = arith.constant 0 : i64
    %c1 = arith.constant 1 : i64
    %int1 = "torch.constant.int"() <{{value = 1 : i64}}> : () -> !torch.int
    %int0 = "torch.constant.int"() <{{value = 0 : i64}}> : () -> !torch.int
    %ninf = "torch.constant.float"() <{{value = 0xFFF0000000000000 : f64}}> : () -> !torch.float
    %r, %k = dy.for %i = %c0 to %n step %c1 iter_args(%h = %x, %s = %c0) -> ({T}, i64) {{
      %w = dy.param "fc.weight" : !torch.vtensor<[4,4],f32>
      %b = dy.param "fc.bias" : !torch.vtensor<[4],f32>
      %y = "torch.aten.linear"(%h, %w, %b) : ({T}, !torch.vtensor<[4,4],f32>, !torch.vtensor<[4],f32>) -> {T}
      %neg = "torch.aten.lt.Scalar"(%y, %int0) : ({T}, !torch.int) -> !torch.vtensor<[2,4],i1>
      %m = "torch.aten.masked_fill.Scalar"(%y, %neg, %ninf) : ({T}, !torch.vtensor<[2,4],i1>, !torch.float) -> {T}
      %false = "torch.constant.bool"() <{{value = false}}> : () -> !torch.bool
      %p = "torch.aten._softmax"(%m, %int1, %false) : ({T}, !torch.int, !torch.bool) -> {T}
      %none = "torch.constant.none"() : () -> !torch.none
      %total = "torch.aten.sum"(%p, %none) : ({T}, !torch.none) -> !torch.vtensor<[],f32>
      %v = dy.item %total : !torch.vtensor<[],f32> -> f64
      %half = arith.constant 1.5 : f64
      %big = arith.cmpf ogt, %v, %half : f64
      %s2 = arith.addi %s, %c1 : i64
      %next = dy.if %big -> ({T}) {{
        %t = "torch.aten.tanh"(%p) : ({T}) -> {T}
        dy.yield %t : {T}
      }} else {{
        dy.yield %p : {T}
      }}
      dy.yield %next, %s2 : {T}, i64
    }}
    dy.return %r, %k : {T}, i64
  }}
}}
"""

SEEDS: list[str] = [NETWORK, *sorted(set(SNIPPETS.values()))]


def has_loops(module: ModuleOp) -> bool:
    return any(isinstance(op, dy.WhileOp | dy.ForOp) for op in module.walk())


def _value_of(value_type: Any, rng: random.Random) -> Any:
    if isinstance(value_type, ValueTensorType):
        dtype = torch_dtypes().get(str(value_type.element_type))
        if dtype is None or value_type.shape is None:
            return None
        shape = [2 if size < 0 else size for size in value_type.shape]
        if sum(shape) > 1 << 16 or any(size > 1 << 12 for size in shape):
            return None
        generator = torch.Generator().manual_seed(rng.randrange(1 << 30))
        if dtype.is_floating_point:
            return torch.randn(shape, generator=generator).to(dtype)
        if dtype == torch.bool:
            return torch.randint(0, 2, shape, generator=generator).bool()
        return torch.randint(0, 4, shape, generator=generator).to(dtype)
    if value_type == i1:
        return rng.random() < 0.5
    if value_type == i64:
        return rng.randrange(4)
    if value_type == f64:
        return rng.uniform(-2, 2)
    return None


def inputs_and_params(module: ModuleOp, rng: random.Random) -> tuple[list, dict] | None:
    """Random inputs for `@forward` and parameters for every `dy.param`, or None when a
    type has no sensible random value (a list, an unknown dtype, a huge shape)."""
    entry = next(
        (op for op in module.ops if isinstance(op, dy.FuncOp) and op.sym_name.data == "forward"),
        None,
    )
    if entry is None:
        return None
    inputs = [_value_of(t, rng) for t in entry.function_type.inputs.data]
    params = {}
    for op in module.walk():
        if isinstance(op, dy.ParamOp):
            params[op.key.data] = _value_of(op.result.type, rng)
    if any(v is None for v in inputs) or any(v is None for v in params.values()):
        return None
    return inputs, params


def agree(actual, expected) -> bool:
    """Same structure, types, shapes and dtypes; floats within rtol 1e-4 / atol 1e-5, NaN
    where NaN."""
    if isinstance(expected, torch.Tensor):
        return (
            isinstance(actual, torch.Tensor)
            and actual.shape == expected.shape
            and actual.dtype == expected.dtype
            and bool(torch.allclose(actual.double(), expected.double(), rtol=1e-4, atol=1e-5,
                                    equal_nan=True))
        )
    if isinstance(expected, tuple | list):
        return len(actual) == len(expected) and all(map(agree, actual, expected))
    if isinstance(expected, float) and expected != expected:
        return actual != actual
    return actual == expected
