"""Views of tensors with several run-time sizes go through one flat dimension.

torch-mlir lowers ``aten.view`` to ``tensor.collapse_shape`` / ``expand_shape`` by grouping
input and output dimensions; a group that merges two run-time sizes (``x.view(b * s, d)``
of a ``[?, ?, d]`` tensor, which ``nn.Linear`` does on a batch of sequences) it cannot
prove, and it casts the input to a type with a size of 1 there. Canonicalization then
folds that cast into the producer, whose other uses read the wrong size: a result of
``[b, 1, d]`` allocated for ``[b, s, d]``, and the kernels write past its end.

A view whose input has two or more run-time sizes is rewritten as a view of the input
flattened to one dimension (``aten.flatten.using_ints``, one collapse group, which needs
no proof), so the remaining view only splits one dimension, which torch-mlir lowers
with the sizes the program gives.
"""

from torch_mlir import ir

from .ir_walk import ops_named
from .torch_ops import constant_int, create, tensor_dims

_VIEWS = ("torch.aten.view", "torch.aten.reshape", "torch.aten._unsafe_view")


def _rewritable(operation: ir.Operation) -> bool:
    parsed = tensor_dims(operation.operands[0].type)
    return parsed is not None and len(parsed[0]) > 1 and parsed[0].count("?") >= 2


def _through_one_dimension(operation: ir.Operation) -> None:
    source = operation.operands[0]
    dims, dtype = tensor_dims(source.type)
    with ir.InsertionPoint(operation), operation.location:
        flat = create(
            "torch.aten.flatten.using_ints",
            f"!torch.vtensor<[?],{dtype}>",
            [source, constant_int(0), constant_int(len(dims) - 1)],
        )
    operation.operands[0] = flat


def apply(function) -> None:
    """Rewrites every view in `function` whose input has two or more run-time sizes."""
    for name in _VIEWS:
        for operation in ops_named(function, name):
            if _rewritable(operation):
                _through_one_dimension(operation)
