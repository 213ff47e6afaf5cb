"""The prelude of a sub-graph: its result sizes and run-time assertions, computed first.

Results are out-parameters that the caller allocates (see :mod:`.engine`), so a
result with a dimension known only at run time (``tensor<?x16xf32>``) needs its
size before the call. The prelude is a copy of the linalg-on-tensors function
whose return is replaced by one ``tensor<Nxi64>``: the assertion status, then every
dynamic result dimension (``tensor.dim``). ``resolve-ranked-shaped-type-result-dims``
rewrites those dimensions into the arithmetic on input sizes that produces them
(through ``tensor.empty(%dim)`` of every destination-style op), and canonicalisation
drops the computation itself. What is left is a handful of scalar ops when sizes follow
from input sizes (batch, tokens), or the part of the graph that computes a size from
data (``nonzero``'s count), which then runs before every call.

Run-time assertions (``cf.assert`` at the function's top level: torch.export's
``torch.runtime.assert``, torch-mlir's shape checks between dynamic dimensions) move
here too: the prelude computes the number of the first failing one (0 when all hold),
so a failure is reported before the main function runs on inconsistent sizes, as an
error naming the assertion, instead of aborting the process.
"""

from torch_mlir import ir

from . import engine
from .errors import run_pipeline
from .ir_walk import ops_named

SIMPLIFY = (
    "builtin.module(func.func(canonicalize, resolve-ranked-shaped-type-result-dims, "
    "canonicalize, cse, canonicalize))"
)

_SIZE_ONLY_OPS = (
    "func.func",
    "func.return",
    "tensor.from_elements",
    "arith.constant",
    "affine.apply",
    "affine.min",
    "affine.max",
)


def top_level_assertions(function) -> list[ir.Operation]:
    block = function.regions[0].blocks[0]
    return [op.operation for op in block.operations if op.operation.name == "cf.assert"]


def _assertion_message(assertion: ir.Operation) -> str:
    message = ir.StringAttr(assertion.attributes["msg"]).value
    return f"{message} [{assertion.location}]"


def _create(name: str, result_types, operands, attributes=None) -> ir.Operation:
    return ir.Operation.create(
        name, results=result_types, operands=operands, attributes=attributes or {}
    )


def _i64_constant(value: int) -> ir.Value:
    i64 = ir.IntegerType.get_signless(64)
    return _create("arith.constant", [i64], [], {"value": ir.IntegerAttr.get(i64, value)}).result


def _fold_status(assertions: list[ir.Operation]) -> ir.Value:
    """Replaces each assertion by arithmetic on a running status: the number of the
    first assertion whose condition is false, or 0. Returns the final status."""
    i64 = ir.IntegerType.get_signless(64)
    i1 = ir.IntegerType.get_signless(1)
    with ir.InsertionPoint(assertions[0]), assertions[0].location:
        status = zero = _i64_constant(0)
    for number, assertion in enumerate(assertions, start=1):
        with ir.InsertionPoint(assertion), assertion.location:
            code = _create(
                "arith.select", [i64], [assertion.operands[0], zero, _i64_constant(number)]
            ).result
            clean = _create(
                "arith.cmpi", [i1], [status, zero], {"predicate": ir.IntegerAttr.get(i64, 0)}
            ).result
            status = _create("arith.select", [i64], [clean, code, status]).result
        assertion.erase()
    return status


def _dynamic_dims(outputs: list[engine.TensorSpec]) -> list[tuple[int, int]]:
    return [(r, a) for r, spec in enumerate(outputs) for a, d in enumerate(spec.shape) if d is None]


def _rewrite_return(prelude, dims: list[tuple[int, int]], status: ir.Value) -> None:
    """Makes `prelude` return ``tensor<Nxi64>``: `status`, then each dimension in `dims`."""
    block = prelude.regions[0].blocks[0]
    terminator = block.operations[len(block.operations) - 1].operation
    i64 = ir.IntegerType.get_signless(64)
    index = ir.IndexType.get()
    vector_type = ir.RankedTensorType.get([1 + len(dims)], i64)
    with ir.InsertionPoint(terminator), terminator.location:
        values = [status]
        for result, axis in dims:
            axis_value = _create(
                "arith.constant", [index], [], {"value": ir.IntegerAttr.get(index, axis)}
            ).result
            size = _create("tensor.dim", [index], [terminator.operands[result], axis_value])
            values.append(_create("arith.index_cast", [i64], [size.result]).result)
        vector = _create("tensor.from_elements", [vector_type], values).result
        _create("func.return", [], [vector])
    terminator.erase()
    function_type = ir.FunctionType(ir.TypeAttr(prelude.attributes["function_type"]).value)
    prelude.attributes["function_type"] = ir.TypeAttr.get(
        ir.FunctionType.get(function_type.inputs, [vector_type])
    )


