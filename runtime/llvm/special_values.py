"""Eager PyTorch's semantics for NaN and signed zeros in the selections torch-mlir emits.

torch-mlir lowers ``clamp``, ``relu``, ``relu6``, ``hardtanh``, ``hardsigmoid``,
``maximum`` / ``minimum`` and friends to ``arith.select(arith.cmpf(p, a, b), ...)``
whose predicate drops NaN: ``clamp(nan, -1, 1)`` gave -1.0, ``relu6(nan)`` 0.0, where
eager gives nan; ``relu(-0.0)`` gave 0.0 where eager keeps -0.0. Eager's rules
(ATen's ``clamp`` / ``max`` kernels):

* a tensor value compared with a constant bound (``clamp``, the ReLU family, also as
  ``arith.maximumf`` / ``minimumf`` of a constant): the bound
  wins only when the value is strictly beyond it, so NaN and a value equal to the bound
  (``-0.0`` against ``0.0``) pass through unchanged;
* two tensor values (``maximum``, ``minimum``, ``clamp`` by a tensor): NaN in either
  operand is the result; ties keep torch-mlir's choice, which is eager's.

``tm_tensor.sort`` compares with ``ole``/``oge``, so NaN landed anywhere; eager sorts NaN
above every number: the comparator is widened so NaN orders last ascending and first
descending.
"""

from torch_mlir import ir

OEQ, OGT, OGE, OLT, OLE, UNO = 1, 2, 3, 4, 5, 14
_GREATER, _LESS = (OGT, OGE), (OLT, OLE)
_MIRROR = {OGT: OLT, OGE: OLE, OLT: OGT, OLE: OGE}


def _ordered(predicate: int) -> int:
    """``ugt`` -> ``ogt`` etc.: the predicate on numbers, NaN handled separately."""
    return predicate - 7 if 8 <= predicate <= 13 else predicate


def _defining(value: ir.Value, name: str) -> ir.Operation | None:
    owner = value.owner
    if isinstance(owner, (ir.OpView, ir.Operation)) and owner.operation.name == name:
        return owner.operation
    return None


def _is_float(value: ir.Value) -> bool:
    return str(value.type) in ("f16", "bf16", "f32", "f64")


def _predicate(operation: ir.Operation) -> int:
    return ir.IntegerAttr(operation.attributes["predicate"]).value


def _compare(predicate: int, lhs: ir.Value, rhs: ir.Value) -> ir.Value:
    i64 = ir.IntegerType.get_signless(64)
    return ir.Operation.create(
        "arith.cmpf", results=[ir.IntegerType.get_signless(1)], operands=[lhs, rhs],
        attributes={"predicate": ir.IntegerAttr.get(i64, predicate)}).result


def _or(lhs: ir.Value, rhs: ir.Value) -> ir.Value:
    return ir.Operation.create("arith.ori", results=[lhs.type], operands=[lhs, rhs]).result


def _rewrite_select(select: ir.Operation) -> bool:
    """Rewrites one ``select(cmpf(p, u, v), t, f)`` with {t, f} = {u, v}; returns whether
    it was such a selection."""
    condition, chosen, other = select.operands
    compare = _defining(condition, "arith.cmpf")
    if compare is None or not _is_float(chosen):
        return False
    lhs, rhs = compare.operands
    if {chosen, other} != {lhs, rhs} or chosen == other:
        return False
    predicate = _ordered(_predicate(compare))
    if predicate not in _GREATER + _LESS:
        return False
    constant_lhs = _defining(lhs, "arith.constant") is not None
    constant_rhs = _defining(rhs, "arith.constant") is not None
    with ir.InsertionPoint(select), select.location:
        if constant_lhs != constant_rhs:
            value, bound = (rhs, lhs) if constant_lhs else (lhs, rhs)
            direction = _MIRROR[predicate] if constant_lhs else predicate
            if chosen != bound:
                direction = _MIRROR[direction]
            beyond = _compare(OGT if direction in _GREATER else OLT, value, bound)
            replacement = ir.Operation.create("arith.select", results=[chosen.type],
                                              operands=[beyond, bound, value])
        else:
            keep = _or(_compare(predicate, lhs, rhs), _compare(UNO, chosen, chosen))
            replacement = ir.Operation.create("arith.select", results=[chosen.type],
                                              operands=[keep, chosen, other])
    select.results[0].replace_all_uses_with(replacement.result)
    select.erase()
    return True


def _rewrite_bounded_extremum(extremum: ir.Operation) -> None:
    """``maximumf(x, c)`` / ``minimumf(x, c)`` with a constant bound `c` (``relu6``,
    ``hardtanh``): the bound wins only when `x` is strictly beyond it, so ``-0.0`` against
    ``0.0`` stays ``-0.0`` as in eager (``maximumf`` orders ``-0.0`` below ``0.0``)."""
    lhs, rhs = extremum.operands
    constant_lhs = _defining(lhs, "arith.constant") is not None
    if constant_lhs == (_defining(rhs, "arith.constant") is not None):
        return
    value, bound = (rhs, lhs) if constant_lhs else (lhs, rhs)
    with ir.InsertionPoint(extremum), extremum.location:
        beyond = _compare(OLT if extremum.name == "arith.maximumf" else OGT, value, bound)
        replacement = ir.Operation.create("arith.select", results=[value.type],
                                          operands=[beyond, bound, value])
    extremum.results[0].replace_all_uses_with(replacement.result)
    extremum.erase()


def _rewrite_sort_comparator(sort: ir.Operation) -> None:
    """NaN sorts above every number, as in eager: ``a <= b`` becomes ``a <= b or isnan(b)``,
    ``a >= b`` becomes ``a >= b or isnan(a)``."""
    block = sort.regions[0].blocks[0]
    terminator = block.operations[len(block.operations) - 1].operation
    compare = _defining(terminator.operands[0], "arith.cmpf")
    if compare is None:
        return
    predicate = _ordered(_predicate(compare))
    lhs, rhs = compare.operands
    if predicate not in _GREATER + _LESS:
        return
    larger = rhs if predicate in _LESS else lhs
    with ir.InsertionPoint(terminator), terminator.location:
        widened = _or(_compare(predicate, lhs, rhs), _compare(UNO, larger, larger))
    terminator.operands[0] = widened


def apply(module: ir.Module) -> None:
    """Rewrites every float selection idiom and sort comparator of `module`."""
    selects, extrema, sorts = [], [], []

    def visit(operation):
        operation = operation.operation
        if operation.name == "arith.select":
            selects.append(operation)
        elif operation.name in ("arith.maximumf", "arith.minimumf"):
            extrema.append(operation)
        elif operation.name == "tm_tensor.sort":
            sorts.append(operation)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    for select in selects:
        _rewrite_select(select)
    for extremum in extrema:
        _rewrite_bounded_extremum(extremum)
    for sort in sorts:
        _rewrite_sort_comparator(sort)
