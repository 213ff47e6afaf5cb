"""Replace branches whose condition is a constant by the region that always runs.

The frontend folds Python-static conditions itself; this pass catches the constants that
appear later (after inlining, or in hand-written IR) and leaves straight-line code that
outlining can merge into larger sub-graphs.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.ir import Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from ir import dy


def constant_int(value: SSAValue) -> int | None:
    """The integer (or i1) value of an `arith.constant`, else None."""
    owner = value.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, IntegerAttr):
        return owner.value.value.data
    return None


def inline_region_in_place(op: Operation, region: Region) -> None:
    """Replace `op` by the body of one of its single-block regions.

    A `dy.yield` terminator hands its values to `op`'s users. Any other exit (`dy.break`,
    `dy.continue`, `dy.return`) now ends the enclosing block, so what followed `op` there
    is unreachable and is erased.
    """
    block = region.block
    terminator = block.last_op
    assert terminator is not None
    parent_block = op.parent_block()
    assert parent_block is not None
    for nested in list(block.ops):
        if nested is terminator:
            break
        nested.detach()
        parent_block.insert_op_before(nested, op)
    if isinstance(terminator, dy.YieldOp):
        for result, value in zip(op.results, terminator.operands):
            result.replace_all_uses_with(value)
        parent_block.erase_op(op)
        return
    terminator.detach()
    parent_block.insert_op_before(terminator, op)
    unreachable = []
    current = op
    while current is not None:
        unreachable.append(current)
        current = current.next_op
    for dead in unreachable:
        dead.detach()
    for dead in unreachable:
        Rewriter.erase_op(dead, safe_erase=False)


def _chosen_region(op: Operation) -> Region | None:
    if isinstance(op, dy.IfOp):
        cond = constant_int(op.cond)
        if cond is None:
            return None
        return op.then_region if cond else op.else_region
    if isinstance(op, dy.SwitchOp):
        selector = constant_int(op.selector)
        if selector is None:
            return None
        for value, region in zip(op.case_values, op.case_regions):
            if value == selector:
                return region
        return op.default_region
    return None


@dataclass(frozen=True)
class FoldConstantBranches(ModulePass):
    """Inlines the taken region of every `dy.if` / `dy.switch` on an `arith.constant`."""

    name = "fold-constant-branches"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        changed = True
        while changed:
            changed = False
            for branch in list(op.walk()):
                if branch.parent is None:
                    continue
                region = _chosen_region(branch)
                if region is not None:
                    inline_region_in_place(branch, region)
                    changed = True
                    break
