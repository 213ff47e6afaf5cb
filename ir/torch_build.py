"""Building `torch` dialect ops in the form torch-mlir's FX importer emits them.

Frontends that do not go through `torch_mlir.fx` (the rule-set frontend) and passes that
create tensor code (if-conversion) build their torch ops here, so every producer spells an
op the same way: `torch.aten.<name>.<overload>` with every schema argument as an operand,
scalars as `torch.constant.*`, constant tensors as `torch.vtensor.literal` with an inline
`dense<...>` (never a resource blob, which xDSL drops). Each builder states the result
type; the few shape rules needed are computed here, from the operand types.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    LocationAttr,
    Signedness,
    TensorType,
    UnregisteredOp,
    f32,
    f64,
    i1,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue

from ir.torch import BoolType, FloatType, IntType, ListType, NoneType, ValueTensorType

SI64 = IntegerType(64, Signedness.SIGNED)

SCALAR_TYPE_CODES = {"f32": 6, "f64": 7, "i1": 11, "si64": 4}
"""torch's ScalarType numbers, as the FX importer passes dtypes (`%int7` is float64)."""

_OP_CLASSES: dict[str, type[Operation]] = {}


def torch_op_class(name: str) -> type[Operation]:
    if name not in _OP_CLASSES:
        _OP_CLASSES[name] = UnregisteredOp.with_name(name)
    return _OP_CLASSES[name]


def tensor_type(shape: Sequence[int], dtype: Attribute) -> ValueTensorType:
    return ValueTensorType(list(shape), dtype)


def shape_of(value: SSAValue) -> tuple[int, ...]:
    value_type = value.type
    assert isinstance(value_type, ValueTensorType) and value_type.shape is not None
    return value_type.shape


def dtype_of(value: SSAValue) -> Attribute:
    value_type = value.type
    assert isinstance(value_type, ValueTensorType) and value_type.element_type is not None
    return value_type.element_type


def broadcast_shape(*shapes: Sequence[int]) -> tuple[int, ...]:
    rank = max(len(shape) for shape in shapes)
    padded = [(1,) * (rank - len(shape)) + tuple(shape) for shape in shapes]
    result = []
    for sizes in zip(*padded):
        others = {size for size in sizes if size != 1}
        if len(others) > 1:
            raise ValueError(f"shapes {shapes} do not broadcast")
        result.append(others.pop() if others else 1)
    return tuple(result)


