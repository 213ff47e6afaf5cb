"""Checks eager makes on sizes that torch-mlir's lowering leaves out.

- The `-1` of `view` / `reshape`: eager refuses `keep.view(keep.size(0), -1, 2)` when the
  product of the other sizes is 0 (an empty `keep`: the `-1` "can be any value and is
  ambiguous"); torch-mlir computes it as `numel / product`, a division by zero whose
  result was an empty tensor.
- Reductions with no identity (`max()`, `min()`, `amax`, `amin`, `max.dim`, `argmax`, ...):
  eager refuses to reduce an empty tensor or dimension; torch-mlir returned its initial
  value (`-inf` for `max()`).

Before lowering, each such op whose sizes are known only at run time gets a
``torch.runtime.assert`` that the product of the sizes concerned is not 0. Like any
assertion it moves to the prelude (:mod:`.prelude`), so the call raises
:class:`~.engine.SubgraphAssertionError` and the program reruns the sub-graph eagerly,
which raises eager's own error at the model line.
"""

from torch_mlir import ir

from .torch_ops import constant_int, create, list_items, producer_name, static_int

_RESHAPES = ("torch.aten.view", "torch.aten.reshape", "torch.aten._unsafe_view")
#: Reductions of the whole tensor without an identity.
_WHOLE_REDUCTIONS = ("torch.aten.max", "torch.aten.min", "torch.aten.median")
#: Reductions along operand 1 (an int, a list of ints, or None for the whole tensor).
_DIM_REDUCTIONS = ("torch.aten.max.dim", "torch.aten.min.dim", "torch.aten.amax",
                   "torch.aten.amin", "torch.aten.argmax", "torch.aten.argmin",
                   "torch.aten.aminmax")
AMBIGUOUS = "the unspecified dimension size -1 can be any value and is ambiguous"
EMPTY_REDUCTION = "a reduction without identity of an empty tensor or dimension"


def _shape(value: ir.Value) -> list[int | None] | None:
    """The sizes of a `!torch.vtensor<[...],dtype>` (None for `?`), None if unranked."""
    text = str(value.type)
    if not text.startswith("!torch.vtensor<["):
        return None
    dims = text[len("!torch.vtensor<["):].split("]", 1)[0]
    return [None if d == "?" else int(d) for d in dims.split(",")] if dims else []


def _reshape_sizes(operation: ir.Operation) -> list[ir.Value] | None:
    """The sizes other than the -1 of a reshape some of whose sizes are dynamic."""
    sizes = list_items(operation.operands[1]) if len(operation.operands) == 2 else None
    if sizes is None:
        return None
    known = [static_int(size) for size in sizes]
    if -1 not in known or None not in known:
        return None
    return [size for size, k in zip(sizes, known) if k != -1]


def _reduced_dims(operation: ir.Operation) -> list[int] | None:
    """The dims a reduction without identity reduces, if some of them are dynamic."""
    shape = _shape(operation.operands[0])
    if not shape:
        return None
    dims: list[int] | None = list(range(len(shape)))
    if operation.name in _DIM_REDUCTIONS and len(operation.operands) > 1:
        argument = operation.operands[1]
        items = list_items(argument)
        if items is not None:
            dims = [static_int(item) for item in items] or dims
        elif producer_name(argument) != "torch.constant.none":
            dims = [static_int(argument)]
    if dims is None or None in dims:
        return None
    dims = [d % len(shape) for d in dims]
    return dims if any(shape[d] is None for d in dims) else None


def _sizes_to_check(function) -> list[tuple[ir.Operation, list, str]]:
    found = []

    def visit(operation):
        operation = operation.operation
        name = operation.name
        if name in _RESHAPES:
            sizes = _reshape_sizes(operation)
            if sizes is not None:
                found.append((operation, sizes, AMBIGUOUS))
        elif name in _DIM_REDUCTIONS or (name in _WHOLE_REDUCTIONS and len(operation.operands) == 1):
            dims = _reduced_dims(operation)
            if dims is not None:
                found.append((operation, dims, EMPTY_REDUCTION))
        return ir.WalkResult.ADVANCE

    function.operation.walk(visit)
    return found


def guard(function) -> None:
    """Asserts before each op `_sizes_to_check` finds that the product of its sizes
    (values, or dims of its first operand) is not 0."""
    for operation, sizes, message in _sizes_to_check(function):
        with ir.InsertionPoint(operation), operation.location:
            product = constant_int(1)
            for size in sizes:
                if isinstance(size, int):
                    size = create("torch.aten.size.int", "!torch.int",
                                   [operation.operands[0], constant_int(size)])
                product = create("torch.aten.mul.int", "!torch.int", [product, size])
            holds = create("torch.aten.ne.int", "!torch.bool", [product, constant_int(0)])
            create("torch.runtime.assert", None, [holds],
                    {"message": ir.StringAttr.get(message)})
