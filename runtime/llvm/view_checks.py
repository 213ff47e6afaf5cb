"""The check eager makes on a `view` / `reshape` with an inferred size (`-1`).

Eager refuses `keep.view(keep.size(0), -1, 2)` when the product of the other sizes is 0
(an empty `keep`): the `-1` "can be any value and is ambiguous". torch-mlir computes the
inferred size as `numel / product` without that check, a division by zero whose result
was an empty tensor. Before lowering, each such op whose other sizes are known only at
run time gets a ``torch.runtime.assert`` that their product is not 0; it moves to the
prelude (:mod:`.prelude`), so the call raises
:class:`~.engine.SubgraphAssertionError` and the program reruns the sub-graph eagerly,
which raises eager's own error at the model line.
"""

from torch_mlir import ir

_RESHAPES = ("torch.aten.view", "torch.aten.reshape", "torch.aten._unsafe_view")
MESSAGE = "the unspecified dimension size -1 can be any value and is ambiguous"


def _create(name: str, result: str | None, operands: list[ir.Value], attributes=None):
    results = [] if result is None else [ir.Type.parse(result)]
    operation = ir.Operation.create(name, results=results, operands=operands,
                                    attributes=attributes or {})
    return operation.result if results else operation


def _static_int(value: ir.Value) -> int | None:
    owner = value.owner
    if isinstance(owner, (ir.OpView, ir.Operation)) and owner.operation.name == "torch.constant.int":
        return ir.IntegerAttr(owner.operation.attributes["value"]).value
    return None


def _sizes(operation: ir.Operation) -> list[ir.Value] | None:
    owner = operation.operands[1].owner
    if isinstance(owner, (ir.OpView, ir.Operation)) and owner.operation.name == "torch.prim.ListConstruct":
        return list(owner.operation.operands)
    return None


def _reshapes_to_check(function) -> list[tuple[ir.Operation, list[ir.Value]]]:
    """(op, the sizes other than the -1) of each reshape some of whose sizes are dynamic."""
    found = []

    def visit(operation):
        operation = operation.operation
        if operation.name in _RESHAPES and len(operation.operands) == 2:
            sizes = _sizes(operation)
            if sizes is not None:
                known = [_static_int(size) for size in sizes]
                if -1 in known and None in known:
                    found.append((operation, [s for s, k in zip(sizes, known) if k != -1]))
        return ir.WalkResult.ADVANCE

    function.operation.walk(visit)
    return found


def guard(function) -> None:
    """Asserts before each reshape with a `-1` and dynamic other sizes that their product
    is not 0."""
    i64 = ir.IntegerType.get_signless(64)
    for operation, others in _reshapes_to_check(function):
        with ir.InsertionPoint(operation), operation.location:
            product = _create("torch.constant.int", "!torch.int", [],
                              {"value": ir.IntegerAttr.get(i64, 1)})
            for size in others:
                product = _create("torch.aten.mul.int", "!torch.int", [product, size])
            zero = _create("torch.constant.int", "!torch.int", [],
                           {"value": ir.IntegerAttr.get(i64, 0)})
            holds = _create("torch.aten.ne.int", "!torch.bool", [product, zero])
            _create("torch.runtime.assert", None, [holds],
                    {"message": ir.StringAttr.get(MESSAGE)})
