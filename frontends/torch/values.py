"""What the staging evaluator computes with, besides plain (compile-time) Python values.

A Python value the evaluator can compute while compiling (a config flag, a shape, a module) is
kept as itself. A value known only at run time is *staged*: `StagedTensor` (recorded into a
`stretch.Stretch` until it is imported),
`HostScalar` (an i1/i64/f64 SSA value: `.item()` results, counters merged from two paths) and
`StagedList` (a `!dy.list` whose length depends on the path taken). `Undefined` marks a name
that control flow left without one consistent value; reading it is the error, not binding it.
`UserFunction` and `StagedMethod` are the callables the model's code can hold: a nested `def`
and a method of a staged value.

The helpers at the end answer per-value questions (is it staged, are two values the same
SSA value, what values can a host scalar take) that every construct asks.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from xdsl.dialects.builtin import (
    ArrayAttr,
    BFloat16Type,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    Signedness,
    TupleType,
    f64,
    i1,
    i64,
)
from xdsl.ir import Attribute, SSAValue

from ir.dy import ListType
from ir.torch import DYNAMIC_DIM, ValueTensorType

if TYPE_CHECKING:
    from frontends.torch.state import Frame
    from frontends.torch.stretch import Pending

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


def tensor_type(example: torch.Tensor, dynamic: Collection[int] = ()) -> ValueTensorType:
    """The `!torch.vtensor` type of a tensor like `example`, with `?` in the dimensions
    `dynamic` names."""
    shape = [DYNAMIC_DIM if d in dynamic else size for d, size in enumerate(example.shape)]
    return ValueTensorType(shape, element_type(example.dtype))


UNKNOWN_ITEM = ValueTensorType(None, None)
"""The item type of a list that has held no item yet (an empty list before a loop that
appends to it): any item fits it."""


def is_unknown_item(item: Attribute) -> bool:
    """Whether a list's item type is not known (a tensor type without shape or dtype)."""
    return isinstance(item, ValueTensorType) and item.shape is None


def join_types(first: Any, second: Any) -> Any:
    """The most precise type both values conform to: tensors of one dtype and rank whose
    sizes differ get `?` there (a sequence grown by `torch.cat`, a shrinking batch), lists
    likewise by item type (a list without items takes the other's), tuples field by
    field. None when there is none (other dtypes, ranks, kinds)."""
    if first == second:
        return first
    if isinstance(first, ListType) and isinstance(second, ListType):
        if is_unknown_item(first.element_type):
            return second
        if is_unknown_item(second.element_type):
            return first
        element = join_types(first.element_type, second.element_type)
        return None if element is None else ListType(element)
    if isinstance(first, TupleType) and isinstance(second, TupleType):
        ours, theirs = first.types.data, second.types.data
        fields = [join_types(a, b) for a, b in zip(ours, theirs)]
        if len(ours) != len(theirs) or any(field is None for field in fields):
            return None
        return TupleType(ArrayAttr(fields))
    if not (isinstance(first, ValueTensorType) and isinstance(second, ValueTensorType)):
        return None
    if (
        first.element_type != second.element_type
        or first.shape is None
        or second.shape is None
        or len(first.shape) != len(second.shape)
    ):
        return None
    shape = [a if a == b else DYNAMIC_DIM for a, b in zip(first.shape, second.shape)]
    return ValueTensorType(shape, first.element_type)


SCALAR_KINDS: dict[Attribute, type] = {i1: bool, i64: int, f64: float}
SCALAR_TYPES: dict[type, Attribute] = {bool: i1, int: i64, float: f64}


def scalar_kind(value: object) -> type | None:
    """bool, int or float for a Python number or a host scalar; None otherwise."""
    if isinstance(value, HostScalar | SymSize):
        return value.kind
    for kind in (bool, int, float):
        if type(value) is kind:
            return kind
    return None


MAX_TRACKED_VALUES = 64


