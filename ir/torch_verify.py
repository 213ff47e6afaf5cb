"""Verification of torch-mlir's `torch` ops: their declared result types against what the
ops compute.

Programs carry torch ops unregistered (see `ir.torch`): nothing in xDSL knows what
`torch.aten.sigmoid` computes, and a declared result type that contradicts the op (a
sigmoid declared `-> i1`, a relu that changes the shape) is believed by the interpreter and
by torch-mlir alike, each computing something different from the other and from eager
PyTorch. So every torch op is checked here, and the op semantics come from PyTorch itself:
its shape and dtype functions, run on meta tensors (shapes and dtypes, no data).

What is checked:

* `torch.constant.*`: the value attribute is of the kind the result type says;
* `torch.vtensor.literal`: the literal's shape and element type are the result's;
* `torch.prim.ListConstruct`: every element conforms to the list's element type;
* every op PyTorch knows (`torch.aten.add.Tensor` is `torch.ops.aten.add.Tensor`): it has as
  many results as its schema returns, and every tensor result has the dtype and the static
  dimensions PyTorch infers from the operands.

Values the types do not pin down are handled by inferring twice: a `?` dimension and an
`!torch.int` that is not a constant stand for one size in the first inference and another in
the second, a non-constant float likewise, and only what both inferences agree on is
compared; a `?` in a declared result is never compared. Ops are accepted without a check
when PyTorch does not know them, when an operand is not known well enough (a tensor of
unknown rank or dtype, a list that is not built by `ListConstruct`, a non-constant bool or
string), or when PyTorch cannot infer the result without data (`nonzero`, `masked_select`,
boolean indexing: the size depends on the data, so any declared size is accepted).

Verification runs after every parse and every pass, so a verdict is cached per op
signature (name, operand types and constant operand values, result types): a program of
thousands of ops has a few hundred distinct signatures.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    DenseResourceAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    NoneAttr,
    Signedness,
    StringAttr,
    TensorType,
    UnregisteredOp,
    f64,
    i1,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.utils.exceptions import VerifyException

from ir.torch import (
    DYNAMIC_DIM,
    BoolType,
    DeviceType,
    FloatType,
    IntType,
    ListType,
    NoneType,
    NumberType,
    OptionalType,
    StrType,
    ValueTensorType,
)

STAND_IN_SIZES = (5, 7)
"""What an unknown size or int stands for in the two inferences."""
STAND_IN_FLOATS = (0.5, 0.75)
MAX_CACHED_VERDICTS = 1 << 16

_CONSTANT_KINDS: dict[str, tuple[type[Attribute], tuple[type, ...]]] = {
    "torch.constant.int": (IntType, (IntegerAttr,)),
    "torch.constant.float": (FloatType, (FloatAttr,)),
    "torch.constant.bool": (BoolType, (IntegerAttr,)),
    "torch.constant.str": (StrType, (StringAttr,)),
    "torch.constant.device": (DeviceType, (StringAttr,)),
    "torch.constant.number": (NumberType, (IntegerAttr, FloatAttr)),
}
_SCALAR_ATTR_TYPES = {
    "torch.constant.int": i64,
    "torch.constant.float": f64,
    "torch.constant.bool": i1,
}


def torch_op_class(name: str) -> type[Operation]:
    """The class a parsed `torch.*` op gets: xDSL's unregistered op of that name, with
    `verify_torch_op` as its verifier."""
    return _torch_op_class(name)


@functools.cache
def _torch_op_class(name: str) -> type[Operation]:
    base = UnregisteredOp.with_name(name)
    return type("TorchOp", (base,), {"verify_": verify_torch_op, "__doc__": __doc__})


def verify_torch_op(op: Operation) -> None:
    """Raise `VerifyException` when the op's declared result types contradict it."""
    name = op.op_name.data if isinstance(op, UnregisteredOp) else op.name
    if name.startswith("torch.constant."):
        _verify_constant(op, name)
    elif name == "torch.vtensor.literal":
        _verify_literal(op)
    elif name == "torch.prim.ListConstruct":
        _verify_list_construct(op)
    else:
        signature = _signature(name, op)
        if signature is not None:
            verdict = _cached_verdict(signature)
            if verdict is not None:
                raise VerifyException(verdict)


# ------------------------------------------------------------------ constants and lists


def _value_attr(op: Operation) -> Attribute | None:
    return op.properties.get("value", op.attributes.get("value"))


def _single_result(op: Operation) -> Attribute:
    if len(op.results) != 1:
        raise VerifyException(f"must have exactly one result, has {len(op.results)}")
    return op.results[0].type


