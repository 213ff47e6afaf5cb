"""Items of lists whose length is known only at run time: their types, and how a Python
value goes into a `!dy.list` and comes back out.

An item is a tensor, a host number (a token id, a score), a list (a hypothesis's growing
token ids), or a tuple / named tuple of these (a beam search's `Hypothesis`). Its type is
the dialect's item type (`!torch.vtensor<...>`, `i1`/`i64`/`f64`, `!dy.list<T>`,
`tuple<...>`); a tuple is packed with `dy.tuple` and read back field by field with
`dy.tuple_get`, so the Python structure comes back (the named tuple class, remembered per
tuple type in `cx.tuple_classes`) around the run-time fields. Lists of different lengths and
tensors of different sizes among the items join as the item type's `!dy.list` and `?` dims.
"""

from __future__ import annotations

import ast
import collections
import sys
from types import MemberDescriptorType as MemberDescriptor
from typing import TYPE_CHECKING, Any

import torch
from xdsl.dialects.builtin import ArrayAttr, TupleType, UnregisteredOp
from xdsl.ir import Attribute, SSAValue

from frontends.torch import scalars, staging
from frontends.torch.values import (
    SCALAR_KINDS,
    SCALAR_TYPES,
    UNKNOWN_ITEM,
    HostScalar,
    StagedList,
    StagedTensor,
    example_of,
    is_unknown_item,
    join_types,
    scalar_kind,
    torch_dtype,
)
from ir import dy
from ir.dy import ListType
from ir.torch import DYNAMIC_DIM, ValueTensorType

if TYPE_CHECKING:
    from frontends.torch.converter import Converter

STAND_IN_SIZE = 2
"""The size of a `?` dimension in a stand-in example tensor (not 0 or 1, which tracing
specialises)."""


def is_record(value: Any) -> bool:
    """A tuple, a named tuple or a `torch.return_types` result (`topk`'s values and
    indices); not another tuple subclass such as `torch.Size`."""
    kind = type(value)
    return kind is tuple or (
        issubclass(kind, tuple)
        and (hasattr(kind, "_fields") or kind.__module__ == "torch.return_types")
    )


def item_type(cx: Converter, value: Any) -> Attribute | None:
    """The item type of `value` in a list of run-time length; None when it cannot be one."""
    if isinstance(value, StagedTensor | torch.Tensor):
        return staging.tensor_type_of(cx, value)
    kind = scalar_kind(value)
    if kind is not None:
        return SCALAR_TYPES[kind]
    if isinstance(value, StagedList):
        return ListType(list_item_type(value))
    if isinstance(value, list):
        element: Attribute = UNKNOWN_ITEM
        for item in value:
            part = item_type(cx, item)
            if part is None:
                return None
            joined = part if is_unknown_item(element) else join_types(element, part)
            if joined is None:
                return None
            element = joined
        return ListType(element)
    if is_record(value):
        fields = [item_type(cx, field) for field in value]
        if any(field is None for field in fields):
            return None
        record = TupleType(ArrayAttr(fields))
        cx.tuple_classes.setdefault(record, type(value))
        return record
    return None


def list_item_type(items: StagedList) -> Attribute:
    """The item type of a staged list, as precise as its appends so far make it."""
    element = items.element_type
    if is_unknown_item(element) and items.observed_element is not None:
        return items.observed_element
    return element


def item_example(value: Any) -> Any:
    """What the evaluator keeps as the example of an item: example tensors and numbers in
    the item's Python structure (a staged list as a list of its example item)."""
    if isinstance(value, StagedTensor):
        return value.example
    if isinstance(value, StagedList):
        return [] if value.example_item is None else [value.example_item]
    if isinstance(value, list):
        return [item_example(item) for item in value]
    if is_record(value):
        return rebuild_record(type(value), [item_example(field) for field in value])
    return example_of(value)


_RECORD_CLASSES: dict[str, type] = {}
"""Record classes returned by models converted in this process, by `record_class_name`."""


def record_class_name(kind: type) -> str:
    """`module:qualname` of a record class, as `record_class` finds it again."""
    name = f"{kind.__module__}:{kind.__qualname__}"
    _RECORD_CLASSES[name] = kind
    return name


def record_fields(kind: type) -> list[str]:
    """The field names of a named tuple or `torch.return_types` class."""
    if hasattr(kind, "_fields"):
        return list(kind._fields)
    names = [name for name in dir(kind) if isinstance(getattr(kind, name), MemberDescriptor)]
    return sorted(names, key=lambda name: _field_position(kind, name))


def _field_position(kind: type, name: str) -> int:
    probe = kind(tuple(range(kind.n_fields)))
    return getattr(probe, name)


