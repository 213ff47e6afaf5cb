"""Which ops may be removed, reordered or duplicated: the side-effect facts passes share."""

from __future__ import annotations

from xdsl.dialects import arith
from xdsl.ir import Operation
from xdsl.traits import Pure

from ir import dy

_NONDETERMINISTIC_TORCH_OPS = ("rand", "dropout", "bernoulli", "normal", "uniform", "multinomial")


def is_torch_op_pure(name: str) -> bool:
    """torch-mlir's value-semantic ops are pure, except those that draw random numbers and
    the in-place (`_`-suffixed) ones."""
    short = name.removeprefix("torch.")
    return not short.endswith("_") and not any(
        word in short for word in _NONDETERMINISTIC_TORCH_OPS
    )


def is_pure(op: Operation) -> bool:
    """An op without side effects and without regions: removable when its results are unused."""
    if op.regions:
        return False
    if dy.is_torch_op(op):
        return is_torch_op_pure(dy.op_name(op))
    if op.dialect_name() == arith.Arith.name:
        return True
    return op.has_trait(Pure)