def _verify_constant(op: Operation, name: str) -> None:
    if op.operands:
        raise VerifyException(f"takes no operands, has {len(op.operands)}")
    result_type = _single_result(op)
    if name == "torch.constant.none":
        if not isinstance(result_type, NoneType):
            raise VerifyException(f"result must be !torch.none, got {result_type}")
        return
    if name not in _CONSTANT_KINDS:
        return
    expected_type, attr_kinds = _CONSTANT_KINDS[name]
    if not isinstance(result_type, expected_type):
        raise VerifyException(f"result must be {expected_type.name}, got {result_type}")
    value = _value_attr(op)
    if not isinstance(value, attr_kinds):
        raise VerifyException(f"needs a 'value' of the result's kind, got {value}")
    scalar_type = _SCALAR_ATTR_TYPES.get(name)
    if scalar_type is not None and value.type != scalar_type:
        raise VerifyException(f"'value' must be of type {scalar_type}, got {value}")
    if name == "torch.constant.number" and value.type not in (i64, f64):
        raise VerifyException(f"'value' must be an i64 or f64, got {value}")


def _verify_literal(op: Operation) -> None:
    result_type = _single_result(op)
    value = _value_attr(op)
    if not isinstance(result_type, ValueTensorType):
        raise VerifyException(f"result must be a !torch.vtensor, got {result_type}")
    if not isinstance(value, DenseIntOrFPElementsAttr | DenseResourceAttr):
        raise VerifyException(f"needs a dense 'value', got {value}")
    literal_type = value.type
    if not isinstance(literal_type, TensorType):
        return
    shape = tuple(literal_type.get_shape())
    if result_type.shape is not None and not _dims_agree(shape, result_type.shape):
        raise VerifyException(f"a literal of shape {list(shape)} cannot be a {result_type}")
    element, declared = literal_type.element_type, result_type.element_type
    if declared is not None and not _same_element_type(element, declared):
        raise VerifyException(f"a literal of {element} elements cannot be a {result_type}")


def _same_element_type(literal: Attribute, declared: Attribute) -> bool:
    """torch-mlir accepts a signless literal for a signed or unsigned tensor of its width."""
    if isinstance(literal, IntegerType) and isinstance(declared, IntegerType):
        return literal.width == declared.width and (
            literal.signedness.data == Signedness.SIGNLESS
            or literal.signedness == declared.signedness
        )
    return literal == declared


def _verify_list_construct(op: Operation) -> None:
    result_type = _single_result(op)
    if not isinstance(result_type, ListType):
        raise VerifyException(f"result must be a !torch.list, got {result_type}")
    for index, operand in enumerate(op.operands):
        if not _conforms(operand.type, result_type.element):
            raise VerifyException(
                f"element #{index} of type {operand.type} is not a {result_type.element}"
            )


def _conforms(value: Attribute, expected: Attribute) -> bool:
    if isinstance(expected, OptionalType):
        return isinstance(value, NoneType) or _conforms(value, expected.element)
    if isinstance(expected, ValueTensorType):
        if not isinstance(value, ValueTensorType):
            return False
        if expected.element_type is not None and value.element_type != expected.element_type:
            return False
        if expected.shape is None:
            return True
        return value.shape is not None and _dims_agree(value.shape, expected.shape)
    if isinstance(expected, NumberType):
        return isinstance(value, IntType | FloatType | NumberType)
    if isinstance(expected, FloatType):  # an int may be passed for a float, as in Python
        return isinstance(value, FloatType | IntType)
    return type(value) is type(expected) and (
        not isinstance(expected, ListType) or _conforms(value.element, expected.element)
    )


def _dims_agree(actual: Sequence[int], declared: Sequence[int]) -> bool:
    return len(actual) == len(declared) and all(
        DYNAMIC_DIM in (a, d) or a == d for a, d in zip(actual, declared)
    )


# ------------------------------------------------------------------ signatures

_UNKNOWN_INT = ("unknown", "int")
_UNKNOWN_FLOAT = ("unknown", "float")


def _signature(name: str, op: Operation) -> tuple | None:
    """What an op's verdict depends on, hashable; None when an operand cannot be known."""
    operands = []
    for operand in op.operands:
        described = _describe(operand)
        if described is None:
            return None
        operands.append(described)
    return (name, tuple(operands), tuple(result.type for result in op.results))


