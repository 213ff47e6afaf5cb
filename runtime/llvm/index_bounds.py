"""Bounds checks for the indices of gathers and scatters.

torch-mlir lowers ``x[idx]``, ``index_select``, ``gather``, ``embedding``, ``index_put``,
``index_add`` and ``scatter`` to loads and stores at the index's value without checking
it: an out-of-range index read whatever lay in memory there (``x[torch.tensor([16])]`` on
16 rows returned garbage where eager raises ``IndexError``), or wrote there.

Before lowering, each such index is clamped into its valid range (and a negative one
wrapped), so no access leaves its tensor unless the indexed dimension is empty, and
whether any index was out of range becomes
one more result of the
sub-graph, a 0-d ``bool``: the caller (:mod:`.engine`) raises
:class:`~.engine.SubgraphAssertionError` when it is set, and the program then runs that
sub-graph eagerly, which raises eager's own error. The valid range is the one eager
accepts, ``[-n, n)`` for ``x[idx]`` (negative indices count from the end), or a narrower
one: ``[0, n)`` for every other op. ``index_add`` arrives as an ``index_put`` that
accumulates, and eager's ``index_add`` refuses negative indices where ``x[idx] = v``
takes them, so a negative index of an ``index_put`` is reported too: eager then writes
it, or raises.
"""

import dataclasses

from torch_mlir import ir

from .torch_ops import constant_int, create, list_items, static_int

#: Ops indexing with a list of index tensors (operand 1), one per leading dimension.
_LIST_INDEXED = ("torch.aten.index.Tensor_hacked_twin", "torch.aten.index.Tensor",
                 "torch.aten.index_put.hacked_twin", "torch.aten.index_put",
                 "torch.aten._index_put_impl")
#: Ops taking (self, dim, index, ...): op name -> position of the index operand.
_DIM_INDEXED = {"torch.aten.index_select": 2, "torch.aten.gather": 2,
                "torch.aten.scatter.src": 2, "torch.aten.scatter.value": 2,
                "torch.aten.scatter_add": 2, "torch.aten.scatter_reduce.two": 2,
                "torch.aten.index_add": 2}
_EMBEDDING = "torch.aten.embedding"
_INDEX_DTYPES = ("si64", "si32")


@dataclasses.dataclass(frozen=True)
class _Use:
    """Operand `position` of `operation` (or item `item` of the list there) indexes
    dimension `dim` of operand `source`; indices from `-n` are valid if `negative`."""

    operation: ir.Operation
    position: int
    item: int | None
    source: int
    dim: int
    negative: bool



def _is_index_tensor(value: ir.Value) -> bool:
    text = str(value.type)
    return text.startswith("!torch.vtensor<") and text.rsplit(",", 1)[-1][:-1] in _INDEX_DTYPES


def _rank(value: ir.Value) -> int | None:
    text = str(value.type)
    if not text.startswith("!torch.vtensor<["):
        return None
    dims = text[len("!torch.vtensor<["):text.index("]")]
    return 0 if not dims else dims.count(",") + 1



def _uses(function) -> list[_Use]:
    found: list[_Use] = []

    def visit(operation):
        operation = operation.operation
        name = operation.name
        if name in _LIST_INDEXED and len(operation.operands) > 1:
            items = list_items(operation.operands[1]) or []
            gathers = "index_put" not in name
            found.extend(_Use(operation, 1, k, 0, k, gathers)
                         for k, item in enumerate(items) if _is_index_tensor(item))
        elif name in _DIM_INDEXED:
            position = _DIM_INDEXED[name]
            dim, rank = static_int(operation.operands[1]), _rank(operation.operands[0])
            if (dim is not None and rank and _is_index_tensor(operation.operands[position])):
                found.append(_Use(operation, position, None, 0, dim % rank, False))
        elif name == _EMBEDDING and _is_index_tensor(operation.operands[1]):
            found.append(_Use(operation, 1, None, 0, 0, False))
        return ir.WalkResult.ADVANCE

    function.operation.walk(visit)
    return found


def _guard(use: _Use) -> ir.Value:
    """Clamps the index of `use` into range in place; returns its 0-d out-of-range flag."""
    operation = use.operation
    operand = operation.operands[use.position]
    items = list_items(operand) if use.item is not None else None
    index = items[use.item] if items is not None else operand
    index_type = str(index.type)
    flags_type = index_type.rsplit(",", 1)[0] + ",i1>"
    with ir.InsertionPoint(operation), operation.location:
        size = create("torch.aten.size.int", "!torch.int",
                       [operation.operands[use.source], constant_int(use.dim)])
        low = create("torch.aten.neg.int", "!torch.int", [size]) if use.negative else constant_int(0)
        high = create("torch.aten.sub.int", "!torch.int", [size, constant_int(1)])
        below = create("torch.aten.lt.Scalar", flags_type, [index, low])
        above = create("torch.aten.ge.Scalar", flags_type, [index, size])
        outside = create("torch.aten.logical_or", flags_type, [below, above])
        flag = create("torch.aten.any", "!torch.vtensor<[],i1>", [outside])
        clamped = create("torch.aten.clamp", index_type, [index, low, high])
        if use.negative:
            negative = create("torch.aten.lt.Scalar", flags_type, [clamped, constant_int(0)])
            shifted = create("torch.aten.add.Scalar", index_type,
                              [clamped, size, constant_int(1)])
            clamped = create("torch.aten.where.self", index_type, [negative, shifted, clamped])
        if items is None:
            operation.operands[use.position] = clamped
        else:
            items[use.item] = clamped
            operation.operands[use.position] = create(
                "torch.prim.ListConstruct", str(operand.type), items)
    return flag


def guard(function) -> bool:
    """Clamps every gather and scatter index of the torch-dialect `function` and appends
    the 0-d flag "some index was out of range" to its results. Returns whether it did
    (False: the function indexes nothing and is unchanged)."""
    uses = _uses(function)
    if not uses:
        return False
    block = function.regions[0].blocks[0]
    terminator = block.operations[len(block.operations) - 1].operation
    flags = [_guard(use) for use in uses]
    with ir.InsertionPoint(terminator), terminator.location:
        flag = flags[0]
        for other in flags[1:]:
            flag = create("torch.aten.logical_or", "!torch.vtensor<[],i1>", [flag, other])
        ir.Operation.create(terminator.name, operands=[*terminator.operands, flag])
    terminator.erase()
    function_type = ir.FunctionType(ir.TypeAttr(function.attributes["function_type"]).value)
    function.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
        function_type.inputs, [*function_type.results, flag.type]))
    return True
