"""Remove computations whose results nobody uses, and sub-graphs nobody calls."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block
from xdsl.passes import ModulePass

from ir import dy
from passes.effects import is_pure


def _erase_dead_ops(block: Block) -> bool:
    """One sweep, innermost first; the block's terminator always stays (unregistered torch
    ops claim every trait, so `IsTerminator` cannot tell)."""
    changed = False
    for op in reversed(list(block.ops)):
        for region in op.regions:
            for nested in region.blocks:
                changed |= _erase_dead_ops(nested)
        if (
            is_pure(op)
            and op is not block.last_op
            and not any(result.uses for result in op.results)
        ):
            block.erase_op(op)
            changed = True
    return changed


@dataclass(frozen=True)
class DeadCodeElimination(ModulePass):
    """Erases unused pure ops and uncalled sub-graphs.

    Ops go innermost first, to a fixpoint; `dy.graph`s go when no `dy.call` names them.
    Branches and loops stay even when their results are unused: they may exit."""

    name = "dce"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        while _erase_dead_ops(op.body.block):
            pass
        called = {
            call.callee.root_reference.data for call in op.walk() if isinstance(call, dy.CallOp)
        }
        for graph in list(op.ops):
            if isinstance(graph, dy.GraphOp) and graph.sym_name.data not in called:
                op.body.block.erase_op(graph)