def _describe(value: SSAValue, depth: int = 0) -> tuple | None:
    value_type = value.type
    kind = type(value_type)  # `type(...) is`, not `isinstance`: this runs for every operand
    if kind is ValueTensorType:
        if type(value_type.sizes) is NoneAttr or type(value_type.dtype) is NoneAttr:
            return None
        return ("tensor", value_type)  # the type itself: hashable, no printing
    if kind is NoneType:
        return ("value", None)
    owner = value.owner
    owner_name = owner.attributes["op_name__"].data if isinstance(owner, UnregisteredOp) else None
    if owner_name in _CONSTANT_KINDS or owner_name == "torch.constant.none":
        constant = _constant_value(owner)
        if constant is not None:
            return constant
    if owner_name == "torch.prim.ListConstruct" and depth < 4:
        items = [_describe(item, depth + 1) for item in owner.operands]
        return None if None in items else ("list", tuple(items))
    if isinstance(value_type, IntType):
        return _UNKNOWN_INT
    if isinstance(value_type, FloatType | NumberType):
        return _UNKNOWN_FLOAT
    return None


def _constant_value(op: Operation) -> tuple | None:
    attr = _value_attr(op)
    if attr is None:
        return ("value", None)
    kind = type(attr)
    if kind is IntegerAttr:
        value = attr.value.data
        return ("value", bool(value) if attr.type == i1 else value)
    if kind is FloatAttr:
        value = attr.value.data
        return ("float", repr(value))  # repr: -0.0 and nan are keys of their own
    if kind is StringAttr:
        return ("value", attr.data)
    return None


# ------------------------------------------------------------------ inference


def _cached_verdict(signature: tuple) -> str | None:
    if len(_VERDICTS) > MAX_CACHED_VERDICTS:
        _VERDICTS.clear()
    try:
        return _VERDICTS[signature]
    except KeyError:
        verdict = _verdict(*signature)
        _VERDICTS[signature] = verdict
        return verdict


_VERDICTS: dict[tuple, str | None] = {}


def _verdict(name: str, operands: tuple, results: tuple) -> str | None:
    """Why the declared `results` contradict the op, or None when they do not (or
    nothing can be said)."""
    overload = _overload(name)
    if overload is None:
        return None
    schema = overload._schema
    if len(operands) != len(schema.arguments):
        return None  # not PyTorch's signature of the op: nothing to compare with
    returns = schema.returns
    if len(results) != len(returns):
        return f"declares {len(results)} result(s), {schema.name} returns {len(returns)}"
    unknown = _has_unknowns(operands)
    inferred = [_infer(overload, operands, variant) for variant in (0, 1)[: 1 + unknown]]
    if any(outcome is None for outcome in inferred):
        return None
    by_value = _has_unknown_scalars(operands)
    for index, (declared, returned) in enumerate(zip(results, returns)):
        outcomes = [outcome[index] for outcome in inferred]
        problem = _compare(declared, str(returned.type), outcomes, by_value)
        if problem:
            return f"result #{index}: {problem}"
    return None


@functools.cache
def _overload(name: str):
    """`torch.aten.add.Tensor` -> `torch.ops.aten.add.Tensor` (no overload: `.default`),
    or None when PyTorch has no such op."""
    parts = name.split(".")
    if len(parts) not in (3, 4) or parts[0] != "torch":
        return None
    import torch  # only programs with torch ops pay for importing it

    _, namespace, packet_name, *overload = parts
    try:
        packet = getattr(getattr(torch.ops, namespace), packet_name)
        return getattr(packet, overload[0] if overload else "default")
    except (AttributeError, RuntimeError):
        return None


def _has_unknowns(described: Any) -> bool:
    if described == _UNKNOWN_INT or described == _UNKNOWN_FLOAT:
        return True
    if isinstance(described, tuple) and described and described[0] == "tensor":
        return DYNAMIC_DIM in described[1].shape
    if isinstance(described, tuple) and described and described[0] == "list":
        return any(_has_unknowns(item) for item in described[1])
    return isinstance(described, tuple) and any(_has_unknowns(item) for item in described)


def _has_unknown_scalars(described: Any) -> bool:
    """Whether a run-time int or float is among the operands: stand-ins cannot say what
    sizes it gives, since equal stand-ins may stand for different values (`x[i:i + 1]`
    has `i` and `i + 1`, both unknown)."""
    if described == _UNKNOWN_INT or described == _UNKNOWN_FLOAT:
        return True
    if isinstance(described, tuple) and described and described[0] == "tensor":
        return False
    if isinstance(described, tuple) and described and described[0] == "list":
        return any(_has_unknown_scalars(item) for item in described[1])
    return isinstance(described, tuple) and any(_has_unknown_scalars(i) for i in described)