class StagedTensor:
    """A tensor the program computes at run time.

    A mutable handle, as Python tensors are objects: an in-place update rebinds `value` so
    every alias sees it. `value` is an SSA value once imported, a `Pending` before; `example`
    is the tensor the same computation gives on the example inputs (shapes, dtypes).
    """

    __slots__ = ("__weakref__", "example", "origin", "value", "view", "views")

    def __init__(
        self,
        value: SSAValue | Pending,
        example: torch.Tensor,
        origin: StagedTensor | None = None,
    ):
        self.value = value
        self.example = example
        self.origin = origin
        """For a snapshot (the value a path had when it reached a join), the handle it was
        taken of: paths whose names all hold snapshots of one handle keep that handle."""
        self.view = None
        """A `views.ViewOf` when this tensor shares storage with a staged root."""
        self.views: list = []
        """Weak references to the staged views of this tensor (when it is a root)."""

    def copy(self) -> StagedTensor:
        return StagedTensor(self.value, self.example)

    def snapshot(self) -> StagedTensor:
        return StagedTensor(self.value, self.example, self.origin or self)

    def __repr__(self) -> str:
        return f"StagedTensor({list(self.example.shape)}, {self.example.dtype})"


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
    """A Python list whose length is known only at run time (`!dy.list`): of tensors, host
    numbers, lists or tuples of these (see `items`).

    A mutable handle like `StagedTensor`: `append` rebinds `value` to the new list.
    `observed_element` is the type of the items appended so far: a list that starts empty
    has no item type until then. `example_item` is an item's example (see
    `items.item_example`), None when no item was seen.
    """

    __slots__ = ("borrowed", "example_item", "observed_element", "origin", "value")

    def __init__(
        self,
        value: SSAValue,
        example_item: Any,
        observed_element: Attribute | None = None,
        origin: StagedList | None = None,
        borrowed: bool = False,
    ):
        self.value = value
        self.example_item = example_item
        self.observed_element = observed_element
        self.origin = origin
        self.borrowed = borrowed
        """Read out of another run-time list (`beam.tokens`): Python would update that
        list's item through it, which a value copy cannot, so it must not be updated in
        place (`beam.tokens + [w]` builds a new list and is fine)."""

    @property
    def element_type(self) -> Attribute:
        list_type = self.value.type
        assert isinstance(list_type, ListType)
        return list_type.element_type

    def copy(self) -> StagedList:
        return StagedList(
            self.value, self.example_item, self.observed_element, borrowed=self.borrowed
        )

    def snapshot(self) -> StagedList:
        return StagedList(
            self.value,
            self.example_item,
            self.observed_element,
            self.origin or self,
            self.borrowed,
        )


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


@dataclass(frozen=True, eq=False)
class SizeOf:
    """Dimension `dim` of the tensor held by SSA value `tensor` (whose type has `?` there)."""

    tensor: SSAValue
    dim: int
    example: torch.Tensor


SizeTerm = Any
"""A `SizeOf`, a Python int, or `(operator, left, right)` / `(operator, operand)` of terms."""


@dataclass(frozen=True, eq=False)
class SymSize:
    """A Python int known only at run time because it is (arithmetic on) sizes of tensors
    with `?` dimensions, e.g. `x.shape[0]` of a dynamic batch.

    It stays symbolic while it only flows into tensor calls: a stretch replays it from the
    tensors it measures (`x.view(x.size(0), -1)` imports with a symbolic size, not a
    constant). Where the host needs its value (a comparison, host arithmetic) it becomes
    `dy.dim` and `arith` ops (`scalars.scalar_value`).
    """

    term: SizeTerm
    example: int

    kind = int

    def _known_only_at_run_time(self, *_: Any) -> Any:
        raise TypeError("a size known only at run time cannot be used as a Python number here")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _known_only_at_run_time
    __bool__ = __index__ = __int__ = __float__ = _known_only_at_run_time
    __hash__ = object.__hash__

    def leaves(self) -> list[SizeOf]:
        found: list[SizeOf] = []

        def walk(term: SizeTerm) -> None:
            if isinstance(term, SizeOf):
                found.append(term)
            elif isinstance(term, tuple):
                for operand in term[1:]:
                    walk(operand)

        walk(self.term)
        return found


def size_term(value: Any) -> SizeTerm | None:
    """The term of a symbolic size or a Python int; None for anything else."""
    if isinstance(value, SymSize):
        return value.term
    if type(value) is int:
        return value
    return None


@dataclass(eq=False)
class RuntimeChoice:
    """One of `options` (modules, functions, values of a container), picked at run time by
    `selector` equal to `cases[i]`; a call or a read of it runs in each case of a
    `dy.switch` (see `selection`)."""

    selector: HostScalar
    cases: list[int]
    options: list
    message: str
    """What the default case, where no option is picked, reports at run time."""


