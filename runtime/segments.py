"""Running a sub-graph whose ops torch-mlir cannot all lower: compiled pieces around host ops.

A `dy.graph` with one op the LLVM back end rejects (boolean-mask indexing `x[x > 0]`,
`masked_select`, `unique`: ops whose result size depends on data and which torch-mlir
does not lower) would otherwise run eagerly as a whole. Instead it is split at that op:
the stretches before and after it compile as sub-graphs of their own and the op runs on
the host with eager PyTorch, its result (with its data-dependent size) flowing into the
next compiled stretch as an input with `?` dimensions.

A graph whose result sizes depend on data (`x[mask]`, which torch.export decomposes into
`nonzero`'s cumsum / scatter and a slice whose end is `aten.Int.Tensor` of a count) is
split as well, though every op compiles (`split_at_data_sizes`): compiled whole, its
prelude (`runtime.llvm.prelude`) must recompute everything the count depends on (a
whole network stage before an early-exit mask) before every call. Split, the first piece
computes that count and the second reads it from its input.

Only tensors cross between pieces: ops without tensor results (`torch.constant.*`,
`torch.prim.ListConstruct`, `aten.size.int` and int arithmetic) and `dy.param`s are copied
into every piece that uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from xdsl.dialects.builtin import StringAttr
from xdsl.ir import Block, Operation, Region, SSAValue

from ir import dy
from ir.torch import ValueTensorType

MAX_SPLITS = 8
"""Op names a sub-graph may move to the host before it runs eagerly as a whole."""

DATA_SCALAR_OPS = ("torch.aten.Int.Tensor", "torch.aten.Float.Tensor",
                   "torch.aten.Bool.Tensor", "torch.aten.item", "torch.aten.ScalarImplicit")
"""Ops that read a host scalar out of tensor data; inside a graph, sizes that depend on
data (a count) come from them."""


@dataclass(frozen=True)
class Piece:
    """A stretch of a sub-graph as a `dy.graph` of its own: `inputs` and `outputs` are
    values of the original graph, `on_host` whether it runs eagerly."""

    graph: dy.GraphOp
    inputs: tuple[SSAValue, ...]
    outputs: tuple[SSAValue, ...]
    on_host: bool


def _copied_into_users(op: Operation) -> bool:
    """Ops that are recomputed in every piece that needs them, never passed between."""
    return isinstance(op, dy.ParamOp) or (
        dy.is_torch_op(op) and bool(op.results)
        and not any(isinstance(r.type, ValueTensorType) for r in op.results))


def _pieces_of_anchors(ops: list[Operation],
                       host_names: set[str]) -> list[tuple[list[Operation], bool]]:
    """Groups the ops that are not copied into runs: consecutive compiled ops together,
    each host op alone."""
    runs: list[tuple[list[Operation], bool]] = []
    for op in ops:
        if _copied_into_users(op):
            continue
        on_host = dy.op_name(op) in host_names
        if runs and not on_host and not runs[-1][1]:
            runs[-1][0].append(op)
        else:
            runs.append(([op], on_host))
    return runs


def _with_copied_producers(anchors: list[Operation]) -> list[Operation]:
    """`anchors` plus the copied ops they depend on, in program order."""
    needed: set[Operation] = set(anchors)
    stack = list(anchors)
    while stack:
        for operand in stack.pop().operands:
            owner = operand.owner
            if isinstance(owner, Operation) and owner not in needed and _copied_into_users(owner):
                needed.add(owner)
                stack.append(owner)
    block = anchors[0].parent_block()
    return [op for op in block.ops if op in needed]


def split(graph: dy.GraphOp, host_names: set[str]) -> list[Piece]:
    """The pieces of `graph` when the ops named in `host_names` run on the host."""
    return _split_runs(graph, _pieces_of_anchors(list(graph.body.block.ops)[:-1], host_names))


def split_at_data_sizes(graph: dy.GraphOp) -> list[Piece] | None:
    """Two compiled pieces: the ops that the graph's data-read scalars (`DATA_SCALAR_OPS`
    of values computed in the graph) depend on, then the rest, which receives those values
    as inputs; None when there is no such scalar or everything depends on it."""
    *ops, output = graph.body.block.ops
    if any(isinstance(v.owner, Operation) and _copied_into_users(v.owner)
           for v in output.operands):
        return None  # a scalar result: the pieces pass tensors only
    roots = [operand.owner for op in ops if dy.op_name(op) in DATA_SCALAR_OPS
             for operand in op.operands
             if isinstance(operand.owner, Operation) and not _copied_into_users(operand.owner)]
    if not roots:
        return None
    needed: set[Operation] = set()
    stack = list(roots)
    while stack:
        op = stack.pop()
        if op in needed:
            continue
        needed.add(op)
        stack.extend(v.owner for v in op.operands if isinstance(v.owner, Operation))
    anchors = [op for op in ops if not _copied_into_users(op)]
    first = [op for op in anchors if op in needed]
    rest = [op for op in anchors if op not in needed]
    if not rest:
        return None
    return _split_runs(graph, [(first, False), (rest, False)])


def _split_runs(graph: dy.GraphOp, runs: list[tuple[list[Operation], bool]]) -> list[Piece]:
    """The pieces of `graph`, one per run of anchor ops (in an order that respects their
    dependencies), each with the copied ops it needs."""
    output = graph.body.block.last_op
    assert isinstance(output, dy.OutputOp)
    later_uses: list[set[SSAValue]] = []
    used_after: set[SSAValue] = set(output.operands)
    for anchors, _ in reversed(runs):
        later_uses.append(set(used_after))
        for op in _with_copied_producers(anchors):
            used_after.update(op.operands)
    later_uses.reverse()
    pieces = []
    for index, ((anchors, on_host), needed_later) in enumerate(zip(runs, later_uses)):
        ops = _with_copied_producers(anchors)
        defined = {r for op in ops for r in op.results}
        inputs = tuple(dict.fromkeys(v for op in ops for v in op.operands if v not in defined))
        outputs = tuple(r for op in anchors for r in op.results if r in needed_later)
        name = f"{graph.sym_name.data}_part{index}"
        pieces.append(Piece(_piece_graph(name, ops, inputs, outputs), inputs, outputs, on_host))
    return pieces


def _piece_graph(name: str, ops: list[Operation], inputs: Sequence[SSAValue],
                 outputs: Sequence[SSAValue]) -> dy.GraphOp:
    body = Block(arg_types=[v.type for v in inputs])
    mapping: dict[SSAValue, SSAValue] = dict(zip(inputs, body.args))
    for op in ops:
        clone = op.clone(value_mapper=mapping)
        body.add_op(clone)
        mapping.update(zip(op.results, clone.results))
    body.add_op(dy.OutputOp(*[mapping[v] for v in outputs]))
    graph = dy.GraphOp(name, [v.type for v in inputs], [v.type for v in outputs], Region(body))
    graph.sym_name = StringAttr(name)
    return graph


def run_pieces(graph: dy.GraphOp, runners: Sequence[Callable[..., Sequence[Any]]],
               pieces: Sequence[Piece]) -> Callable[..., Sequence[Any]]:
    """One callable for the whole graph: each piece's runner in order."""
    arguments = tuple(graph.body.block.args)
    results = tuple(graph.body.block.last_op.operands)
    plan = [(runner, piece.inputs, piece.outputs) for runner, piece in zip(runners, pieces)]

    def call(*values: Any) -> Sequence[Any]:
        env: dict[SSAValue, Any] = dict(zip(arguments, values))
        for runner, inputs, outputs in plan:
            env.update(zip(outputs, runner(*[env[v] for v in inputs])))
        return [env[v] for v in results]

    return call
