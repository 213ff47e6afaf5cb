"""Eager execution of torch-mlir `torch` dialect ops through `torch.ops`.

The FX importer spells an aten call as `torch.aten.<name>[.<overload>]` with every schema
argument passed positionally, including defaults, so the op name and schema are enough to
rebuild the call: positional arguments stay positional, keyword-only ones become keywords.
`torch.constant.*`, `torch.prim.ListConstruct` / `ListUnpack` and small dense literals are evaluated here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    StringAttr,
)
from xdsl.ir import Attribute, Operation

from ir.dy import op_name
from ir.torch import ValueTensorType

TORCH_DTYPES: dict[str, torch.dtype] = {
    "f32": torch.float32,
    "f64": torch.float64,
    "f16": torch.float16,
    "bf16": torch.bfloat16,
    "si64": torch.int64,
    "si32": torch.int32,
    "si16": torch.int16,
    "si8": torch.int8,
    "ui8": torch.uint8,
    "i1": torch.bool,
}


class UnsupportedTorchOp(Exception):
    """A torch op that eager execution cannot run; the message says why."""


_TENSOR_TO_SCALAR = {
    "torch.aten.Bool.Tensor": bool,
    "torch.aten.Int.Tensor": int,
    "torch.aten.Float.Tensor": float,
}

TorchOpFunction = Callable[[Sequence[Any]], Any]
"""Runs one torch op: operand values in, its result (or tuple of results) out."""


def torch_dtype_of(tensor_type: ValueTensorType) -> torch.dtype | None:
    element = tensor_type.element_type
    return None if element is None else TORCH_DTYPES.get(str(element))


def _constant_value(op: Operation) -> Any:
    attr = op.properties.get("value", op.attributes.get("value"))
    if attr is None:
        return None
    return python_value_of(attr)


def python_value_of(attr: Attribute) -> Any:
    """The Python value of a constant's attribute."""
    if isinstance(attr, IntegerAttr):
        value = attr.value.data
        return bool(value) if str(attr.type) == "i1" else value
    if isinstance(attr, FloatAttr):
        return attr.value.data
    if isinstance(attr, StringAttr):
        return attr.data
    raise UnsupportedTorchOp(f"unsupported constant attribute {attr}")


def _literal_tensor(op: Operation) -> torch.Tensor:
    attr = op.properties.get("value", op.attributes.get("value"))
    result_type = op.results[0].type
    if not isinstance(attr, DenseIntOrFPElementsAttr) or not isinstance(
        result_type, ValueTensorType
    ):
        raise UnsupportedTorchOp(
            "only dense literals can be evaluated; weights must be 'dy.param' ops, not "
            f"resources (got {attr})"
        )
    dtype = torch_dtype_of(result_type)
    values = np.asarray(attr.get_values())
    tensor = torch.from_numpy(values.copy()).to(dtype)
    return tensor.reshape(result_type.shape)


def _aten_overload(name: str) -> torch._ops.OpOverload:
    """`torch.aten.add.Tensor` -> `torch.ops.aten.add.Tensor`; no overload means `.default`."""
    _, namespace, *rest = name.split(".")
    packet_name, overload = rest[0], (rest[1] if len(rest) > 1 else "default")
    namespace_ops = getattr(torch.ops, namespace)
    try:
        packet = getattr(namespace_ops, packet_name)
        return getattr(packet, overload)
    except (AttributeError, RuntimeError):
        raise UnsupportedTorchOp(
            f"no eager kernel torch.ops.{namespace}.{packet_name}.{overload}"
        ) from None


def _schema_call(name: str, operand_count: int) -> TorchOpFunction:
    overload = _aten_overload(name)
    arguments = overload._schema.arguments
    if operand_count > len(arguments):
        raise UnsupportedTorchOp(
            f"{operand_count} operands for a schema of {len(arguments)} arguments"
        )
    keyword_names = [a.name if a.kwarg_only else None for a in arguments[:operand_count]]
    if not any(keyword_names):
        return lambda values: overload(*values)
    positional_count = keyword_names.index(next(n for n in keyword_names if n))

    def call(values: Sequence[Any]) -> Any:
        keywords = {
            n: v for n, v in zip(keyword_names[positional_count:], values[positional_count:])
        }
        return overload(*values[:positional_count], **keywords)

    return call


class RuntimeAssertionFailed(ValueError):
    """A `torch.runtime.assert` (torch.export's check on a data-dependent size) is false."""


def _runtime_assertion(op: Operation) -> TorchOpFunction:
    """`torch.runtime.assert %cond, "message"`: no result; raises when the condition is
    false, with torch.export's message."""
    attr = op.properties.get("message", op.attributes.get("message"))
    message = attr.data if isinstance(attr, StringAttr) else "runtime assertion failed"

    def check(values: Sequence[Any]) -> tuple[()]:
        if not values[0]:
            raise RuntimeAssertionFailed(message)
        return ()

    return check


def _only_item(items: Sequence[Any]) -> Any:
    (item,) = items  # a list of another length is a ValueError, located by the caller
    return item


def torch_op_function(op: Operation) -> TorchOpFunction:
    """An eager implementation of one torch op, resolved once when the program loads."""
    name = op_name(op)
    if name.startswith("torch.constant."):
        value = _constant_value(op)
        return lambda values: value
    if name == "torch.vtensor.literal":
        literal = _literal_tensor(op)
        return lambda values: literal
    if name == "torch.prim.ListConstruct":
        return list
    if name == "torch.prim.ListUnpack":
        if len(op.results) == 1:
            return lambda values: _only_item(values[0])
        return lambda values: tuple(values[0])
    if name == "torch.tensor_static_info_cast":
        return lambda values: values[0]
    if name == "torch.aten.tensor":
        result_type = op.results[0].type
        dtype = torch_dtype_of(result_type) if isinstance(result_type, ValueTensorType) else None
        return lambda values: torch.tensor(values[0], dtype=dtype)
    if name == "torch.aten.view":
        # Value tensors have no strides: a view of a permuted tensor is a reshape.
        return lambda values: torch.ops.aten.reshape.default(*values)
    if name == "torch.runtime.assert":
        return _runtime_assertion(op)
    if name in _TENSOR_TO_SCALAR:
        convert = _TENSOR_TO_SCALAR[name]
        return lambda values: convert(values[0].item())
    if name.startswith(("torch.aten.", "torch.prim.")):
        return _schema_call(name, len(op.operands))
    raise UnsupportedTorchOp("not an aten or prim op")
