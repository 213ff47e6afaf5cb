"""Carry plans: how a set of Python values flattens into typed SSA leaves and back.

Where paths meet (a join) or a loop carries values around (a staged `dy.while`), each
Python value becomes a template (containers, compile-time constants kept as they are) whose
holes are SSA leaves: tensors, host scalars and `!dy.list`s. A plan records the type, kind
and example of every leaf and, per path, the value it brings (`columns`); `rebuild` puts
the Python structure back together around the results of the op that merged them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from xdsl.ir import Attribute, SSAValue

from frontends.torch import items, scalars, staging
from frontends.torch.items import cast_to
from frontends.torch.values import (
    SCALAR_TYPES,
    UNKNOWN_ITEM,
    HostScalar,
    OptionalValue,
    RuntimeChoice,
    StagedList,
    StagedTensor,
    Undefined,
    describe,
    example_of,
    is_unknown_item,
    join_types,
    same,
    scalar_kind,
    torch_dtype,
)
from ir import dy
from ir.dy import ListType
from ir.torch import DYNAMIC_DIM, ValueTensorType

if TYPE_CHECKING:
    from frontends.torch.converter import Converter


@dataclass
class Keep:
    """A value every path agrees on: kept as it is, no leaf."""

    value: Any


@dataclass
class Hole:
    """Leaf `index` of the plan."""

    index: int


@dataclass
class Conflict:
    """Paths disagree in a way no leaf can carry: the name is undefined after the join."""

    reason: str


@dataclass
class OptionalNode:
    """A value that is None on some paths: a presence flag and the value."""

    present: Any
    value: Any


@dataclass(eq=False)
class UnionNode:
    """A value whose kind differs between paths (an exit index that is a Python int on
    one path, a 0-d tensor on another, a run-time int on a third): a tag leaf says which
    alternative a path holds, each alternative has its own leaves. Rebuilt as a
    `RuntimeChoice` that each use dispatches on."""

    tag: Any
    alternatives: list


UNION_MESSAGE = "internal: a union's tag names no alternative"


def has_conflict(node: Any) -> bool:
    if isinstance(node, Conflict):
        return True
    if isinstance(node, Container):
        return any(has_conflict(item) for item in node.items)
    if isinstance(node, OptionalNode):
        return has_conflict(node.present) or has_conflict(node.value)
    if isinstance(node, UnionNode):
        return any(has_conflict(item) for item in node.alternatives)
    return False


@dataclass(eq=False)
class HandleRef:
    """A name that refers to a tensor handle carried by a staged loop as its own leaf: it
    keeps referring to that same handle (an alias of it), whose value the loop carries."""

    handle: Any


@dataclass(eq=False)
class AliasOf:
    """A name that refers to the same list as the name at `position` of a staged loop's
    names: both are carried as one leaf and rebuilt as one object, so an update through
    either name is seen through the other."""

    position: int
    target: Any


class Placeholder:
    """Stands for the value leaves of a path on which an optional value is None."""


PLACEHOLDER = Placeholder()


@dataclass
class Container:
    """A tuple, list or dict whose items are merged one by one."""

    kind: type
    items: list
    keys: list | None = None


@dataclass
class CarryPlan:
    """How a set of Python values flattens into typed SSA leaves and back.

    `types[i]` is the type of leaf i; `kinds[i]` is "tensor", a scalar kind, or "list";
    `examples[i]` is the example a rebuilt leaf gets.
    """

    template: Any = None
    types: list = field(default_factory=list)
    kinds: list = field(default_factory=list)
    examples: list = field(default_factory=list)
    possible: list = field(default_factory=list)
    columns: list[list] = field(default_factory=list)
    unions: bool = False
    """Whether values whose kind differs between paths merge as a `UnionNode` (values a
    path returns) rather than a `Conflict` (names, undefined after the join)."""


def add_leaf(
    plan: CarryPlan,
    values: list,
    kind: Any,
    type_: Any,
    example: Any,
    possible: frozenset | None = None,
):
    plan.types.append(type_)
    plan.kinds.append(kind)
    plan.examples.append(example)
    plan.possible.append(possible)
    for column, value in zip(plan.columns, values):
        column.append(value)
    return Hole(len(plan.types) - 1)


def list_element(cx: Converter, values: list) -> tuple[Attribute | None, Any]:
    """The item type that every list among `values` (Python lists, run-time lists)
    conforms to, and an example item (see `items`); (None, None) when there is none."""
    element: Attribute = UNKNOWN_ITEM
    example = None
    for value in values:
        if isinstance(value, StagedList):
            candidates = [(items.list_item_type(value), value.example_item)]
        else:
            candidates = [(items.item_type(cx, item), items.item_example(item)) for item in value]
        for candidate, candidate_example in candidates:
            if candidate is None:
                return None, None
            if is_unknown_item(candidate):
                continue
            joined = candidate if is_unknown_item(element) else join_types(element, candidate)
            if joined is None:
                return None, None
            if example is None:
                example = candidate_example
            element = joined
    return element, example


def rebuild(plan: CarryPlan, results: list[SSAValue]) -> Any:
    """The Python values of a plan's template, its holes filled from `results`; a node
    reached twice (names that alias on every path) builds one object."""
    built: dict[int, Any] = {}

    def build(node: Any) -> Any:
        if id(node) not in built:
            built[id(node)] = build_new(node)
        return built[id(node)]

    def build_new(node: Any) -> Any:
        if isinstance(node, Keep):
            return node.value
        if isinstance(node, HandleRef):
            return node.handle
        if isinstance(node, AliasOf):
            return build(node.target)
        if isinstance(node, Conflict):
            return Undefined(node.reason)
        if isinstance(node, OptionalNode):
            present, value = build(node.present), build(node.value)
            if isinstance(present, bool):
                return value if present else None
            return OptionalValue(present, value)
        if isinstance(node, UnionNode):
            tag = build(node.tag)
            options = [build(item) for item in node.alternatives]
            if isinstance(tag, int):
                return options[tag]
            return RuntimeChoice(tag, list(range(len(options))), options, UNION_MESSAGE)
        if isinstance(node, Container):
            parts = [build(item) for item in node.items]
            if node.kind is dict:
                return dict(zip(node.keys, parts))
            if node.kind is list:
                return parts
            return items.rebuild_record(node.kind, parts)
        assert isinstance(node, Hole)
        return leaf_value(
            plan.kinds[node.index],
            results[node.index],
            plan.examples[node.index],
            plan.possible[node.index],
        )

    return build(plan.template)


def leaf_value(kind: Any, value: SSAValue, example: Any, possible: frozenset | None) -> Any:
    if kind == "tensor":
        return StagedTensor(value, example)
    if kind == "list":
        return StagedList(value, example)
    return HostScalar(value, example, possible)


def carry_plan(
    cx: Converter,
    values: list,
    node: ast.AST,
    refined: dict,
    widened: dict | None = None,
    handle_names: dict | None = None,
    list_aliases: dict | None = None,
) -> CarryPlan:
    """The plan of a staged loop's carried values (one per name). `refined` gives leaf
    types the body widened; `widened` gives, by name position, a value the body assigned
    to a name that entered the loop as None: that name is carried as an optional value
    shaped like it. `list_aliases` maps a name's position to an earlier position holding
    the same list."""
    plan = CarryPlan(columns=[[]])
    items: list = []
    for position, value in enumerate(values):
        shape = (widened or {}).get(position)
        if position in (list_aliases or {}):
            target = list_aliases[position]
            items.append(AliasOf(target, items[target]))
        elif position in (handle_names or {}):
            items.append(HandleRef(value))
        elif value is None and shape is not None:
            present = add_leaf(plan, [False], bool, SCALAR_TYPES[bool], False)
            items.append(OptionalNode(present, _absent_node(cx, shape, plan, node)))
        else:
            items.append(carry_node(cx, value, plan, node))
    for index, refined_type in refined.items():
        plan.types[index] = refined_type
    plan.template = Container(list, items)
    return plan


def carry_node(cx: Converter, value: Any, plan: CarryPlan, node: ast.AST) -> Any:
    if isinstance(value, StagedTensor | torch.Tensor):
        example = value.example if isinstance(value, StagedTensor) else value
        return add_leaf(plan, [value], "tensor", staging.tensor_type_of(cx, value), example)
    kind = scalar_kind(value)
    if kind is not None:
        example = example_of(value)
        return add_leaf(plan, [value], kind, SCALAR_TYPES[kind], example)
    if isinstance(value, list | StagedList):
        element, example = list_element(cx, [value])
        if element is None:
            raise cx.unsupported(
                node,
                "loop",
                "a list carried by a data-dependent loop must hold items of one type "
                "(tensors, numbers, lists or tuples of these)",
            )
        return add_leaf(plan, [value], "list", ListType(element), example)
    if items.is_record(value):
        return Container(type(value), [carry_node(cx, v, plan, node) for v in value])
    if isinstance(value, OptionalValue):
        present = carry_node(cx, value.present, plan, node)
        return OptionalNode(present, carry_node(cx, value.value, plan, node))
    return Keep(value)


def _absent_node(cx: Converter, shape: Any, plan: CarryPlan, node: ast.AST) -> Any:
    """A plan node shaped like `shape` whose leaves enter the loop absent (placeholders)."""
    scratch = CarryPlan(columns=[[]])
    template = carry_node(cx, shape, scratch, node)
    offset = len(plan.types)
    for kind, type_, example in zip(scratch.kinds, scratch.types, scratch.examples):
        add_leaf(plan, [PLACEHOLDER], kind, type_, example)
    return _shift_holes(template, offset)


def _shift_holes(node: Any, offset: int) -> Any:
    if isinstance(node, Hole):
        return Hole(node.index + offset)
    if isinstance(node, Container):
        return Container(node.kind, [_shift_holes(i, offset) for i in node.items], node.keys)
    if isinstance(node, OptionalNode):
        return OptionalNode(_shift_holes(node.present, offset), _shift_holes(node.value, offset))
    if isinstance(node, UnionNode):
        items = [_shift_holes(item, offset) for item in node.alternatives]
        return UnionNode(_shift_holes(node.tag, offset), items)
    return node


class CarriedNameRebound(Exception):
    """Names that referred to carried tensor handles hold other values at an exit of the
    loop body (they were rebound, not updated in place): each is carried as its own leaf.
    All of them are reported at once, so that the loop is restaged once, not once per name."""

    def __init__(self, positions: list[int]):
        super().__init__(positions)
        self.positions = positions


class CarriedNameChanged(Exception):
    """A name that entered a staged loop as None holds another value at an exit of its
    body: the loop is staged again with the name carried as an optional value."""

    def __init__(self, position: int, value: Any):
        super().__init__(position)
        self.position = position
        self.value = value


def collect_carried(
    cx: Converter, values: list, template: Any, leaves: list, node: ast.AST
) -> None:
    """The leaves of the current values of a staged loop's names, in plan order."""
    assert isinstance(template, Container)
    for position, (value, item) in enumerate(zip(values, template.items)):
        if isinstance(item, Keep) and item.value is None and value is not None:
            raise CarriedNameChanged(position, value)
        if isinstance(item, HandleRef):
            if value is not item.handle:
                raise CarriedNameRebound(_rebound_positions(values, template))
            continue
        if isinstance(item, AliasOf):
            if value is not values[item.position]:
                raise CarriedNameRebound([position])
            continue
        _collect(cx, value, item, leaves, node)


