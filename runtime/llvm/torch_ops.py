"""Building and reading torch-dialect ops through MLIR's Python bindings, for the
rewrites that run on a sub-graph before lowering (`index_bounds`, `eager_checks`,
`nan_indices`, `index_linearization`)."""

from torch_mlir import ir


def create(name: str, result: str | None, operands: list[ir.Value], attributes=None):
    """Inserts op `name` at the current insertion point; its result (`result` is its type
    as text), or the op itself when it has none."""
    results = [] if result is None else [ir.Type.parse(result)]
    operation = ir.Operation.create(
        name, results=results, operands=operands, attributes=attributes or {}
    )
    return operation.result if results else operation


def constant_int(value: int) -> ir.Value:
    return create(
        "torch.constant.int",
        "!torch.int",
        [],
        {"value": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), value)},
    )


def producer_name(value: ir.Value) -> str | None:
    owner = value.owner
    return owner.operation.name if isinstance(owner, (ir.OpView, ir.Operation)) else None


def static_int(value: ir.Value) -> int | None:
    """The value of a `torch.constant.int`, else None."""
    if producer_name(value) == "torch.constant.int":
        return ir.IntegerAttr(value.owner.operation.attributes["value"]).value
    return None


def list_items(value: ir.Value) -> list[ir.Value] | None:
    """The items of a `torch.prim.ListConstruct`, else None."""
    if producer_name(value) == "torch.prim.ListConstruct":
        return list(value.owner.operation.operands)
    return None


def tensor_dims(value_type: ir.Type) -> tuple[list[str], str] | None:
    """The dims (``?`` for a run-time size) and dtype of a ranked `!torch.vtensor`, else None."""
    text = str(value_type)
    if not text.startswith("!torch.vtensor<[") or "]" not in text:
        return None
    dims, dtype = text[len("!torch.vtensor<[") : -1].split("],", 1)
    return ([d for d in dims.split(",")] if dims else []), dtype
