"""One index tensor instead of several, for the gathers torch-mlir cannot lower.

torch-mlir lowers ``x[i, j]`` (``aten.index.Tensor`` with two or more index tensors) only
when it can see that the index tensors broadcast together. Two run-time sizes, as
``top_x, idx = torch.where(mask)`` gives them (Mixtral's ``routing_weights[top_x, idx,
None]``), fail to legalize, and the op ran eagerly on the host, between two kernels.

Once :mod:`.index_bounds` has clamped each index into its own dimension, ``x[i0, ..., ik]``
on leading dimensions is ``x.flatten(0, k)[(i0 * n1 + i1) * n2 + ... + ik]``, with the
sizes ``n`` of those dimensions: the elementwise arithmetic broadcasts the indices as
indexing does (and checks their sizes as eager checks them), and the single-index gather
lowers. Only int64 indices are rewritten, so the flat index cannot overflow.
"""

import math

from torch_mlir import ir

from .torch_ops import constant_int, create, list_items, tensor_dims

_GATHERS = ("torch.aten.index.Tensor_hacked_twin", "torch.aten.index.Tensor")
_INDEX_DTYPE = "si64"


def _index_dims(value: ir.Value) -> list[str] | None:
    """The dims of an int64 tensor, else None."""
    parsed = tensor_dims(value.type)
    return parsed[0] if parsed is not None and parsed[1] == _INDEX_DTYPE else None


def _broadcast(left: list[str], right: list[str]) -> list[str]:
    """The dims of the broadcast of two shapes (``?`` where a run-time size decides)."""
    rank = max(len(left), len(right))
    left, right = ["1"] * (rank - len(left)) + left, ["1"] * (rank - len(right)) + right
    return [b if a == "1" else a if b == "1" or a == b else "?" for a, b in zip(left, right)]


def _vtensor(dims: list[str], dtype: str) -> str:
    return f"!torch.vtensor<[{','.join(dims)}],{dtype}>"


def _rewritable(operation: ir.Operation) -> bool:
    items = list_items(operation.operands[1]) if len(operation.operands) > 1 else None
    if not items or len(items) < 2 or tensor_dims(operation.operands[0].type) is None:
        return False
    dims = [_index_dims(item) for item in items]
    return all(d is not None for d in dims) and any("?" in d for d in dims)


def _linearize(operation: ir.Operation) -> None:
    source, items = operation.operands[0], list_items(operation.operands[1])
    source_dims, dtype = tensor_dims(source.type)
    leading = len(items)
    with ir.InsertionPoint(operation), operation.location:
        linear, linear_dims = items[0], _index_dims(items[0])
        for dim in range(1, leading):
            size = create("torch.aten.size.int", "!torch.int", [source, constant_int(dim)])
            scaled = create(
                "torch.aten.mul.Scalar", _vtensor(linear_dims, _INDEX_DTYPE), [linear, size]
            )
            linear_dims = _broadcast(linear_dims, _index_dims(items[dim]))
            linear = create(
                "torch.aten.add.Tensor",
                _vtensor(linear_dims, _INDEX_DTYPE),
                [scaled, items[dim], constant_int(1)],
            )
        flattened = source_dims[:leading]
        flat_size = "?" if "?" in flattened else str(math.prod(int(d) for d in flattened))
        flat = create(
            "torch.aten.flatten.using_ints",
            _vtensor([flat_size, *source_dims[leading:]], dtype),
            [source, constant_int(0), constant_int(leading - 1)],
        )
        indices = create("torch.prim.ListConstruct", str(operation.operands[1].type), [linear])
        gathered = create(operation.name, str(operation.result.type), [flat, indices])
    operation.result.replace_all_uses_with(gathered)
    operation.erase()


def apply(function) -> None:
    """Rewrites every gather of `function` by several int64 index tensors, one of a
    run-time size, into a gather by one flat index."""
    found: list[ir.Operation] = []

    def visit(operation):
        if operation.operation.name in _GATHERS and _rewritable(operation.operation):
            found.append(operation.operation)
        return ir.WalkResult.ADVANCE

    function.operation.walk(visit)
    for operation in found:
        _linearize(operation)
