"""Joins: where paths meet, their values are merged.

A path that reaches a join (the end of a branch, of an unrolled loop, of an inlined
helper) records an `Arrival` with its block and its values. `resolve` merges them (SSA
construction by comparing the paths' environments): values every path agrees on are kept,
tensors of one type, host scalars of one kind and lists become results of the `dy.if`s on
the way (each arriving block ends with a `dy.yield`), values that are None on some paths
become a presence flag plus the value, and names whose values disagree in type become
`Undefined`, an error only if the program reads them.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from xdsl.ir import Block, BlockArgument, Region, SSAValue

from frontends.torch import items, staging
from frontends.torch.plans import (
    PLACEHOLDER,
    CarryPlan,
    Conflict,
    Container,
    Hole,
    Keep,
    OptionalNode,
    UnionNode,
    add_leaf,
    has_conflict,
    list_element,
    materialize,
    rebuild,
)
from frontends.torch.state import Arrival, Join
from frontends.torch.values import (
    SCALAR_TYPES,
    HostScalar,
    OptionalValue,
    StagedList,
    StagedTensor,
    Undefined,
    describe,
    example_of,
    join_types,
    possible_union,
    same,
    scalar_kind,
)
from ir import dy
from ir.dy import ListType

if TYPE_CHECKING:
    from frontends.torch.constants import FrozenConstants
    from frontends.torch.converter import Converter


def arrive(cx: Converter, join: Join, value: Any, node: ast.AST) -> None:
    staging.flush(cx)
    if join.loop_depth != cx.loop_depth:
        raise cx.unsupported(
            node,
            "early exit",
            "leaving a data-dependent loop towards the end of an "
            "inlined function or an unrolled loop is not supported",
        )
    frame = cx.frame
    assert frame is not None
    payload = freeze(dict(frame.env) if join.carries_environment else value, cx.frozen_constants)
    touched = touched_handles(cx, join.mutation_mark, join.owner)
    cx.arrivals.append(Arrival(join, cx.block, payload, touched))
    cx.reachable = False


def touched_handles(cx: Converter, mark: int, owner: Block) -> dict[int, tuple[Any, Any, Any]]:
    """The handles defined before `owner`'s branch that were updated in place since `mark`,
    with their value then and now."""
    touched: dict[int, tuple[Any, Any, Any]] = {}
    for handle, before in cx.mutations[mark:]:
        if id(handle) in touched:
            continue
        previous = before[0] if isinstance(handle, StagedList) else before
        if isinstance(previous, SSAValue) and ssa_visible(previous, owner):
            touched[id(handle)] = (handle, before, _current(handle))
    return touched


def _current(handle: Any) -> Any:
    if isinstance(handle, StagedList):
        return (handle.value, handle.observed_element)
    return handle.value


def resolve(cx: Converter, join: Join, node: ast.AST) -> Any:
    """Merge what arrived at `join` and continue in its owner block; returns the merged
    payload (`cx.reachable` is False when nothing arrived)."""
    arrivals = [a for a in cx.arrivals if a.join is join]
    cx.arrivals = [a for a in cx.arrivals if a.join is not join]
    cx.continue_at(join.owner, reachable=bool(arrivals))
    if not arrivals:
        return None
    if len(arrivals) == 1 and arrivals[0].block is join.owner:
        return thaw(arrivals[0].payload, cx.frozen_constants)
    plan = CarryPlan(columns=[[] for _ in arrivals])
    handles = _merge_touched(cx, arrivals, plan)
    payloads = [a.payload for a in arrivals]
    if join.carries_environment:
        plan.template = merge_environments(cx, payloads, plan, join.owner, node)
    else:
        plan.unions = True
        plan.template = merge(cx, payloads, plan, join.owner)
    for arrival, column in zip(arrivals, plan.columns):
        with cx.at(arrival.block):
            operands = [
                materialize(cx, value, kind, node, expected)
                for value, kind, expected in zip(column, plan.kinds, plan.types)
            ]
            cx.emit(dy.YieldOp(*operands), node)
    outermost = join.owner.last_op
    assert isinstance(outermost, dy.IfOp | dy.SwitchOp) and id(outermost) in join.pending_ifs
    completed = complete_branch(cx, outermost, join, plan.types)
    results = list(completed.results)
    for handle, before, hole in handles:
        cx.mutations.append((handle, before))
        leaf_plan = CarryPlan(
            template=hole,
            types=plan.types,
            kinds=plan.kinds,
            examples=plan.examples,
            possible=plan.possible,
        )
        merged = rebuild(leaf_plan, results)
        if isinstance(handle, StagedList):
            handle.value, handle.observed_element = merged.value, merged.observed_element
        else:
            handle.value = merged.value
    return thaw(rebuild(plan, results), cx.frozen_constants)


def _merge_touched(cx: Converter, arrivals: list[Arrival], plan: CarryPlan) -> list:
    """One leaf per handle some path updated in place: its value on each path (as before
    the join where the path left it alone). After the join the handle itself holds the
    merged value, so every name and container that refers to it sees the update."""
    handles: dict[int, tuple[Any, Any]] = {}
    for arrival in arrivals:
        for key, (handle, before, _) in arrival.touched.items():
            handles.setdefault(key, (handle, before))
    merged = []
    for key, (handle, before) in handles.items():
        values = []
        for arrival in arrivals:
            state = arrival.touched[key][2] if key in arrival.touched else before
            if isinstance(handle, StagedList):
                values.append(StagedList(state[0], handle.example_item, state[1]))
            else:
                values.append(StagedTensor(state, handle.example))
        node = merge(cx, values, plan, None)
        if not isinstance(node, Hole):
            raise cx.unsupported(
                cx.node,
                "in-place update",
                f"a tensor updated in place on some paths: {getattr(node, 'reason', node)}",
            )
        merged.append((handle, before, node))
    return merged


def complete_branch(
    cx: Converter, branch: dy.IfOp | dy.SwitchOp, join: Join, result_types: list
) -> dy.IfOp | dy.SwitchOp:
    """Give a branch whose paths reached `join` its results: the merged values, yielded by
    every region (nested pending branches first)."""
    for region in branch.regions:
        last = region.block.last_op
        if isinstance(last, dy.IfOp | dy.SwitchOp) and id(last) in join.pending_ifs:
            inner = complete_branch(cx, last, join, result_types)
            yield_op = dy.YieldOp(*inner.res if isinstance(inner, dy.SwitchOp) else inner.results)
            yield_op.location = inner.location
            region.block.add_op(yield_op)
    regions = []
    for region in branch.regions:
        moved = Region()
        region.move_blocks(moved)
        regions.append(moved)
    if isinstance(branch, dy.IfOp):
        completed = dy.IfOp(branch.cond, result_types, regions[0], regions[1])
    else:
        cases = list(branch.case_values)
        completed = dy.SwitchOp(branch.selector, cases, result_types, regions[0], regions[1:])
    completed.location = branch.location
    parent = branch.parent_block()
    assert parent is not None
    parent.insert_op_before(completed, branch)
    branch.detach()
    branch.erase()
    return completed


def merge_environments(
    cx: Converter, environments: list[dict], plan: CarryPlan, owner: Block, node: ast.AST
) -> Container:
    """Merge the variables of the paths name by name; a name that some paths never
    assigned is undefined after the join (an error only where it is read)."""
    names = list(dict.fromkeys(name for env in environments for name in env))
    merged_items = []
    aliases: dict[tuple, Any] = {}
    for name in names:
        if all(name in env for env in environments):
            values = [env[name] for env in environments]
            key = tuple(id(v) for v in values)
            if key not in aliases:
                aliases[key] = merge(cx, values, plan, owner)
            merged_items.append(aliases[key])
        else:
            line = getattr(node, "lineno", 0) + (cx.frame.source.line_offset if cx.frame else 0)
            merged_items.append(
                Keep(Undefined(f"'{name}' is assigned on some paths to line {line}, not all"))
            )
    return Container(dict, merged_items, names)


def merge(cx: Converter, values: list, plan: CarryPlan, owner: Block | None) -> Any:
    values = [cx.frozen_constants.live(v) if isinstance(v, torch.Tensor) else v for v in values]
    real = [v for v in values if v is not PLACEHOLDER]
    first = real[0]
    origin = getattr(first, "origin", None)
    if (
        origin is not None
        and owner is not None
        and len(real) == len(values)
        and all(getattr(v, "origin", None) is origin for v in values)
        and visible(origin, owner)
    ):
        return Keep(origin)  # one handle on every path; in-place updates merge it itself
    if all(same(v, first) for v in real) and visible(first, owner):
        return Keep(first)
    if any(isinstance(v, Undefined) for v in real):
        return Conflict(next(v for v in real if isinstance(v, Undefined)).reason)
    if any(v is None or isinstance(v, OptionalValue) for v in real):
        return merge_optional(cx, values, plan, owner)
    if len(real) < len(values):
        return merge_with_placeholders(cx, values, real, plan, owner)
    if all(isinstance(v, StagedTensor | torch.Tensor) for v in values):
        types_ = [staging.tensor_type_of(cx, v) for v in values]
        joined = types_[0]
        for other in types_[1:]:
            joined = join_types(joined, other) if joined is not None else None
        if joined is None:
            other = next(t for t in types_ if t != types_[0])
            return merge_union(cx, values, plan, owner) or Conflict(
                f"it is a tensor of type {types_[0]} on one path and {other} on another"
            )
        example = first.example if isinstance(first, StagedTensor) else first
        return add_leaf(plan, values, "tensor", joined, example)
    kinds = [scalar_kind(v) for v in values]
    if all(kinds):
        if any(k is not kinds[0] for k in kinds):
            return merge_union(cx, values, plan, owner) or Conflict(
                "it is a Python "
                + " on one path and a ".join(sorted({k.__name__ for k in kinds}))
                + " on another"
            )
        example = example_of(first)
        return add_leaf(
            plan, values, kinds[0], SCALAR_TYPES[kinds[0]], example, possible_union(values)
        )
    if all(isinstance(v, list | StagedList) for v in values):
        if all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
            return Container(
                list, [merge(cx, list(column), plan, owner) for column in zip(*values)]
            )
        element, example = list_element(cx, values)
        if element is None:
            return Conflict(
                "it is a list whose length differs between paths and whose items are not "
                "of one type (tensors, numbers, lists or tuples of these; a record written "
                "as a list, `[tokens, score]`, must be a tuple)"
            )
        return add_leaf(plan, values, "list", ListType(element), example)
    if _tuples_of_one_type(values):
        columns = [merge(cx, list(column), plan, owner) for column in zip(*values)]
        return Container(type(first), columns)
    if all(isinstance(v, dict) for v in values) and len({tuple(v) for v in values}) == 1:
        keys = list(first)
        return Container(dict, [merge(cx, [v[k] for v in values], plan, owner) for k in keys], keys)
    described = sorted({describe(v) for v in values})
    return merge_union(cx, values, plan, owner) or Conflict(
        f"it is {' on one path and '.join(described)} on another"
    )


def merge_union(cx: Converter, values: list, plan: CarryPlan, owner: Block | None) -> Any:
    """Values of different kinds on different paths, where the plan allows it: a tag leaf
    and one alternative per kind (None if some alternative cannot merge either)."""
    keys = [_union_key(v) for v in values]
    kinds = list(dict.fromkeys(keys))
    if not plan.unions or len(kinds) < 2:
        return None
    tags = [kinds.index(key) for key in keys]
    columns = [
        [v if t == index else PLACEHOLDER for v, t in zip(values, tags)]
        for index in range(len(kinds))
    ]
    scratch = CarryPlan(columns=[[] for _ in values], unions=True)
    if any(has_conflict(merge(cx, column, scratch, owner)) for column in columns):
        return None
    tag = add_leaf(plan, tags, int, SCALAR_TYPES[int], tags[0], frozenset(tags))
    return UnionNode(tag, [merge(cx, column, plan, owner) for column in columns])


def _union_key(value: Any) -> Any:
    if isinstance(value, StagedTensor | torch.Tensor):
        example = value.example if isinstance(value, StagedTensor) else value
        return ("tensor", example.dtype, example.dim())
    kind = scalar_kind(value)
    return kind if kind is not None else type(value)


def _tuples_of_one_type(values: list) -> bool:
    """Tuples, or named tuples of one class (a beam search's hypotheses), of one length."""
    kind = type(values[0])
    return (
        items.is_record(values[0])
        and all(type(v) is kind for v in values)
        and len({len(v) for v in values}) == 1
    )


def merge_optional(cx: Converter, values: list, plan: CarryPlan, owner: Block) -> Any:
    """Merge values of which some are None: a presence flag plus the values, with
    placeholders where they are None."""
    presents: list = []
    inner: list = []
    for value in values:
        if value is None or value is PLACEHOLDER:
            presents.append(False if value is None else PLACEHOLDER)
            inner.append(PLACEHOLDER)
        elif isinstance(value, OptionalValue):
            presents.append(value.present)
            inner.append(value.value)
        else:
            presents.append(True)
            inner.append(value)
    return OptionalNode(merge(cx, presents, plan, owner), merge(cx, inner, plan, owner))


def merge_with_placeholders(
    cx: Converter, values: list, real: list, plan: CarryPlan, owner: Block
) -> Any:
    first = real[0]
    if isinstance(first, tuple | list) and all(
        type(v) is type(first) and len(v) == len(first) for v in real
    ):
        columns = [
            [PLACEHOLDER if v is PLACEHOLDER else v[i] for v in values] for i in range(len(first))
        ]
        return Container(type(first), [merge(cx, c, plan, owner) for c in columns])
    merged = merge(cx, real, CarryPlan(columns=[[] for _ in real]), owner)
    if isinstance(merged, Keep | Conflict):
        return merged
    if isinstance(merged, Container | OptionalNode | UnionNode):
        return Conflict("it is a nested optional value")
    scratch = CarryPlan(columns=[[] for _ in real])
    merge(cx, real, scratch, owner)
    return add_leaf(
        plan,
        values,
        scratch.kinds[0],
        scratch.types[0],
        scratch.examples[0],
        scratch.possible[0],
    )


def ssa_visible(ssa: SSAValue, block: Block | None) -> bool:
    """Whether `ssa` is defined in `block` or a block enclosing it."""
    defining = ssa.owner if isinstance(ssa, BlockArgument) else ssa.owner.parent_block()
    current = block
    while current is not None:
        if current is defining:
            return True
        parent = current.parent_op()
        current = parent.parent_block() if parent is not None else None
    return False


def visible(value: Any, block: Block | None) -> bool:
    """Whether the SSA value behind `value` (if any) can be used in `block`."""
    if isinstance(value, StagedTensor | StagedList | HostScalar):
        ssa = value.value
        return isinstance(ssa, SSAValue) and ssa_visible(ssa, block)
    if isinstance(value, OptionalValue):
        return visible(value.present, block) and visible(value.value, block)
    if isinstance(value, tuple | list):
        return all(visible(v, block) for v in value)
    if isinstance(value, dict):
        return all(visible(v, block) for v in value.values())
    return True


def freeze(value: Any, constants: FrozenConstants, memo: dict[int, Any] | None = None) -> Any:
    """A snapshot of `value`: handles, containers and compile-time tensors (which the
    model may update in place later) copied, so later updates do not leak; objects
    reached twice (aliases) are copied once, so the snapshot keeps the aliasing."""

    def snapshot(leaf: Any) -> Any:
        if isinstance(leaf, StagedTensor | StagedList):
            return leaf.snapshot()
        if isinstance(leaf, torch.Tensor):
            return constants.freeze(leaf)
        return _NOT_A_LEAF

    return _copy_structure(value, snapshot, {} if memo is None else memo)


def thaw(value: Any, constants: FrozenConstants) -> Any:
    """The live form of a merged payload, which goes on as the program's values: each
    snapshot becomes the handle it was taken of where it still holds that handle's value
    (so aliases see later updates), else a handle of its own. A snapshot left in the
    program's values would take later in-place updates that a join credits to its origin."""

    def live(leaf: Any) -> Any:
        if isinstance(leaf, StagedTensor | StagedList) and leaf.origin is not None:
            return leaf.origin if _current(leaf.origin) == _current(leaf) else leaf.copy()
        if isinstance(leaf, torch.Tensor):
            return constants.live(leaf)
        return _NOT_A_LEAF

    return _copy_structure(value, live, {})


_NOT_A_LEAF = object()


def _copy_structure(value: Any, leaf: Callable[[Any], Any], memo: dict[int, Any]) -> Any:
    """`value` with its lists, dicts, tuples and optional values copied and each leaf
    replaced by `leaf(...)` (`_NOT_A_LEAF`: kept as is); an object reached twice is copied
    once, so the copy keeps the aliasing."""
    if id(value) in memo:
        return memo[id(value)]
    replaced = leaf(value)
    if replaced is not _NOT_A_LEAF:
        copy: Any = replaced
    elif isinstance(value, OptionalValue):
        copy = OptionalValue(value.present, _copy_structure(value.value, leaf, memo))
    elif isinstance(value, list):
        copy = []
        memo[id(value)] = copy
        copy.extend(_copy_structure(v, leaf, memo) for v in value)
    elif isinstance(value, dict):
        copy = {}
        memo[id(value)] = copy
        copy.update((k, _copy_structure(v, leaf, memo)) for k, v in value.items())
    elif type(value) is tuple:
        copy = tuple(_copy_structure(v, leaf, memo) for v in value)
    else:
        return value
    memo[id(value)] = copy
    return copy


def clone_containers(env: dict[str, Any]) -> dict[str, Any]:
    """The environment with its lists and dicts copied (for one arm of a branch to update),
    aliases copied once so that `b = a; b.append(t)` still updates `a`."""
    memo: dict[int, Any] = {}

    def clone(value: Any) -> Any:
        if id(value) in memo:
            return memo[id(value)]
        if isinstance(value, list):
            copy: Any = []
            memo[id(value)] = copy
            copy.extend(clone(v) for v in value)
            return copy
        if isinstance(value, dict):
            copy = {}
            memo[id(value)] = copy
            copy.update((k, clone(v)) for k, v in value.items())
            return copy
        return value

    return {name: clone(value) for name, value in env.items()}
