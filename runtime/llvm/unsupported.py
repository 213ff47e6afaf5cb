"""Torch ops rejected before lowering, because torch-mlir's conversion of them never ends.

``convert-torch-to-linalg`` loops forever on boolean-mask indexing
(``aten.index.Tensor_hacked_twin`` / ``aten.index.Tensor`` with an ``i1`` index tensor,
``x[x > 0]``): measured, no result after 300 s. Such an op is reported here as a
:class:`LoweringError` that names it and its location, so the caller runs it on the host.
"""

from torch_mlir import ir

from .errors import LoweringError

_INDEXING_OPS = ("torch.aten.index.Tensor_hacked_twin", "torch.aten.index.Tensor",
                 "torch.aten.index_put.hacked_twin", "torch.aten.index_put",
                 "torch.aten._index_put_impl")


def _is_bool_tensor(value: ir.Value) -> bool:
    text = str(value.type)
    return text.startswith("!torch.vtensor") and text.endswith(",i1>")


def _has_mask_index(operation: ir.Operation) -> bool:
    """Whether the indices list (operand 1, a ``torch.prim.ListConstruct``) holds a
    boolean tensor."""
    if len(operation.operands) < 2:
        return False
    owner = operation.operands[1].owner
    if not isinstance(owner, (ir.OpView, ir.Operation)):
        return False
    return any(_is_bool_tensor(v) for v in owner.operation.operands)


def reject(function) -> None:
    """Raises LoweringError on the first op of `function` whose lowering does not end."""
    found = []

    def visit(operation):
        operation = operation.operation
        if operation.name in _INDEXING_OPS and _has_mask_index(operation):
            found.append(operation)
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    function.operation.walk(visit)
    if found:
        raise LoweringError(f"{found[0].name}: boolean-mask indexing is not lowered (torch-mlir's "
                            f"conversion of it does not terminate) [{found[0].location}]")
