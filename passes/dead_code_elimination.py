"""Remove computations whose results nobody uses, and sub-graphs nobody calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern

from ir import dy
from passes.effects import is_removable_if_unused


class RemoveUnusedPureOps(RewritePattern):
    """Erases an op whose results are unused when erasing it cannot change what the
    program does (`passes.effects.is_removable_if_unused`)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if (
            op.parent is not None
            and not any(result.uses for result in op.results)
            and is_removable_if_unused(op)
        ):
            rewriter.erase(op)


def _erase_uncalled_graphs(module: ModuleOp) -> None:
    called = {
        call.callee.root_reference.data for call in module.walk() if isinstance(call, dy.CallOp)
    }
    for graph in list(module.ops):
        if isinstance(graph, dy.GraphOp) and graph.sym_name.data not in called:
            module.body.block.erase_op(graph)


@dataclass(frozen=True)
class DeadCodeElimination(ModulePass):
    """Erases unused pure ops and uncalled sub-graphs.

    Ops are erased uses first, to a fixpoint (xDSL's `PatternRewriteWalker` revisits the
    definitions an erasure leaves unused). A branch or `dy.for` goes too when everything in
    it is pure and no exit in it lands outside; `dy.while` stays (it may not end), as do ops
    that may fail at run time (`dy.list_stack` of a list that may be empty): erasing them
    would turn a located error into a result. `dy.graph`s go when no `dy.call` names them.
    """

    name = "dce"
    idempotent: ClassVar[bool] = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(
            RemoveUnusedPureOps(), apply_recursively=True, walk_reverse=True
        ).rewrite_module(op)
        _erase_uncalled_graphs(op)
