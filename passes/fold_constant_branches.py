"""Replace branches whose condition is a constant by the region that always runs.

The frontend folds Python-static conditions itself; this pass catches the constants that
appear later (after inlining, or in hand-written IR) and leaves straight-line code that
outlining can merge into larger sub-graphs. The rewrites are the canonicalization patterns
of `dy.if` and `dy.switch` (`ir/canonicalization.py`), applied to a fixpoint by xDSL's
`PatternRewriteWalker`: a branch exposed by a fold is folded in the same run, so a second
run finds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriteWalker
from xdsl.traits import HasCanonicalizationPatternsTrait

from ir import dy


def branch_folding_patterns() -> GreedyRewritePatternApplier:
    """The canonicalization patterns of `dy.if` and `dy.switch`; xDSL's dead-op erasure
    is off (it takes ops that may fail for dead), that is `dce`'s job."""
    patterns = [
        pattern
        for op in (dy.IfOp, dy.SwitchOp)
        for trait in op.get_traits_of_type(HasCanonicalizationPatternsTrait)
        for pattern in trait.get_patterns(op)
    ]
    return GreedyRewritePatternApplier(patterns, dce_enabled=False)


@dataclass(frozen=True)
class FoldConstantBranches(ModulePass):
    """Inlines the taken region of every `dy.if` / `dy.switch` on an `arith.constant`."""

    name = "fold-constant-branches"
    idempotent: ClassVar[bool] = True
    exercised_by: ClassVar[tuple[str, ...]] = ("constant condition",)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(branch_folding_patterns(), apply_recursively=True).rewrite_module(op)
