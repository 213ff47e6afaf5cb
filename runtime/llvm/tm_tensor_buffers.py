"""Handing the output of ``tm-tensor-bufferize`` to one-shot bufferisation, soundly.

torch-mlir bufferises its ``tm_tensor`` ops (scatter, scan, sort: ``nonzero``,
``cumsum``, ``index_put``, ``scatter_add``, ``topk``) with an old-style partial
bufferisation pass, which leaves two kinds of casts between the tensor and the memref
world for one-shot bufferisation to analyse:

* ``bufferization.to_tensor`` of each buffer it has just allocated: nothing else aliases
  those buffers, so they are marked ``restrict writable`` (one-shot analysis refuses to
  analyse them otherwise);
* ``bufferization.to_buffer`` of each tensor operand. The dialect conversion materialises
  one such cast per tensor, right after the op that defines it, and every ``tm_tensor``
  op and ``memref.copy`` using that tensor reads the one memref, possibly much later.
  One-shot analysis sees the tensor read only where the cast is, so it may let a later
  op write its result into the same buffer in place (``nonzero``'s zero-filled scatter
  destination shared one ``tensor.empty`` with ``arange * mask``: the second ``nonzero``
  of a sub-graph then started from the first one's values). Each use therefore gets its
  own cast, placed right before the op that reads it, so the analysis sees every read
  where it happens.
"""

from torch_mlir import ir

from .ir_walk import ops_named


def mark_fresh_buffers_restrict(module: ir.Module) -> None:
    """Marks every ``bufferization.to_tensor`` (of a freshly allocated buffer)
    ``restrict writable``."""
    for conversion in ops_named(module, "bufferization.to_tensor"):
        conversion.attributes["restrict"] = ir.UnitAttr.get(module.context)
        conversion.attributes["writable"] = ir.UnitAttr.get(module.context)


def cast_at_each_use(module: ir.Module) -> None:
    """Replaces each ``bufferization.to_buffer`` by one cast per use, right before the
    op that uses it."""
    for conversion in ops_named(module, "bufferization.to_buffer"):
        uses = [(use.owner, use.operand_number) for use in conversion.results[0].uses]
        attributes = {named.name: named.attr for named in conversion.attributes}
        for user, number in uses:
            with ir.InsertionPoint(user), conversion.location:
                local = ir.Operation.create(
                    "bufferization.to_buffer", results=[conversion.results[0].type],
                    operands=[conversion.operands[0]], attributes=attributes)
            user.operands[number] = local.results[0]
        conversion.erase()


def prepare_for_one_shot(module: ir.Module) -> None:
    mark_fresh_buffers_restrict(module)
    cast_at_each_use(module)
