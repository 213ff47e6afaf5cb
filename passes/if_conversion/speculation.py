"""Which ops if-conversion may run unconditionally: pure, unable to fail, and cheap."""

from __future__ import annotations

from xdsl.dialects import arith
from xdsl.ir import Operation

from ir import dy
from ir.torch import ValueTensorType

_FAILING_ARITH = (
    arith.DivSIOp,
    arith.DivUIOp,
    arith.RemSIOp,
    arith.RemUIOp,
    arith.FloorDivSIOp,
    arith.CeilDivSIOp,
    arith.CeilDivUIOp,
    arith.FPToSIOp,
    arith.FPToUIOp,
)
"""Integer division and remainder fail on a zero divisor, float-to-int conversion on NaN
and infinities (the interpreter raises)."""

ELEMENTWISE_TORCH_OPS = frozenset(
    {
        "torch.aten.logical_and",
        "torch.aten.logical_or",
        "torch.aten.logical_xor",
        "torch.aten.logical_not",
        "torch.aten.where.self",
        "torch.aten.to.dtype",
        *(f"torch.aten.{c}.{kind}" for c in ("eq", "ne", "gt", "ge", "lt", "le")
          for kind in ("Scalar", "Tensor")),
    }
)
"""Torch ops that cannot fail once their operand types verify (broadcasting shapes)."""

_TORCH_VALUES = ("torch.constant.", "torch.vtensor.literal")


def speculatable(op: Operation, max_elements: int) -> bool:
    """Whether running ``op`` where it did not run before changes nothing but time, and
    little of that."""
    if op.regions:
        return False
    if dy.is_torch_op(op):
        return _torch_speculatable(op, max_elements)
    if isinstance(op, dy.ItemOp):  # fails at run time unless the tensor surely has one element
        return op.tensor.type.numel == 1
    if isinstance(op, dy.ScalarToTensorOp):
        return True
    if op.dialect_name() == arith.Arith.name:
        return not isinstance(op, _FAILING_ARITH)
    return False


def _torch_speculatable(op: Operation, max_elements: int) -> bool:
    name = dy.op_name(op)
    if name.startswith(_TORCH_VALUES):
        return True
    for result in op.results:
        result_type = result.type
        if not isinstance(result_type, ValueTensorType) or not result_type.has_static_shape:
            return False
        if result_type.numel > max_elements:
            return False
    if name in ELEMENTWISE_TORCH_OPS:
        return True
    return name == "torch.aten.select.int" and _select_in_range(op)


def _select_in_range(op: Operation) -> bool:
    """`select.int(t, dim, index)` with constant dim and index inside t's static shape."""
    tensor, dim, index = op.operands
    shape = tensor.type.shape if isinstance(tensor.type, ValueTensorType) else None
    dim_value, index_value = constant_torch_int(dim), constant_torch_int(index)
    if shape is None or dim_value is None or index_value is None:
        return False
    if not -len(shape) <= dim_value < len(shape):
        return False
    size = shape[dim_value]
    return size >= 0 and -size <= index_value < size


def constant_torch_int(value) -> int | None:
    owner = value.owner
    if isinstance(owner, Operation) and dy.op_name(owner) == "torch.constant.int":
        return owner.attributes["value"].value.data
    return None
