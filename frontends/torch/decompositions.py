"""The ATen decompositions applied before torch-mlir imports a stretch.

torch-mlir's default table (core ATen) rewrites inference batch-norm as
`(x - mean) * rsqrt(var + eps) * weight + bias`: four roundings per element where PyTorch's CPU
kernel does one fused multiply-add, `fma(x, alpha, beta)` with `alpha = rsqrt(var + eps) * weight`
and `beta = fma(-mean, alpha, bias)`. Over a deep network the difference grows past the
tolerance the reference interpreter is held to (1e-5 absolute on the logits of SDN-MobileNet's 27
batch-norms). The decomposition below computes exactly what the CPU kernel computes, with
`aten.addcmul` as the fused multiply-add (ATen's CPU `addcmul` is one), so interpreting the
imported program reproduces eager batch-norm bit for bit. `aten.addcmul` is kept out of the
decomposition table and marked legal for torch-mlir's backend pipeline so it survives import;
torch-mlir lowers it to linalg like any elementwise op.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable

import torch
from torch_mlir.extras.fx_decomp_util import get_decomposition_table

aten = torch.ops.aten

BACKEND_LEGAL_OPS = ["aten.addcmul"]
"""Ops torch-mlir's backend pipeline must not decompose (see the module docstring)."""


def _batch_norm_inference(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    momentum: float,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`aten._native_batch_norm_legit_no_training` in the CPU kernel's arithmetic."""
    del momentum
    alpha = torch.rsqrt(running_var + eps)
    if weight is not None:
        alpha = alpha * weight
    beta = (
        -running_mean * alpha
        if bias is None
        else torch.addcmul(bias, running_mean, alpha, value=-1)
    )
    per_channel = [1, -1] + [1] * (x.dim() - 2)
    output = torch.addcmul(beta.view(per_channel), x, alpha.view(per_channel))
    return output, x.new_zeros(0), x.new_zeros(0)


@functools.cache
def decomposition_table() -> dict[torch._ops.OperatorBase, Callable]:
    """torch-mlir's table with inference batch-norm replaced and `addcmul` left whole."""
    replaced = (aten._native_batch_norm_legit_no_training, aten.addcmul)
    table = {
        op: decomposition
        for op, decomposition in get_decomposition_table().items()
        if op._overloadpacket not in replaced
    }
    table[aten._native_batch_norm_legit_no_training.default] = _batch_norm_inference
    table[aten.split_with_sizes.default] = _split_with_sizes
    return table


def decompose(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """`program` with the :func:`decomposition_table` applied, when it has an op that the
    table or PyTorch's composite-implicit decompositions rewrite, or an in-place op that
    the pass makes functional; else `program` itself.

    ``run_decompositions`` re-registers every composite op of PyTorch on each call (about
    0.1 s however small the graph), which made it 80% of converting BlockDrop: 68
    stretches, 54 of them a `probs[0, t] > 0.5` with nothing to decompose."""
    if _nothing_to_decompose(program):
        return program
    return program.run_decompositions(decomposition_table())


def _nothing_to_decompose(program: torch.export.ExportedProgram) -> bool:
    table = decomposition_table()
    for node in program.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem:
            continue
        target = node.target
        if (not isinstance(target, torch._ops.OpOverload) or target in table
                or target._schema.is_mutable
                or torch._C._dispatch_has_kernel_for_dispatch_key(
                    target.name(), "CompositeImplicitAutograd")):
            return False
    return True


def _split_with_sizes(x: torch.Tensor, split_sizes: list, dim: int = 0) -> list[torch.Tensor]:
    """`aten.split_with_sizes` as slices: sizes known only at run time made torch-mlir
    import a list (`prim.ListUnpack`), which has no lowering to linalg. The sizes must
    add up to the dimension, as eager checks (a run-time assertion when they are symbolic)."""
    torch._check(
        sum(split_sizes) == x.size(dim),
        lambda: "split_with_sizes expects split_sizes to sum exactly to the dimension",
    )
    pieces, start = [], 0
    for size in split_sizes:
        pieces.append(aten.slice.Tensor(x, dim, start, start + size))
        start = start + size
    return pieces


def drop_storage_offset_checks(program: torch.export.ExportedProgram) -> None:
    """Removes the run-time checks that a view's storage offset is not negative.

    A slice at a run-time start (`x[i:i + 1]` with `i` from `.item()`) gives its view an
    unbacked storage offset, and torch.export asserts `offset >= 0` through
    `aten.sym_storage_offset`, which torch-mlir cannot import. A view's offset is never
    negative, so the check can say nothing; every other run-time assertion stays."""
    graph = program.graph_module.graph
    for check in list(graph.find_nodes(op="call_function", target=aten._assert_scalar.default)):
        condition = check.args[0]
        if not (
            isinstance(condition, torch.fx.Node)
            and condition.target is operator.ge
            and condition.args[1] == 0
            and isinstance(condition.args[0], torch.fx.Node)
            and condition.args[0].target is aten.sym_storage_offset.default
        ):
            continue
        offset = condition.args[0]
        graph.erase_node(check)
        for node in (condition, offset):
            if not node.users:
                graph.erase_node(node)
    program.graph_module.recompile()


_NEGATED_COMPARISONS = {
    operator.eq: operator.ne,
    operator.ne: operator.eq,
    operator.lt: operator.ge,
    operator.le: operator.gt,
    operator.gt: operator.le,
    operator.ge: operator.lt,
}


def negations_as_comparisons(program: torch.export.ExportedProgram) -> None:
    """Rewrites `torch.sym_not(a == b)` as `a != b` (and so on for every comparison).

    torch.export spells the run-time assertion of `torch._check(n != 1)` on a data-dependent
    size with `sym_not`, which torch-mlir cannot import; the comparisons it can."""
    graph = program.graph_module.graph
    for negation in list(graph.find_nodes(op="call_function", target=torch.sym_not)):
        (comparison,) = negation.args
        if not isinstance(comparison, torch.fx.Node):
            continue
        negated = _NEGATED_COMPARISONS.get(comparison.target)
        if negated is None:
            continue
        with graph.inserting_before(negation):
            replacement = graph.call_function(negated, comparison.args)
        replacement.meta = dict(negation.meta)
        negation.replace_all_uses_with(replacement)
        graph.erase_node(negation)
        if not comparison.users:
            graph.erase_node(comparison)
    program.graph_module.recompile()