@dataclass(eq=False)
class UserFunction:
    """A `def` or `lambda` written inside the model's code: called by inlining."""

    node: ast.FunctionDef | ast.Lambda
    scope: Frame


@dataclass(eq=False)
class StagedMethod:
    """`receiver.name` looked up on a staged value, waiting for its call."""

    receiver: StagedTensor | StagedList
    name: str


TENSOR_METADATA = frozenset(
    {
        "size",
        "dim",
        "ndimension",
        "numel",
        "nelement",
        "is_contiguous",
        "is_floating_point",
        "is_complex",
        "element_size",
        "stride",
        "get_device",
        "is_signed",
    }
)
"""Tensor methods whose result is fixed by the (specialised) shape and dtype."""

TENSOR_STATIC_ATTRIBUTES = frozenset(
    {
        "shape",
        "dtype",
        "ndim",
        "device",
        "is_cuda",
        "requires_grad",
        "layout",
        "is_sparse",
        "is_quantized",
        "is_meta",
        "names",
    }
)


def is_staged(value: Any) -> bool:
    """Whether `value` (or anything inside its containers and slices) is known only at run
    time."""
    if isinstance(value, StagedTensor | HostScalar | StagedList | SymSize | RuntimeChoice):
        return True
    if isinstance(value, tuple | list):
        return any(is_staged(v) for v in value)
    if isinstance(value, dict):
        return any(is_staged(v) for v in value.values())
    if isinstance(value, slice):
        return any(is_staged(v) for v in (value.start, value.stop, value.step))
    return False


def same(value: Any, other: Any) -> bool:
    """Whether two values are the same on every run (one SSA value, or equal constants)."""
    if value is other:
        return True
    if isinstance(value, StagedTensor | StagedList) and type(value) is type(other):
        return value.value is other.value
    if isinstance(value, HostScalar) and isinstance(other, HostScalar):
        return value.value is other.value
    if isinstance(value, SymSize) and isinstance(other, SymSize):
        return _same_term(value.term, other.term)
    simple = (bool, int, float, str, type(None), torch.dtype, torch.device)
    if type(value) is type(other) and isinstance(value, simple):
        return value == other
    return False


def _same_term(term: SizeTerm, other: SizeTerm) -> bool:
    if isinstance(term, SizeOf) and isinstance(other, SizeOf):
        return term.tensor is other.tensor and term.dim == other.dim
    if isinstance(term, tuple) and isinstance(other, tuple):
        return (
            len(term) == len(other)
            and term[0] is other[0]
            and all(_same_term(a, b) for a, b in zip(term[1:], other[1:]))
        )
    return type(term) is int and type(other) is int and term == other


def possible_values(value: Any) -> frozenset | None:
    if isinstance(value, SymSize):
        return None
    if isinstance(value, HostScalar):
        return value.possible
    return frozenset({value})


def possible_union(values: list) -> frozenset | None:
    union: set = set()
    for value in values:
        possible = possible_values(value)
        if possible is None:
            return None
        union |= possible
    return frozenset(union) if len(union) <= MAX_TRACKED_VALUES else None


def combine_possible(function: Callable, left: Any, right: Any) -> frozenset | None:
    """The values `function(left, right)` can take, when both operands' sets are known."""
    lefts, rights = possible_values(left), possible_values(right)
    if lefts is None or rights is None or len(lefts) * len(rights) > MAX_TRACKED_VALUES:
        return None
    try:
        return frozenset(function(a, b) for a in lefts for b in rights)
    except (ArithmeticError, TypeError):
        return None


def example_of(value: Any) -> Any:
    """The value a host scalar has on the example inputs; a Python value itself."""
    return value.example if isinstance(value, HostScalar | SymSize) else value


def describe(value: Any) -> str:
    """What a diagnostic calls the kind of `value`."""
    if isinstance(value, StagedTensor):
        return "tensor"
    if isinstance(value, HostScalar):
        return f"run-time {value.kind.__name__}"
    if isinstance(value, SymSize):
        return "run-time size"
    if isinstance(value, StagedList):
        return "list of run-time length"
    if isinstance(value, Undefined):
        return "undefined value"
    if isinstance(value, UserFunction):
        return "nested function"
    if isinstance(value, OptionalValue):
        return "value that may be None"
    if isinstance(value, RuntimeChoice):
        return "module or value chosen at run time"
    if value is None:
        return "None"
    return type(value).__name__
