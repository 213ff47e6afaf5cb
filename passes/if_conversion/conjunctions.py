"""Batched conjunctions as one matrix product per level (GEMM) or one `all` per body.

A *tree* is a maximal group of `torch.aten.logical_and` ops of [N] bool tensors whose inner
results are used only inside the group; its *literals* are the values it combines, a
`logical_not(v)` literal counting as `v` negated. ``gemm`` gives every tree a level (one
more than the trees its literals depend on), stacks the literals of one level into an
[N, m] f32 table and evaluates all of the level's trees with one `mm` against a constant
[m, T] matrix of +1 (positive literal), -1 (negated) and 0: tree t holds where its sum
equals its count of positive literals (Hummingbird's path matrix and bias). Sums of at
most m ones are exact in f32. The block region is reordered by (level, position), which
keeps every use after its definition because all these ops are pure.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import f32, i1
from xdsl.ir import Operation, SSAValue
from xdsl.rewriter import Rewriter

from ir import dy
from ir.torch_build import TorchBuilder

_AND, _NOT = "torch.aten.logical_and", "torch.aten.logical_not"


def rewrite_conjunctions(ops: list[Operation], strategy: str) -> None:
    if strategy == "chain":
        return
    ops = [op for op in ops if op.parent is not None]
    ands = [op for op in ops if dy.is_torch_op(op) and dy.op_name(op) == _AND]
    members = set(ands)

    def internal(op: Operation) -> bool:
        uses = list(op.results[0].uses)
        return len(uses) == 1 and uses[0].operation in members

    roots = [op for op in ands if not internal(op)]
    if not roots:
        return
    literals = {root: _literals(root, members, internal) for root in roots}
    if strategy == "reduce":
        for root in roots:
            _reduce(root, literals[root])
    else:
        _gemm(ops, roots, literals, internal)
    _erase_dead(ops)


def _literals(root: Operation, members: set, internal) -> list[tuple[SSAValue, bool]]:
    """The distinct (value, positive) literals of the tree rooted at ``root``."""
    found: dict[tuple[SSAValue, bool], None] = {}
    stack = [root]
    while stack:
        op = stack.pop()
        for operand in reversed(op.operands):
            owner = operand.owner
            if isinstance(owner, Operation) and owner in members and internal(owner):
                stack.append(owner)
            elif isinstance(owner, Operation) and dy.is_torch_op(owner) and dy.op_name(owner) == _NOT:
                found.setdefault((owner.operands[0], False), None)
            else:
                found.setdefault((operand, True), None)
    return list(found)


def _reduce(root: Operation, literals: list[tuple[SSAValue, bool]]) -> None:
    block = root.parent_block()
    torch = TorchBuilder(lambda op: block.insert_op_before(op, root), root.location)
    columns = [
        torch.unsqueeze(value if positive else torch.unary("logical_not", value), 1)
        for value, positive in literals
    ]
    holds = torch.all_dim(torch.cat(columns, 1), 1)
    root.results[0].replace_all_uses_with(holds)


def _gemm(ops: list[Operation], roots: list[Operation], literals: dict, internal) -> None:
    region = [op for op in ops if op.parent is not None]
    position = {op: n for n, op in enumerate(region)}
    in_trees = {op for op in region if dy.is_torch_op(op) and dy.op_name(op) == _AND}
    level: dict[Operation, int] = {}
    root_set = set(roots)

    def level_of(value: SSAValue) -> int:
        owner = value.owner
        return level.get(owner, 0) if isinstance(owner, Operation) else 0

    for op in region:
        if op in root_set:
            level[op] = 1 + max((level_of(v) for v, _ in literals[op]), default=0)
        elif op not in in_trees:
            level[op] = max((level_of(v) for v in op.operands), default=0)
    block = region[0].parent_block()
    anchor = region[-1].next_op
    order = sorted((op for op in region if op not in in_trees), key=lambda op: (level[op], position[op]))
    by_level: dict[int, list[Operation]] = {}
    for root in roots:
        by_level.setdefault(level[root], []).append(root)
    for op in order:
        op.detach()
    replaced: dict[SSAValue, SSAValue] = {}

    def insert(op: Operation) -> None:
        if anchor is None:
            block.add_op(op)
        else:
            block.insert_op_before(op, anchor)

    pending_levels = sorted(by_level)
    for op in [*order, None]:
        while pending_levels and (op is None or pending_levels[0] <= level[op]):
            number = pending_levels.pop(0)
            _emit_level(by_level[number], literals, insert, replaced)
        if op is not None:
            insert(op)


def _emit_level(group: list[Operation], literals: dict, insert, replaced: dict) -> None:
    """One matrix product for the trees of one level; ``replaced`` maps the roots of lower
    levels (which literals may name) to their new values and learns this level's."""
    columns: dict[SSAValue, int] = {}
    for root in group:
        for value, _ in literals[root]:
            columns.setdefault(replaced.get(value, value), len(columns))
    weights = np.zeros((len(columns), len(group)), dtype=np.float32)
    positives = np.zeros(len(group), dtype=np.float32)
    for t, root in enumerate(group):
        for value, positive in literals[root]:
            weights[columns[replaced.get(value, value)], t] += 1.0 if positive else -1.0
            positives[t] += 1.0 if positive else 0.0
    torch = TorchBuilder(insert, group[0].location)
    table = torch.cat([torch.unsqueeze(torch.to_dtype(v, f32), 1) for v in columns], 1)
    sums = torch.matmul(table, torch.literal(weights, f32))
    holds = torch.binary("eq.Tensor", sums, torch.literal(positives, f32), i1)
    for t, root in enumerate(group):
        column = torch.select(holds, 1, t)
        replaced[root.results[0]] = column
        root.results[0].replace_all_uses_with(column)


def _erase_dead(ops: list[Operation]) -> None:
    for op in reversed(ops):
        if op.parent is not None and not any(result.uses for result in op.results):
            Rewriter.erase_op(op)
