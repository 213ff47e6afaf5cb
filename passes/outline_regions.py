"""Outline every straight-line run of tensor compute into a `dy.graph` sub-graph.

After this pass the host functions hold only control flow, scalar glue and `dy.call`s, and
each sub-graph is one unit that torch-mlir compiles: the split the whole design rests on.
A run is a maximal sequence of consecutive torch ops and `dy.param`s in one block. Its
inputs are the values it uses that are defined elsewhere, its outputs the values it defines
that are used elsewhere (liveness, so no unused inputs or outputs). Constants (torch
constants, literals, parameters) are cloned into every sub-graph that uses them rather than
passed in, so sub-graphs keep static, foldable operands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from ir import dy
from ir.program import error_at, print_module
from passes.effects import is_effect_free

_REMATERIALIZED_TORCH_OPS = ("torch.constant.", "torch.vtensor.literal")
_STATIC_INFO_CAST = "torch.tensor_static_info_cast"


def is_tensor_compute(op: Operation) -> bool:
    """Ops that belong in a sub-graph: torch ops and the parameters they read."""
    if isinstance(op, dy.ParamOp):
        return True
    return dy.is_torch_op(op) and not op.regions and not is_host_cast(op)


def is_host_cast(op: Operation) -> bool:
    """A `torch.tensor_static_info_cast` of a value that no tensor op of its block made:
    a type given to a host value (a size made `?` where an unrolled loop's iterations
    differ in it). It computes nothing, and kept in the host it leaves the sub-graph that
    reads it taking the `?` type, so that iterations share one sub-graph."""
    if dy.op_name(op) != _STATIC_INFO_CAST:
        return False
    owner = op.operands[0].owner
    made_here = isinstance(owner, Operation) and owner.parent is op.parent
    return not (made_here and is_tensor_compute(owner))


def _is_rematerializable(op: Operation) -> bool:
    if isinstance(op, dy.ParamOp):
        return True
    return dy.is_torch_op(op) and dy.op_name(op).startswith(_REMATERIALIZED_TORCH_OPS)


def verify_outlined(module: ModuleOp) -> None:
    """The post-condition of outlining: no tensor compute is left in a host function.

    Constants and parameter reads may stay where a host op (a loop-carried initial value,
    a list append, a result) uses them directly: they are values, not computation.
    """
    for func in module.ops:
        if isinstance(func, dy.FuncOp):
            for op in func.walk():
                if is_tensor_compute(op) and not _is_rematerializable(op):
                    raise error_at(op, "tensor compute left in the host after outlining")


def _runs(block: Block) -> list[list[Operation]]:
    runs: list[list[Operation]] = []
    current: list[Operation] = []
    for op in block.ops:
        if is_tensor_compute(op):
            current.append(op)
            continue
        if current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [run for run in runs if any(not _is_rematerializable(op) for op in run)]


class _Outliner:
    def __init__(self, module: ModuleOp):
        self.module = module
        self.taken = {
            op.sym_name.data for op in module.ops if isinstance(op, dy.FuncOp | dy.GraphOp)
        }
        self.counter = 0
        self.graphs_by_body: dict[str, str] = {}

    def fresh_name(self, prefix: str) -> str:
        while f"{prefix}{self.counter}" in self.taken:
            self.counter += 1
        name = f"{prefix}{self.counter}"
        self.taken.add(name)
        return name

    def outline_function(self, func: dy.FuncOp) -> None:
        blocks = [block for op in func.walk() for region in op.regions for block in region.blocks]
        for block in blocks:
            for run in _runs(block):
                self.outline_run(func, run)

    def outline_run(self, func: dy.FuncOp, run: list[Operation]) -> None:
        in_run = set(run)
        inputs = _external_inputs(run, in_run)
        outputs = [
            result
            for op in run
            if not _is_rematerializable(op)
            for result in op.results
            if any(use.operation not in in_run for use in result.uses)
        ]
        for value in outputs:
            if isinstance(value.owner, Operation) and not is_effect_free(value.owner):
                raise error_at(value.owner, "cannot be outlined: it has side effects")
        graph = dy.GraphOp(
            "pending",
            [v.type for v in inputs],
            [v.type for v in outputs],
        )
        body = graph.body.block
        mapping: dict[SSAValue, SSAValue] = dict(zip(inputs, body.args))
        for op in _with_rematerialized_operands(run, in_run):
            clone = op.clone(value_mapper=mapping)
            body.add_op(clone)
            mapping.update(zip(op.results, clone.results))
        body.add_op(dy.OutputOp(*[mapping[v] for v in outputs]))
        name = self.register(func, graph)
        call = dy.CallOp(name, inputs, [v.type for v in outputs])
        call.location = run[0].location
        Rewriter.insert_op(call, InsertPoint.before(run[0]))
        for value, replacement in zip(outputs, call.res):
            value.replace_uses_with_if(replacement, lambda use: use.operation not in in_run)
        for op in reversed(run):
            if not any(result.uses for result in op.results):
                Rewriter.erase_op(op)

    def register(self, func: dy.FuncOp, graph: dy.GraphOp) -> str:
        """Add `graph` to the module unless an identical sub-graph exists; return its name."""
        key = _structure_key(graph)
        if key in self.graphs_by_body:
            return self.graphs_by_body[key]
        name = self.fresh_name(f"{func.sym_name.data}_graph")
        graph.sym_name = StringAttr(name)
        graph.location = func.location
        self.module.body.block.insert_op_before(graph, func)
        self.graphs_by_body[key] = name
        return name


def _external_inputs(run: list[Operation], in_run: set[Operation]) -> list[SSAValue]:
    """Values the run reads but does not define, in first-use order; constants defined
    outside are rematerialized instead of passed."""
    seen: set[SSAValue] = set()
    inputs: list[SSAValue] = []
    for op in run:
        for operand in op.operands:
            owner = operand.owner
            if isinstance(owner, Operation) and (owner in in_run or _is_rematerializable(owner)):
                continue
            if operand not in seen:
                seen.add(operand)
                inputs.append(operand)
    return inputs


def _with_rematerialized_operands(run: list[Operation], in_run: set[Operation]) -> list[Operation]:
    """The run preceded by clones of the constant ops defined outside it that it reads."""
    extra: list[Operation] = []
    seen: set[Operation] = set()

    def visit(op: Operation) -> None:
        for operand in op.operands:
            owner = operand.owner
            if (
                isinstance(owner, Operation)
                and owner not in in_run
                and _is_rematerializable(owner)
                and owner not in seen
            ):
                seen.add(owner)
                visit(owner)
                extra.append(owner)

    for op in run:
        visit(op)
    return extra + run


def _structure_key(graph: dy.GraphOp) -> str:
    """The graph's text with SSA names dropped: equal keys mean interchangeable graphs."""
    anonymous = graph.clone()
    for op in anonymous.walk():
        for value in (
            *op.results,
            *(arg for region in op.regions for block in region.blocks for arg in block.args),
        ):
            value.name_hint = None
    return print_module(anonymous, generic=True)


def _erase_unused_constants(func: dy.FuncOp) -> None:
    """Constants that runs used were cloned into their sub-graphs; drop the originals."""
    for op in reversed(list(func.walk())):
        if _is_rematerializable(op) and not any(result.uses for result in op.results):
            Rewriter.erase_op(op)


@dataclass(frozen=True)
class OutlineRegions(ModulePass):
    """Moves every straight-line run of tensor ops into a `dy.graph` called by `dy.call`.

    Identical runs share one sub-graph, so a block repeated with the same weights compiles
    once. Idempotent: a second application finds no tensor compute in the host.
    """

    name = "outline-regions"
    idempotent: ClassVar[bool] = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        outliner = _Outliner(op)
        host_functions = [func for func in op.ops if isinstance(func, dy.FuncOp)]
        for func in host_functions:
            outliner.outline_function(func)
        for func in host_functions:
            _erase_unused_constants(func)
        verify_outlined(op)