def _infer(overload, operands: tuple, variant: int) -> tuple | None:
    """The op's outputs on meta tensors standing for `operands`, one per schema return;
    None when PyTorch cannot infer them so."""
    import torch

    arguments = overload._schema.arguments
    try:
        values = [
            torch.device("meta") if "Device" in str(a.type) else _stand_in(described, variant)
            for a, described in zip(arguments, operands)
        ]
    except _NotInferable:
        return None
    positional = [v for a, v in zip(arguments, values) if not a.kwarg_only]
    keywords = {a.name: v for a, v in zip(arguments, values) if a.kwarg_only}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outputs = overload(*positional, **keywords)
    except Exception:  # noqa: BLE001 - no meta kernel, data-dependent, or invalid operands
        return None
    if len(overload._schema.returns) == 1:
        outputs = (outputs,)
    return tuple(outputs) if isinstance(outputs, tuple | list) else None


class _NotInferable(Exception):
    """An operand has no meta stand-in (an element type torch does not have)."""


def _stand_in(described: tuple, variant: int) -> Any:
    import torch

    kind = described[0]
    if kind == "tensor":
        tensor_type = described[1]
        shape = [STAND_IN_SIZES[variant] if d == DYNAMIC_DIM else d for d in tensor_type.shape]
        dtype = torch_dtypes().get(str(tensor_type.element_type))
        if dtype is None:
            raise _NotInferable(str(tensor_type.element_type))
        return torch.empty(shape, dtype=dtype, device="meta")
    if kind == "value":
        return described[1]
    if kind == "float":
        return float(described[1])
    if kind == "list":
        return [_stand_in(item, variant) for item in described[1]]
    if described == _UNKNOWN_INT:
        return STAND_IN_SIZES[variant]
    return STAND_IN_FLOATS[variant]


def _compare(
    declared: Attribute, returned: str, inferred: list[Any], by_value: bool = False
) -> str | None:
    """Why `declared` cannot be the type of a result PyTorch infers as `inferred` (one
    value per inference), or None. `by_value`: sizes may depend on run-time values, so
    only the rank is compared."""
    import torch

    if returned == "Tensor":
        if not all(isinstance(value, torch.Tensor) for value in inferred):
            return None
        if not isinstance(declared, ValueTensorType):
            return f"declared {declared}, but the op returns a tensor"
        return _compare_tensor(declared, inferred, by_value)
    expected = _SCALAR_RETURNS.get(returned)
    if expected is not None and not isinstance(declared, expected):
        return f"declared {declared}, but the op returns a {returned}"
    return None


def _compare_tensor(
    declared: ValueTensorType, inferred: list[Any], by_value: bool = False
) -> str | None:
    dtypes = {value.dtype for value in inferred}
    shapes = [tuple(value.shape) for value in inferred]
    ranks = {len(shape) for shape in shapes}
    element = declared.element_type
    if element is not None and len(dtypes) == 1:
        (dtype,) = dtypes
        if torch_dtypes().get(str(element)) != dtype:
            return f"declared {declared}, but the op computes {_spellings().get(dtype, dtype)} elements"
    if declared.shape is None or len(ranks) != 1:
        return None
    stable = [
        dims[0] if len(set(dims)) == 1 and not by_value else DYNAMIC_DIM for dims in zip(*shapes)
    ]
    if len(stable) != len(declared.shape) or not all(
        DYNAMIC_DIM in (d, s) or d == s for d, s in zip(declared.shape, stable)
    ):
        spelled = ",".join("?" if s == DYNAMIC_DIM else str(s) for s in stable)
        return f"declared {declared}, but the op computes shape [{spelled}]"
    return None


_SCALAR_RETURNS: dict[str, type | tuple[type, ...]] = {
    "int": (IntType, NumberType),
    "float": (FloatType, NumberType),
    "bool": BoolType,
    "Scalar": (IntType, FloatType, NumberType, BoolType),
}


@functools.cache
def torch_dtypes() -> dict[str, Any]:
    """torch's dtypes by their torch-mlir spelling (a function: importing torch is needed
    only for programs that have torch ops to check)."""
    import torch

    return {
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
        "complex<f32>": torch.complex64,
        "complex<f64>": torch.complex128,
    }


@functools.cache
def _spellings() -> dict[Any, str]:
    return {dtype: name for name, dtype in torch_dtypes().items()}


__all__ = ["torch_dtypes", "torch_op_class", "verify_torch_op"]
