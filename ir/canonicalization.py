"""Canonicalization patterns of the `dy` dialect (attached to the ops with xDSL's
`HasCanonicalizationPatternsTrait`, as MLIR's `getCanonicalizationPatterns`).

A branch on a constant is the region that always runs: `dy.if` on an `arith.constant` i1
and `dy.switch` on an `arith.constant` i64 are replaced by the body of the taken region.
"""

from __future__ import annotations

from xdsl.dialects import arith
from xdsl.dialects.builtin import IntegerAttr
from xdsl.ir import Operation, Region, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern
from xdsl.rewriter import InsertPoint

from ir import dy


def constant_int(value: SSAValue) -> int | None:
    """The integer (or i1) value of an `arith.constant`, else None."""
    owner = value.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, IntegerAttr):
        return owner.value.value.data
    return None


def inline_taken_region(op: Operation, region: Region, rewriter: PatternRewriter) -> None:
    """Replace the branch `op` by the body of its region `region`.

    A `dy.yield` terminator hands its values to `op`'s users. Any other exit (`dy.break`,
    `dy.continue`, `dy.return`) now ends the enclosing block, so what followed `op` there
    is unreachable and is erased, last op first (uses go before their definitions).
    """
    block = region.block
    terminator = block.last_op
    assert terminator is not None
    rewriter.inline_block(block, InsertPoint.before(op))
    if isinstance(terminator, dy.YieldOp):
        values = list(terminator.operands)
        rewriter.erase(terminator)
        rewriter.replace(op, [], values)
        return
    parent_block = op.parent_block()
    assert parent_block is not None
    while parent_block.last_op is not terminator:
        last = parent_block.last_op
        assert last is not None
        rewriter.erase(last)


class FoldConstantIf(RewritePattern):
    """`dy.if` on a constant condition -> the taken region."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: dy.IfOp, rewriter: PatternRewriter) -> None:
        cond = constant_int(op.cond)
        if cond is not None:
            inline_taken_region(op, op.then_region if cond else op.else_region, rewriter)


class FoldConstantSwitch(RewritePattern):
    """`dy.switch` on a constant selector -> the matching case, or the default region."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: dy.SwitchOp, rewriter: PatternRewriter) -> None:
        selector = constant_int(op.selector)
        if selector is None:
            return
        region = op.default_region
        for value, case in zip(op.case_values, op.case_regions):
            if value == selector:
                region = case
        inline_taken_region(op, region, rewriter)