def _rebound_positions(values: list, template: Container) -> list[int]:
    return [
        position
        for position, (value, item) in enumerate(zip(values, template.items))
        if isinstance(item, HandleRef) and value is not item.handle
    ]


def _collect(cx: Converter, value: Any, item: Any, leaves: list, node: ast.AST) -> None:
    if isinstance(item, Keep):
        if not same(value, item.value):
            raise cx.unsupported(
                node,
                "loop",
                f"a loop-carried {describe(item.value)} "
                f"becomes {describe(value)} in a data-dependent loop",
            )
    elif isinstance(item, Container):
        if type(value) is not item.kind or len(value) != len(item.items):
            raise cx.unsupported(node, "loop", "a loop-carried tuple changes shape")
        for part, part_item in zip(value, item.items):
            _collect(cx, part, part_item, leaves, node)
    elif isinstance(item, OptionalNode):
        if value is None:
            leaves.append(False)
            leaves.extend([PLACEHOLDER] * _count_holes(item.value))
        elif isinstance(value, OptionalValue):
            leaves.append(value.present)
            _collect(cx, value.value, item.value, leaves, node)
        else:
            leaves.append(True)
            _collect(cx, value, item.value, leaves, node)
    else:
        leaves.append(value)


def conforms(observed: Any, expected: Any) -> bool:
    """Whether a leaf of type `observed` can be carried where `expected` is (a tensor whose
    sizes the expected type leaves open, a list of such tensors)."""
    if observed == expected:
        return True
    if isinstance(observed, ValueTensorType) and isinstance(expected, ValueTensorType):
        return dy.tensor_conforms(observed, expected)
    if isinstance(observed, ListType) and isinstance(expected, ListType):
        element = expected.element_type
        return not is_unknown_item(element) and dy.item_conforms(observed.element_type, element)
    return False