class TorchBuilder:
    """Appends torch ops through ``insert`` (e.g. ``block.add_op``), all at ``location``."""

    def __init__(self, insert: Callable[[Operation], None], location: LocationAttr | None = None):
        self.insert = insert
        self.location = location

    def op(
        self,
        name: str,
        operands: Sequence[SSAValue],
        result_type: Attribute | None,
        attributes: dict[str, Attribute] | None = None,
    ) -> SSAValue | None:
        op = torch_op_class(name).create(
            operands=list(operands),
            result_types=[] if result_type is None else [result_type],
            attributes=attributes or {},
        )
        if self.location is not None:
            op.location = self.location
        self.insert(op)
        return op.results[0] if op.results else None

    # ------------------------------------------------------------------ constants

    def int(self, value: int) -> SSAValue:
        return self.op("torch.constant.int", [], IntType(), {"value": IntegerAttr(value, i64)})

    def float(self, value: float) -> SSAValue:
        return self.op("torch.constant.float", [], FloatType(), {"value": FloatAttr(value, f64)})

    def bool(self, value: bool) -> SSAValue:
        return self.op(
            "torch.constant.bool", [], BoolType(), {"value": IntegerAttr(int(value), i1)}
        )

    def none(self) -> SSAValue:
        return self.op("torch.constant.none", [], NoneType())

    def literal(self, values: np.ndarray, dtype: Attribute) -> SSAValue:
        """A constant tensor; ``dtype`` is the torch element type (f32, si64, i1)."""
        values = np.asarray(values)
        if dtype == i1:
            data = [bool(v) for v in values.reshape(-1)]
        elif dtype in (f32, f64):
            data = [float(v) for v in values.reshape(-1)]
        else:
            data = [int(v) for v in values.reshape(-1)]
        attr = DenseIntOrFPElementsAttr.from_list(TensorType(dtype, list(values.shape)), data)
        return self.op(
            "torch.vtensor.literal", [], tensor_type(values.shape, dtype), {"value": attr}
        )

    # ------------------------------------------------------------------ tensor ops

    def select(self, tensor: SSAValue, dim: int, index: int | SSAValue) -> SSAValue:
        shape = shape_of(tensor)
        dim = dim % len(shape)
        index_value = index if isinstance(index, SSAValue) else self.int(index)
        result = tensor_type(shape[:dim] + shape[dim + 1 :], dtype_of(tensor))
        return self.op("torch.aten.select.int", [tensor, self.int(dim), index_value], result)

    def item_index(self, scalar_tensor: SSAValue) -> SSAValue:
        """`int(t)` of a 0-d integer tensor, as the importer spells `x[t]`."""
        return self.op("torch.aten.Int.Tensor", [scalar_tensor], IntType())

    def unary(self, name: str, tensor: SSAValue, dtype: Attribute | None = None) -> SSAValue:
        """An elementwise op of one tensor (`logical_not`): same shape, ``dtype`` or the same."""
        result = tensor_type(shape_of(tensor), dtype or dtype_of(tensor))
        return self.op(f"torch.aten.{name}", [tensor], result)

    def binary(self, name: str, left: SSAValue, right: SSAValue, dtype: Attribute) -> SSAValue:
        """A broadcasting elementwise op of two tensors (`logical_and`, `eq.Tensor`)."""
        result = tensor_type(broadcast_shape(shape_of(left), shape_of(right)), dtype)
        return self.op(f"torch.aten.{name}", [left, right], result)

    def compare_scalar(self, name: str, tensor: SSAValue, value: float) -> SSAValue:
        """`gt.Scalar` and friends against a float: a bool tensor of the same shape."""
        result = tensor_type(shape_of(tensor), i1)
        return self.op(f"torch.aten.{name}.Scalar", [tensor, self.float(value)], result)

    def to_dtype(self, tensor: SSAValue, dtype: Attribute) -> SSAValue:
        """`tensor.to(dtype)` as `aten.to.dtype(t, code, non_blocking, copy, memory_format)`."""
        code = SCALAR_TYPE_CODES[str(dtype)]
        false = self.bool(False)
        result = tensor_type(shape_of(tensor), dtype)
        return self.op(
            "torch.aten.to.dtype", [tensor, self.int(code), false, false, self.none()], result
        )

    def where(self, condition: SSAValue, if_true: SSAValue, if_false: SSAValue) -> SSAValue:
        shape = broadcast_shape(shape_of(condition), shape_of(if_true), shape_of(if_false))
        result = tensor_type(shape, dtype_of(if_true))
        return self.op("torch.aten.where.self", [condition, if_true, if_false], result)

    def matmul(self, left: SSAValue, right: SSAValue) -> SSAValue:
        (rows, inner), (inner_right, columns) = shape_of(left), shape_of(right)
        if inner != inner_right:
            raise ValueError(f"mm of [{rows},{inner}] and [{inner_right},{columns}]")
        return self.op("torch.aten.mm", [left, right], tensor_type([rows, columns], dtype_of(left)))

    def unsqueeze(self, tensor: SSAValue, dim: int) -> SSAValue:
        shape = list(shape_of(tensor))
        dim = dim % (len(shape) + 1)
        shape.insert(dim, 1)
        return self.op(
            "torch.aten.unsqueeze", [tensor, self.int(dim)], tensor_type(shape, dtype_of(tensor))
        )

    def cat(self, tensors: Sequence[SSAValue], dim: int) -> SSAValue:
        shapes = [list(shape_of(t)) for t in tensors]
        dim = dim % len(shapes[0])
        result_shape = list(shapes[0])
        result_shape[dim] = sum(shape[dim] for shape in shapes)
        element = tensors[0].type
        items = self.op("torch.prim.ListConstruct", list(tensors), ListType(element))
        return self.op(
            "torch.aten.cat",
            [items, self.int(dim)],
            tensor_type(result_shape, dtype_of(tensors[0])),
        )

    def all_dim(self, tensor: SSAValue, dim: int) -> SSAValue:
        shape = list(shape_of(tensor))
        dim = dim % len(shape)
        del shape[dim]
        return self.op(
            "torch.aten.all.dim",
            [tensor, self.int(dim), self.bool(False)],
            tensor_type(shape, i1),
        )