def record_class(name: str, fields: tuple[str, ...]) -> type:
    """The class `record_class_name` named (the one converted last under that name); where
    it cannot be imported (a model loaded from a file under another module name), a named
    tuple of the same name and fields."""
    found = _RECORD_CLASSES.get(name)
    if found is None:
        found = _imported_record_class(name, fields)
        _RECORD_CLASSES[name] = found
    return found


def _imported_record_class(name: str, fields: tuple[str, ...]) -> type:
    module_name, _, qualname = name.partition(":")
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type) and tuple(record_fields(found)) == fields:
        return found
    return collections.namedtuple(qualname.rpartition(".")[2], fields)


def rebuild_record(kind: type, fields: list) -> Any:
    """A record of class `kind` with these fields."""
    if kind is tuple:
        return tuple(fields)
    if kind.__module__ == "torch.return_types":
        return kind(fields)
    return kind(*fields)


def conforms(value: Attribute, pattern: Attribute) -> bool:
    """Whether an item of type `value` may go where `pattern` is expected (any item where
    the list has no item type yet)."""
    return is_unknown_item(pattern) or dy.item_conforms(value, pattern)


def pack(cx: Converter, value: Any, expected: Attribute, node: ast.AST) -> SSAValue:
    """The SSA value of `value` as an item of type `expected`."""
    if isinstance(expected, ValueTensorType):
        tensor = staging.tensor_value(cx, value, node)
        if is_unknown_item(expected) or not dy.tensor_conforms(tensor.type, expected):
            return tensor
        return cast_to(cx, tensor, expected, node)
    if expected in SCALAR_KINDS:
        return scalars.scalar_value(cx, value, SCALAR_KINDS[expected], node)
    if isinstance(expected, ListType):
        if isinstance(value, StagedList):
            return value.value
        current = cx.emit(dy.ListEmptyOp(expected), node).result
        for item in value:
            packed = pack(cx, item, expected.element_type, node)
            current = cx.emit(dy.ListAppendOp(current, packed), node).result
        return current
    assert isinstance(expected, TupleType) and is_record(value)
    fields = [pack(cx, f, t, node) for f, t in zip(value, expected.types.data, strict=True)]
    return cx.emit(dy.TupleOp(fields), node).result


def cast_to(cx: Converter, value: SSAValue, expected: Any, node: ast.AST) -> SSAValue:
    """`value` as a value of the less precise tensor type `expected` (sizes become `?`):
    torch-mlir's `torch.tensor_static_info_cast`, which computes nothing."""
    if expected is None or value.type == expected:
        return value
    assert isinstance(expected, ValueTensorType) and dy.tensor_conforms(value.type, expected)
    cast = _STATIC_INFO_CAST.create(operands=[value], result_types=[expected])
    return cx.emit(cast, node).results[0]


_STATIC_INFO_CAST = UnregisteredOp.with_name("torch.tensor_static_info_cast")


def unpack(cx: Converter, value: SSAValue, example: Any, node: ast.AST) -> Any:
    """The Python value of an item held in `value`, shaped like `example` (None: a
    stand-in built from the item type)."""
    if example is None:
        example = stand_in(cx, value.type, node)
    item = value.type
    if isinstance(item, ValueTensorType):
        return StagedTensor(value, example)
    if item in SCALAR_KINDS:
        return HostScalar(value, example)
    if isinstance(item, ListType):
        return StagedList(value, example[0] if example else None, borrowed=True)
    assert isinstance(item, TupleType)
    fields = []
    for index, field_example in enumerate(example):
        field = cx.emit(dy.TupleGetOp(value, index), node).result
        fields.append(unpack(cx, field, field_example, node))
    return rebuild_record(type(example), fields)


def stand_in(cx: Converter, item: Attribute, node: ast.AST) -> Any:
    """An example item of type `item` for a list whose items the evaluator has not seen
    (appended to only inside a staged loop)."""
    if isinstance(item, ValueTensorType):
        if item.shape is None or item.element_type is None:
            raise cx.unsupported(node, "list item", f"the list's item type {item} is not known")
        shape = [STAND_IN_SIZE if size == DYNAMIC_DIM else size for size in item.shape]
        return torch.zeros(shape, dtype=torch_dtype(item.element_type))
    if item in SCALAR_KINDS:
        return SCALAR_KINDS[item](0)
    if isinstance(item, ListType):
        return []
    assert isinstance(item, TupleType)
    kind = cx.tuple_classes.get(item) or next(
        (k for t, k in cx.tuple_classes.items() if join_types(t, item) is not None), tuple
    )
    return rebuild_record(kind, [stand_in(cx, field, node) for field in item.types.data])