def leaf_type(cx: Converter, value: Any, kind: Any, expected: Any) -> Any:
    """The type `value` has as a leaf of `kind` (a description when it is not one)."""
    if value is PLACEHOLDER:
        return expected
    if isinstance(value, Undefined):
        raise cx.unsupported(cx.node, "loop", value.reason)
    if kind == "tensor":
        if not isinstance(value, StagedTensor | torch.Tensor):
            return f"a {describe(value)}"
        return staging.tensor_type_of(cx, value)
    if kind == "list":
        if isinstance(value, StagedList):
            return ListType(items.list_item_type(value))
        if isinstance(value, list):
            element, _ = list_element(cx, [value])
            if element is None:
                return "a list of items of different types"
            if is_unknown_item(element):
                return expected
            if element != expected.element_type:
                return ListType(element)
            return expected
        return f"a {describe(value)}"
    observed = scalar_kind(value)
    return SCALAR_TYPES[observed] if observed is not None else f"a {describe(value)}"


def materialize(
    cx: Converter, value: Any, kind: Any, node: ast.AST, expected: Any = None
) -> SSAValue:
    """The SSA value holding `value` (a leaf of kind "tensor", "list" or bool/int/float),
    of type `expected` where one is given."""
    if value is PLACEHOLDER:
        return placeholder(cx, kind, expected, node)
    if kind == "tensor":
        return cast_to(cx, staging.tensor_value(cx, value, node), expected, node)
    if kind == "list":
        list_type = expected if expected is not None else ListType(list_element(cx, [value])[0])
        return items.pack(cx, value, list_type, node)
    return scalars.scalar_value(cx, value, kind, node)