def _reads_data(prelude) -> bool:
    """Whether anything but input sizes feeds the prelude's answer."""
    found = []

    def visit(operation):
        operation = operation.operation
        name = operation.name
        if name == "tensor.dim":
            if not isinstance(operation.operands[0].owner, ir.Block):
                found.append(name)
        elif not (name in _SIZE_ONLY_OPS or name.startswith("arith.")):
            found.append(name)
        return ir.WalkResult.ADVANCE

    prelude.operation.walk(visit)
    return bool(found)


def _is_trivial(prelude) -> bool:
    """Every assertion folded to true: the answer is a constant 0. (A dynamic size that
    folds to 0, an empty placeholder cast to `?`, still needs the prelude to say so.)"""
    block = prelude.regions[0].blocks[0]
    terminator = block.operations[len(block.operations) - 1].operation
    owner = terminator.operands[0].owner
    if not isinstance(owner, (ir.OpView, ir.Operation)) or owner.operation.name != "arith.constant":
        return False
    try:
        values = ir.DenseIntElementsAttr(owner.operation.attributes["value"])
        return all(int(v) == 0 for v in values)
    except ValueError:
        return False


def _dims_of_tm_tensor_results_from_their_outs(prelude) -> None:
    """Reads each size of a ``tm_tensor`` op's result (``sort``, ``scan``, ``scatter``,
    ``topk``) off its ``outs`` operand (the last operands, one per result), which has the
    same shape. Those ops do not reify their result sizes, so
    ``resolve-ranked-shaped-type-result-dims`` stopped there and the prelude kept the whole
    computation before them (a top-2 router's ``topk``: the attention block and the patch
    embedding ran twice per call)."""
    for dim in ops_named(prelude, "tensor.dim"):
        source = dim.operands[0]
        owner = source.owner
        if not isinstance(owner, (ir.OpView, ir.Operation)):
            continue
        owner = owner.operation
        operands, outs = list(owner.operands), len(owner.results)
        if owner.name.startswith("tm_tensor.") and len(operands) >= outs:
            dim.operands[0] = operands[len(operands) - outs + source.result_number]


def build(module: ir.Module, function, outputs: list[engine.TensorSpec]) -> engine.Prelude | None:
    """Adds ``@<name>__prelude`` to `module` when the function has dynamic results or
    run-time assertions that do not fold away, and erases the assertions from the function
    itself. Returns what the prelude computes, or None when none is needed."""
    with function.location:
        return _build(module, function, outputs)


def _build(module: ir.Module, function, outputs: list[engine.TensorSpec]) -> engine.Prelude | None:
    assertions = top_level_assertions(function)
    dims = _dynamic_dims(outputs)
    messages = tuple(_assertion_message(a) for a in assertions)
    prelude = None
    if dims or assertions:
        prelude = function.operation.clone()
        name = ir.StringAttr(function.attributes["sym_name"]).value
        prelude.attributes["sym_name"] = ir.StringAttr.get(name + engine.PRELUDE_SUFFIX)
        copied = top_level_assertions(prelude)
        if copied:
            status = _fold_status(copied)
        else:
            block = prelude.regions[0].blocks[0]
            with ir.InsertionPoint.at_block_begin(block), prelude.location:
                status = _i64_constant(0)
        _rewrite_return(prelude, dims, status)
    for assertion in assertions:
        assertion.erase()
    if prelude is None:
        return None
    scratch = ir.Module.create(prelude.location)
    scratch.body.append(prelude)
    _dims_of_tm_tensor_results_from_their_outs(prelude)
    run_pipeline(scratch, SIMPLIFY, "prelude simplification")
    prelude = scratch.body.operations[0]
    if not dims and _is_trivial(prelude):
        return None
    reads_data = _reads_data(prelude)
    prelude.operation.detach_from_parent()
    module.body.append(prelude)
    return engine.Prelude(tuple(dims), messages, reads_data)
