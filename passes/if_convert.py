"""If-conversion: branches with cheap, side-effect-free arms become selects, and a loop
that maps a straight-line computation over the rows of a tensor becomes one batched
boolean tensor program.

Three rewrites, in this order, to a fixpoint:

1. **Exit chains.** A block ending in an exit (`dy.return v`, a loop body's `dy.yield v`)
   preceded by `dy.if %c {A; exit a} else {dy.yield}` (a decision list: each rule returns
   early) becomes `A; ...; exit select(%c, a, v)`, bottom-up in one backward sweep, so a
   chain of any length converts in linear time and nests nothing. A `dy.if` whose two arms
   both yield becomes its hoisted arms and selects. Everything that then runs
   unconditionally (the arms, the code between the branch and the exit) must be
   *speculatable*: pure, unable to fail, and cheap (a host scalar op, or a tensor op of at
   most ``max_elements`` elements from a small elementwise set). Host scalars are selected
   with `arith.select`, tensors with `torch.aten.where.self`.
2. **Map loops.** `dy.for %i = 0 to N` whose body reads row `%i` of an `[N, ...]` tensor,
   computes straight-line code on it (calls of straight-line functions are inlined) and
   appends one result per row to a list that is then stacked, is replaced by the same
   computation over the whole tensor: host `i1`/`i64`/`f64` values become `[N]` tensors,
   `arith` logic becomes `torch.aten.logical_*`, comparisons `torch.aten.gt.Scalar` and
   friends, `arith.select` becomes `torch.aten.where.self`. The result is one run of torch
   ops: one sub-graph for the whole batch.
3. **Conjunctions** (option ``conjunctions``) in the batched code: ``chain`` keeps
   `logical_and` trees as they are; ``gemm`` evaluates the trees of one dependency level
   together as one matrix product over their literal table, as Hummingbird's GEMM strategy
   evaluates decision-tree paths (a +1/-1 matrix for positive and negated literals; a
   body holds where its sum equals its count of positive literals); ``reduce`` evaluates
   each tree as one `all` over its stacked literals. `benchmarks/rules_bench.py` measures
   the three; ``chain`` is the default (docs/rules.md has the numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from ir import dy
from passes.if_conversion.batch import batch_map_loops
from passes.if_conversion.select import convert_exit_chains

CONJUNCTION_STRATEGIES = ("chain", "gemm", "reduce")


@dataclass(frozen=True)
class IfConvert(ModulePass):
    """Turns branches with cheap pure arms into selects, and map loops into batched code.

    Idempotent: the rewrites run to a fixpoint, so a second application changes nothing.
    Options: ``max-elements`` (int >= 1), ``conjunctions`` (chain, gemm or reduce)."""

    name = "if-convert"
    option_space: ClassVar[dict[str, tuple]] = {
        "max_elements": (4096, 1),
        "conjunctions": CONJUNCTION_STRATEGIES,
    }
    exercised_by: ClassVar[tuple[str, ...]] = ("dy.if", "early dy.return")
    exercised_weights: ClassVar[dict[str, int]] = {
        "for_": 0, "while_": 0, "switch": 0, "call": 0, "list": 0, "return_": 3
    }
    """Decision lists: branches of cheap straight-line arms that return early."""

    max_elements: int = 4096
    """The largest tensor (in elements) a speculated torch op may produce."""
    conjunctions: str = "chain"
    """How batched rule bodies are evaluated: chain, gemm or reduce."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.conjunctions not in CONJUNCTION_STRATEGIES:
            raise ValueError(
                f"conjunctions must be one of {', '.join(CONJUNCTION_STRATEGIES)}, "
                f"got '{self.conjunctions}'"
            )
        if self.max_elements < 1:
            raise ValueError(f"max-elements must be at least 1, got {self.max_elements}")
        changed = True
        while changed:  # batching a loop can make a branch's arms straight-line, and back
            changed = False
            for function in [f for f in op.ops if isinstance(f, dy.FuncOp)]:
                changed |= convert_exit_chains(function, self.max_elements)
            changed |= batch_map_loops(op, self.max_elements, self.conjunctions)