def placeholder(cx: Converter, kind: Any, expected: Any, node: ast.AST) -> SSAValue:
    """A value of the expected type for a path where the optional value is None (it is
    never read there: every read is guarded by its presence flag)."""
    if kind == "list":
        return cx.emit(dy.ListEmptyOp(expected), node).result
    if kind != "tensor":
        return scalars.scalar_value(cx, kind(0), kind, node)
    dtype = torch_dtype(expected.element_type)
    shape = [0 if size == DYNAMIC_DIM else size for size in expected.shape]
    zeros = cx.placeholders.setdefault(str(expected), torch.zeros(shape, dtype=dtype))
    return cast_to(cx, staging.constant_value(cx, zeros, node), expected, node)


def leaf_name(names: list[str], plan: CarryPlan, index: int) -> str:
    position = 0
    assert isinstance(plan.template, Container)
    for name, item in zip(names, plan.template.items):
        count = _count_holes(item)
        if position <= index < position + count:
            return f"'{name}'"
        position += count
    return f"#{index}"


def _count_holes(node: Any) -> int:
    if isinstance(node, Hole):
        return 1
    if isinstance(node, Container):
        return sum(_count_holes(item) for item in node.items)
    if isinstance(node, OptionalNode):
        return _count_holes(node.present) + _count_holes(node.value)
    if isinstance(node, UnionNode):
        return _count_holes(node.tag) + sum(_count_holes(item) for item in node.alternatives)
    return 0
