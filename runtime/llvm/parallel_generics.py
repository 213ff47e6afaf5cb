"""Parallel loops for the large ops that are not kernels.

The kernels of :mod:`.kernels` share their images or row tiles among threads, but the
``linalg.generic`` ops around them (batch-norm + ReLU after a convolution, residual
adds, pooling sums, softmax over many rows) ran on the calling thread alone: at batch 16
they took longer than the convolutions they follow (``Conv2d(3, 16, 3)`` + batch-norm +
ReLU on 16 x 32x32, 2 threads: the same time per image as with 1).

Each large top-level generic is tiled into an ``scf.forall`` over its outermost parallel
dimension that has more than one item (MLIR's ``transform.structured.tile_using_forall``,
run by the transform interpreter), in :data:`CHUNKS` chunks; ``convert-scf-to-openmp``
then shares the chunks among the team like a kernel's loop. "Large" counts the static
sizes of the iteration space, a run-time size as :data:`RUN_TIME_EXTENT`: a parallel
region costs a few microseconds, more than a small op's whole run.
"""

import math

from torch_mlir import ir

from .errors import run_pipeline

MARK = "dynn.parallel_chunks"
MIN_ITERATIONS = 1 << 15
RUN_TIME_EXTENT = 4
CHUNKS = 8
TRANSFORM_INTERPRETER = "builtin.module(transform-interpreter)"


def _iteration_sizes(operation: ir.Operation) -> list[int | None] | None:
    """The loop sizes of a generic whose operands all have static ranks, from its
    indexing maps and operand shapes (None where only known at run time)."""
    maps = [ir.AffineMapAttr(m).value for m in ir.ArrayAttr(operation.attributes["indexing_maps"])]
    loops = maps[0].n_dims
    sizes: list[int | None] = [None] * loops
    known = [False] * loops
    for operand, indexing in zip(operation.operands, maps):
        if not isinstance(operand.type, ir.RankedTensorType):
            continue
        tensor_type = ir.RankedTensorType(operand.type)
        for axis, expression in enumerate(indexing.results):
            if not isinstance(expression, ir.AffineDimExpr):
                continue
            loop = ir.AffineDimExpr(expression).position
            if known[loop]:
                continue
            known[loop] = True
            if not tensor_type.is_dynamic_dim(axis):
                sizes[loop] = tensor_type.shape[axis]
    return sizes if all(known) else None


def _chunked_loop(operation: ir.Operation) -> int | None:
    """The loop a large generic is split along, or None to leave it sequential."""
    sizes = _iteration_sizes(operation)
    if sizes is None:
        return None
    iterations = math.prod(RUN_TIME_EXTENT if size is None else size for size in sizes)
    if iterations < MIN_ITERATIONS:
        return None
    kinds = [str(kind) for kind in ir.ArrayAttr(operation.attributes["iterator_types"])]
    return next((loop for loop, (size, kind) in enumerate(zip(sizes, kinds))
                 if "parallel" in kind and (size is None or size > 1)), None)


def _top_level_generics(module: ir.Module) -> list[ir.Operation]:
    found = []

    def visit(operation):
        operation = operation.operation
        if (operation.name == "linalg.generic" and operation.parent.name == "func.func"
                and all(isinstance(r.type, ir.RankedTensorType) for r in operation.results)):
            found.append(operation)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return found


def _script(chunkings: list[tuple[int, ...]]) -> str:
    steps = []
    for index, chunks in enumerate(chunkings):
        steps.append(
            f'%ops{index} = transform.structured.match attributes{{{MARK} = "{index}"}} in '
            f"%root : (!transform.any_op) -> !transform.any_op\n"
            f"%tiled{index}, %loop{index} = transform.structured.tile_using_forall %ops{index} "
            f"num_threads [{', '.join(map(str, chunks))}] : (!transform.any_op) -> "
            f"(!transform.any_op, !transform.any_op)")
    body = "\n".join(steps)
    return ("module attributes {transform.with_named_sequence} {\n"
            "transform.named_sequence @__transform_main(%root: !transform.any_op "
            f"{{transform.readonly}}) {{\n{body}\ntransform.yield\n}}\n}}")


def apply(module: ir.Module) -> None:
    """Tiles the large top-level generics of `module` into parallel chunks."""
    chunkings: dict[tuple[int, ...], int] = {}
    marked = []
    for operation in _top_level_generics(module):
        loop = _chunked_loop(operation)
        if loop is None:
            continue
        loops = len(ir.ArrayAttr(operation.attributes["iterator_types"]))
        chunks = tuple(CHUNKS if axis == loop else 0 for axis in range(loops))
        group = chunkings.setdefault(chunks, len(chunkings))
        operation.attributes[MARK] = ir.StringAttr.get(str(group), module.context)
        marked.append(operation)
    if not marked:
        return
    with module.context:
        sequence = ir.Module.parse(_script(list(chunkings)), module.context)
        module.operation.attributes["transform.with_named_sequence"] = ir.UnitAttr.get()
        module.body.append(sequence.body.operations[0].detach_from_parent())
    run_pipeline(module, TRANSFORM_INTERPRETER, "parallel loops")
    for operation in list(module.body.operations):
        if operation.operation.name == "transform.named_sequence":
            operation.operation.erase()
    del module.operation.attributes["transform.with_named_sequence"]
    _drop_marks(module)


def _drop_marks(module: ir.Module) -> None:
    def visit(operation):
        if MARK in operation.operation.attributes:
            del operation.operation.attributes[MARK]
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
