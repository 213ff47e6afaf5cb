"""Eager's NaN rule for `argmax` / `argmin` (and the indices of `max` / `min` along a
dimension, which torch.export makes of them): the index of the first NaN wins.

torch-mlir lowers `argmax` to a reduction that keeps the running maximum with an ordered
comparison, so a NaN never replaces it: `argmax([1, nan, 0])` gave 0 where eager gives 1
(ATen treats NaN as greater than every number for `argmax` and smaller for `argmin`, and
returns the first NaN). Before lowering, the index of each float `argmax` / `argmin` /
`max.dim` / `min.dim` becomes
`where(any(isnan(x)), argmax(isnan(x)), argmax(x))` along the same dimension: the first
index of a NaN where the reduced slice has one (ties of the 0/1 mask keep the first
index, as the reduction keeps the first of equal values), the original answer elsewhere.
"""

from torch_mlir import ir

from .torch_ops import create

#: Ops giving the index of an extremum -> which of their results it is.
_ARG_EXTREMA = {"torch.aten.argmax": 0, "torch.aten.argmin": 0,
                "torch.aten.max.dim": 1, "torch.aten.min.dim": 1}
_FLOAT_CODES = {"f16": 5, "f32": 6, "f64": 7, "bf16": 15}


def _constant(name: str, result: str, attribute=None) -> ir.Value:
    return create(name, result, [], {"value": attribute} if attribute is not None else {})


def _element(value: ir.Value) -> str | None:
    text = str(value.type)
    return text.rsplit(",", 1)[-1][:-1] if text.startswith("!torch.vtensor<[") else None


def _with_element(value: ir.Value, element: str) -> str:
    return str(value.type).rsplit(",", 1)[0] + f",{element}>"


def _rewrite(operation: ir.Operation) -> None:
    source, dim, keepdim = operation.operands
    code = _FLOAT_CODES[_element(source)]
    result = operation.results[_ARG_EXTREMA[operation.name]]
    with ir.InsertionPoint(operation), operation.location:
        nan = create("torch.aten.isnan", _with_element(source, "i1"), [source])
        false = _constant("torch.constant.bool", "!torch.bool",
                          ir.IntegerAttr.get(ir.IntegerType.get_signless(1), 0))
        none = _constant("torch.constant.none", "!torch.none")
        dtype = _constant("torch.constant.int", "!torch.int",
                          ir.IntegerAttr.get(ir.IntegerType.get_signless(64), code))
        ones = create("torch.aten.to.dtype", str(source.type), [nan, dtype, false, false, none])
        first_nan = create("torch.aten.argmax", str(result.type), [ones, dim, keepdim])
        flags = _with_element(result, "i1")
        if str(dim.type) == "!torch.none":
            has_nan = create("torch.aten.any", flags, [nan])
        else:
            has_nan = create("torch.aten.any.dim", flags, [nan, dim, keepdim])
    with ir.InsertionPoint.after(operation), operation.location:
        chosen = create("torch.aten.where.self", str(result.type), [has_nan, first_nan, result])
    result.replace_all_uses_except(chosen, chosen.owner.operation)


def apply(function) -> None:
    """Rewrites the index of every float arg-extremum of the torch-dialect `function`."""
    found = []

    def visit(operation):
        operation = operation.operation
        if (operation.name in _ARG_EXTREMA and len(operation.operands) == 3
                and _element(operation.operands[0]) in _FLOAT_CODES):
            found.append(operation)
        return ir.WalkResult.ADVANCE

    function.operation.walk(visit)
    for operation in found:
        _rewrite(operation)
