"""The side-effect facts every pass asks: may this op be removed, moved or duplicated?

Passes ask here and nowhere else. The facts themselves are the dialects' (`ir/effects.py`:
xDSL's effect and speculatability traits on `dy` ops, and what torch-mlir's and `arith`'s
ops do as this project runs them); this module names the questions passes ask.
"""

from __future__ import annotations

from xdsl.ir import Operation
from xdsl.traits import IsTerminator, SymbolOpInterface

from ir.effects import is_effect_free, is_pure, is_speculatable, may_exit

__all__ = ["is_effect_free", "is_pure", "is_removable_if_unused", "is_speculatable", "may_exit"]


def is_removable_if_unused(op: Operation) -> bool:
    """Whether erasing `op` changes nothing when no op uses its results: it is pure (no
    effects, no exit that lands outside it, cannot fail) and is neither a terminator nor a
    symbol. Unregistered (torch) ops are neither; xDSL would assume they are."""
    return (
        not op.has_trait(IsTerminator, value_if_unregistered=False)
        and not op.has_trait(SymbolOpInterface, value_if_unregistered=False)
        and is_pure(op)
    )
