"""Branches to selects: diamonds, and early exits into the exit that ends their block."""

from __future__ import annotations

from xdsl.dialects import arith
from xdsl.dialects.builtin import f64, i1, i64
from xdsl.ir import Block, Operation, SSAValue
from xdsl.rewriter import Rewriter

from ir import dy
from ir.torch import ValueTensorType
from ir.torch_build import TorchBuilder
from passes.if_conversion.speculation import speculatable

_EXITS = (dy.ReturnOp, dy.YieldOp, dy.ContinueOp, dy.BreakOp)


def convert_exit_chains(function: dy.FuncOp, max_elements: int) -> bool:
    """Converts every convertible `dy.if` of ``function``, innermost blocks first (an inner
    conversion can make the arms of an outer branch straight-line); whether any was."""
    blocks = [block for op in function.walk() for region in op.regions for block in region.blocks]
    changed = False
    for block in reversed(blocks):
        if block.parent is not None:
            changed |= _sweep(block, max_elements)
    return changed


def _sweep(block: Block, max_elements: int) -> bool:
    """One backward pass over ``block``: while everything after the current op is
    speculatable, an early exit can merge into the block's exit."""
    terminator = block.last_op
    if not isinstance(terminator, _EXITS):
        return False
    tail_pure = True
    changed = False
    op = terminator.prev_op
    while op is not None:
        previous = op.prev_op
        if isinstance(op, dy.IfOp):
            converted = _convert(op, terminator, tail_pure, max_elements)
            if converted is None:
                tail_pure = False
            else:
                terminator, changed = converted, True
        elif not speculatable(op, max_elements):
            tail_pure = False
        op = previous
    return changed


def _arm(region) -> tuple[list[Operation], Operation] | None:
    """The arm's ops and its exit, if every op is speculatable (checked by the caller)."""
    block = region.block
    *ops, exit_op = block.ops
    return ops, exit_op


def _same_exit(arm_exit: Operation, terminator: Operation, block: Block) -> bool:
    if isinstance(arm_exit, dy.YieldOp):
        return False
    if type(arm_exit) is type(terminator):
        return True
    loop_body = isinstance(block.parent_op(), dy.ForOp | dy.WhileOp) and (
        not isinstance(block.parent_op(), dy.WhileOp)
        or block.parent_region() is block.parent_op().after_region
    )
    return isinstance(arm_exit, dy.ContinueOp) and isinstance(terminator, dy.YieldOp) and loop_body


def _convert(
    branch: dy.IfOp, terminator: Operation, tail_pure: bool, max_elements: int
) -> Operation | None:
    """Rewrites ``branch`` into straight-line code if it can; returns the (possibly new)
    terminator of its block, or None when the branch stays."""
    (then_ops, then_exit), (else_ops, else_exit) = _arm(branch.then_region), _arm(branch.else_region)
    if not all(speculatable(op, max_elements) for op in (*then_ops, *else_ops)):
        return None
    block = branch.parent_block()
    both_yield = isinstance(then_exit, dy.YieldOp) and isinstance(else_exit, dy.YieldOp)
    exit_arm = None
    if not both_yield:
        if not tail_pure:
            return None
        if _same_exit(then_exit, terminator, block) and isinstance(else_exit, dy.YieldOp):
            exit_arm = "then"
        elif _same_exit(else_exit, terminator, block) and isinstance(then_exit, dy.YieldOp):
            exit_arm = "else"
        else:
            return None
    pairs = (
        list(zip(then_exit.operands, else_exit.operands))
        if both_yield
        else list(zip(then_exit.operands, terminator.operands))
        if exit_arm == "then"
        else list(zip(terminator.operands, else_exit.operands))
    )
    if not all(_selectable(a, b, max_elements) for a, b in pairs):
        return None
    for op in (*then_ops, *else_ops):
        op.detach()
        block.insert_op_before(op, branch)
    selects = _Selects(branch.cond, branch.location)
    if both_yield:
        chosen = [selects.build(a, b, branch) for a, b in pairs]
        for result, value in zip(branch.res, chosen):
            result.replace_all_uses_with(value)
        Rewriter.erase_op(branch, safe_erase=False)
        return terminator
    yielded = else_exit.operands if exit_arm == "then" else then_exit.operands
    for result, value in zip(branch.res, yielded):
        result.replace_all_uses_with(value)  # the terminator may have read the results
    exited = then_exit.operands if exit_arm == "then" else else_exit.operands
    pairs = list(
        zip(exited, terminator.operands)
        if exit_arm == "then"
        else zip(terminator.operands, exited)
    )
    Rewriter.erase_op(branch, safe_erase=False)
    chosen = [selects.build(a, b, terminator) for a, b in pairs]
    replacement = type(terminator)(*chosen)
    replacement.location = terminator.location
    Rewriter.replace_op(terminator, replacement)
    return replacement


def _selectable(a: SSAValue, b: SSAValue, max_elements: int) -> bool:
    if a is b or a.type in (i1, i64, f64):
        return True
    value_type = a.type
    return (
        isinstance(value_type, ValueTensorType)
        and value_type.has_static_shape
        and value_type.element_type is not None
        and value_type.numel <= max_elements
    )


class _Selects:
    """`arith.select` for host scalars, `torch.aten.where.self` for tensors."""

    def __init__(self, condition: SSAValue, location):
        self.condition = condition
        self.location = location
        self.condition_tensor: SSAValue | None = None

    def build(self, if_true: SSAValue, if_false: SSAValue, before: Operation) -> SSAValue:
        if if_true is if_false:
            return if_true
        block = before.parent_block()

        def insert(op: Operation) -> None:
            op.location = self.location
            block.insert_op_before(op, before)

        if if_true.type in (i1, i64, f64):
            op = arith.SelectOp(self.condition, if_true, if_false)
            insert(op)
            return op.result
        if self.condition_tensor is None:
            op = dy.ScalarToTensorOp(self.condition, ValueTensorType([], i1))
            insert(op)
            self.condition_tensor = op.result
        return TorchBuilder(insert, self.location).where(self.condition_tensor, if_true, if_false)
