"""Correct broadcast sizes for the index tensors of ``index_put`` with run-time sizes.

torch-mlir's ``convert-torch-to-tmtensor`` lowers ``aten.index_put`` (``out[idx] = v``,
``out[mask] = v`` after the frontend's ``nonzero``) to a ``tm_tensor.scatter`` whose
indices and updates are first broadcast to the common shape of the index tensors. For a
dimension known only at run time it computes that shape as ``max(size, 1)``: a
broadcast starting from 1 and combining sizes with ``max``. That is NumPy's rule only for
sizes >= 1; an empty index tensor (no row selected, a data-dependent count of 0) gets a
broadcast size of 1, the scatter then reads ``idx[0]`` from an empty buffer and writes
through that garbage index: a segmentation fault, or silent memory corruption.

The fix runs right after that conversion, before the rest of torch-mlir's backend
pipeline: every ``torch.prim.max.int`` the conversion created (those present before are
the program's own and are left alone) becomes NumPy's rule for two sizes,
``a == 1 ? b : a``, written in torch int arithmetic ``a + (a == 1) * (b - a)`` so the later
passes lower it like any other size computation. With the accumulated size starting at 1
this yields the index size itself, 0 included.
"""

from torch_mlir import ir

from .ir_walk import ops_named

MAX_INT = "torch.prim.max.int"
_PROGRAM_OWN = "dynn.program_max"
"""Marks the ``prim.max.int`` ops of the program itself during the conversion."""


def mark_program_maxima(module: ir.Module) -> None:
    """Tags the program's own ``prim.max.int`` ops, before the conversion runs."""
    for operation in ops_named(module, MAX_INT):
        operation.attributes[_PROGRAM_OWN] = ir.UnitAttr.get(module.context)


def _int_op(name: str, operands: list[ir.Value], result_type: ir.Type) -> ir.Value:
    return ir.Operation.create(name, results=[result_type], operands=operands).result


def _broadcast_size(first: ir.Value, second: ir.Value) -> ir.Value:
    """``first == 1 ? second : first`` on ``!torch.int``s."""
    int_type = first.type
    one = ir.Operation.create(
        "torch.constant.int", results=[int_type],
        attributes={"value": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), 1)}).result
    is_one = _int_op("torch.aten.eq.int", [first, one], ir.Type.parse("!torch.bool"))
    as_int = _int_op("torch.aten.Int.bool", [is_one], int_type)
    difference = _int_op("torch.aten.sub.int", [second, first], int_type)
    return _int_op("torch.aten.add.int",
                   [first, _int_op("torch.aten.mul.int", [as_int, difference], int_type)],
                   int_type)


def correct_conversion_maxima(module: ir.Module) -> None:
    """Rewrites the ``prim.max.int`` ops the TMTensor conversion added into NumPy's
    broadcast rule, and drops the marks :func:`mark_program_maxima` set."""
    for operation in ops_named(module, MAX_INT):
        if _PROGRAM_OWN in operation.attributes:
            del operation.attributes[_PROGRAM_OWN]
            continue
        with ir.InsertionPoint(operation), operation.location:
            size = _broadcast_size(operation.operands[0], operation.operands[1])
        operation.results[0].replace_all_uses_with(size)
        operation.erase()
