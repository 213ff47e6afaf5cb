"""What the staging evaluator computes with, besides plain (compile-time) Python values.

A Python value the evaluator can compute while compiling (a config flag, a shape, a module) is
kept as itself. A value known only at run time is *staged*: `StagedTensor` (see `stretch`),
`HostScalar` (an i1/i64/f64 SSA value: `.item()` results, counters merged from two paths) and
`StagedList` (a `!dy.list` whose length depends on the path taken). `Undefined` marks a name
that control flow left without one consistent value; reading it is the error, not binding it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    Signedness,
    f64,
    i1,
    i64,
)
from xdsl.ir import Attribute, SSAValue

from ir.dy import ListType
from ir.torch import ValueTensorType

_DTYPES: dict[torch.dtype, Attribute] = {
    torch.float32: Float32Type(),
    torch.float64: Float64Type(),
    torch.float16: Float16Type(),
    torch.bfloat16: BFloat16Type(),
    torch.int64: IntegerType(64, Signedness.SIGNED),
    torch.int32: IntegerType(32, Signedness.SIGNED),
    torch.int16: IntegerType(16, Signedness.SIGNED),
    torch.int8: IntegerType(8, Signedness.SIGNED),
    torch.uint8: IntegerType(8, Signedness.UNSIGNED),
    torch.bool: i1,
}


def element_type(dtype: torch.dtype) -> Attribute:
    if dtype not in _DTYPES:
        raise KeyError(f"dtype {dtype} has no torch-mlir element type")
    return _DTYPES[dtype]


def torch_dtype(element: Attribute) -> torch.dtype:
    """The torch dtype of a torch-mlir element type."""
    for dtype, candidate in _DTYPES.items():
        if candidate == element:
            return dtype
    raise KeyError(f"element type {element} has no torch dtype")


def tensor_type(example: torch.Tensor) -> ValueTensorType:
    """The `!torch.vtensor` type of a tensor like `example`."""
    return ValueTensorType(list(example.shape), element_type(example.dtype))


SCALAR_KINDS: dict[Attribute, type] = {i1: bool, i64: int, f64: float}
SCALAR_TYPES: dict[type, Attribute] = {bool: i1, int: i64, float: f64}


def scalar_kind(value: object) -> type | None:
    """bool, int or float for a Python number or a host scalar; None otherwise."""
    if isinstance(value, HostScalar):
        return value.kind
    for kind in (bool, int, float):
        if type(value) is kind:
            return kind
    return None


MAX_TRACKED_VALUES = 64


@dataclass(frozen=True, eq=False)
class HostScalar:
    """A Python bool/int/float known at run time, held in an SSA value of type i1/i64/f64.

    `possible` is the finite set of values it can take when the evaluator knows it (a counter
    that is 0 or 1 after a branch): comparisons whose outcome is the same for all of them
    fold at compile time, so paths that cannot run are not generated.
    """

    value: SSAValue
    example: bool | int | float
    possible: frozenset | None = None

    @property
    def kind(self) -> type:
        return SCALAR_KINDS[self.value.type]


class StagedList:
    """A Python list of tensors whose length is known only at run time (`!dy.list`).

    A mutable handle like `StagedTensor`: `append` rebinds `value` to the new list.
    `observed_element` is the type of the items appended so far: a list that starts empty
    has no item type until then.
    """

    __slots__ = ("example_item", "observed_element", "value")

    def __init__(
        self,
        value: SSAValue,
        example_item: torch.Tensor | None,
        observed_element: ValueTensorType | None = None,
    ):
        self.value = value
        self.example_item = example_item
        self.observed_element = observed_element

    @property
    def element_type(self) -> ValueTensorType:
        list_type = self.value.type
        assert isinstance(list_type, ListType)
        return list_type.element_type

    def copy(self) -> StagedList:
        return StagedList(self.value, self.example_item, self.observed_element)


@dataclass(frozen=True)
class Undefined:
    """A name without one value after control flow joined; `reason` says why."""

    reason: str


@dataclass(frozen=True, eq=False)
class OptionalValue:
    """A value that is None on some paths: `present` (an i1 HostScalar) says which.

    Only `is None` / `is not None` may read it; a branch on such a test sees the plain
    value (or None) in its arms, as a type checker narrows an Optional.
    """

    present: HostScalar
    value: object
