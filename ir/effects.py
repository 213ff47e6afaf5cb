"""What running an op may do besides computing its results: the facts passes share.

Two questions decide whether an op may be removed, hoisted or duplicated, as in MLIR:

* **effects** (xDSL's `MemoryEffect` traits): writes of state, random draws, and exits.
  `dy.break` / `dy.continue` / `dy.return` write the `CONTROL_FLOW` resource: they decide
  where control goes next. A branch or loop has the effects of the ops it holds, except the
  exits that land inside it (a `dy.break` of that loop): an exit that lands further out
  leaves through it, so the branch or loop may exit too (`ExitAwareEffects`).
* **speculatability** (xDSL's `ConditionallySpeculatable`): whether running the op where
  it did not run could fail. Here a run-time failure is observable (the interpreter stops
  with a located error), so an op that may fail is never "dead": `dy.list_stack` of a list
  that may be empty, `dy.item` of a tensor whose size is known only at run time, integer
  division by a value that may be zero.

torch-mlir's ops are carried unregistered, without traits; `op_effects` and
`is_speculatable` know them by name (value-semantic ops are effect-free except random and
in-place ones) and by type (static shapes cannot mismatch at run time).
"""

from __future__ import annotations

import abc
from collections.abc import Set as AbstractSet

from xdsl.dialects import arith
from xdsl.dialects.builtin import IntegerAttr, UnregisteredOp
from xdsl.ir import Operation, SSAValue
from xdsl.traits import (
    EffectInstance,
    MemoryEffect,
    MemoryEffectKind,
    Resource,
    get_effects,
)
from xdsl.traits import is_speculatable as _xdsl_is_speculatable

from ir.torch import ValueTensorType, is_integer_dtype


class ControlFlow(Resource):
    """Where control goes when a region ends: what exits write."""

    def name(self) -> str:
        return "<control flow>"


class RandomState(Resource):
    """The random number generator state that sampling ops advance."""

    def name(self) -> str:
        return "<random state>"


CONTROL_FLOW = ControlFlow()
RANDOM_STATE = RandomState()
EXIT = EffectInstance(MemoryEffectKind.WRITE, resource=CONTROL_FLOW)
"""The effect of an exit that leaves the op it is asked about."""


class LeavesRegion(MemoryEffect, abc.ABC):
    """Trait of region terminators that transfer control elsewhere than to their parent:
    `dy.break`, `dy.continue` (to a loop), `dy.return` (to the caller)."""

    @classmethod
    def get_effects(cls, op: Operation) -> AbstractSet[EffectInstance]:
        return frozenset((EXIT,))

    @classmethod
    @abc.abstractmethod
    def landing_op(cls, op: Operation) -> Operation | None:
        """The op that the exit hands control to (its loop, its function)."""


class ExitAwareEffects(MemoryEffect):
    """Trait of branches and loops: the effects of the ops nested in them, where an exit
    counts only when it lands outside (`EXIT`); None (unknown) if a nested op's are."""

    @classmethod
    def get_effects(cls, op: Operation) -> AbstractSet[EffectInstance] | None:
        effects: set[EffectInstance] = set()
        for nested in op.walk():
            if nested is op or nested.has_trait(ExitAwareEffects, value_if_unregistered=False):
                continue
            exit_trait = nested.get_trait(LeavesRegion)
            if exit_trait is not None:
                landing = exit_trait.landing_op(nested)
                if landing is None or not op.is_ancestor(landing):
                    effects.add(EXIT)
                continue
            nested_effects = op_effects(nested)
            if nested_effects is None:
                return None
            effects.update(nested_effects)
        return effects


# ------------------------------------------------------------------- torch and arith

_NONDETERMINISTIC_TORCH_WORDS = (
    "rand",
    "dropout",
    "bernoulli",
    "normal",
    "uniform",
    "multinomial",
    "poisson",
    "empty",
)
"""Ops that draw random numbers, or read uninitialised memory (`empty`)."""

_DATA_DEPENDENT_FAILURE_WORDS = (
    "index",
    "gather",
    "scatter",
    "embedding",
    "take",
    "one_hot",
    "assert",
    "linalg",
    "cholesky",
    "inverse",
    "item",
    "_local_scalar_dense",
    "RaiseException",
)
"""Ops that fail at run time on some values of their operands (an index out of range, a
singular matrix, a failed assertion) even when every shape is static."""

_INTEGER_DIVISION_WORDS = ("div", "remainder", "fmod")
"""On integer tensors these fail on a zero divisor."""

_EFFECTFUL_TORCH_OPS = ("torch.prim.Print", "torch.prim.RaiseException")


def is_torch_op(op: Operation) -> bool:
    """Whether `op` is one of torch-mlir's `torch` dialect ops (carried unregistered)."""
    return isinstance(op, UnregisteredOp) and op.op_name.data.startswith("torch.")


def _short_torch_name(op: Operation) -> str:
    assert isinstance(op, UnregisteredOp)
    return op.op_name.data.removeprefix("torch.")


def torch_op_effects(op: Operation) -> AbstractSet[EffectInstance] | None:
    """torch-mlir's value-semantic ops have none; sampling ops advance the random state,
    in-place (`_`-suffixed) ops write their first operand, printing is an effect."""
    name = op.op_name.data if isinstance(op, UnregisteredOp) else op.name
    short = _short_torch_name(op)
    if name in _EFFECTFUL_TORCH_OPS or op.regions:
        return None
    if short.endswith("_") or short.startswith("overwrite"):
        target = op.operands[0] if op.operands else None
        return frozenset((EffectInstance(MemoryEffectKind.WRITE, value=target),))
    if any(word in short for word in _NONDETERMINISTIC_TORCH_WORDS):
        return frozenset((EffectInstance(MemoryEffectKind.WRITE, resource=RANDOM_STATE),))
    return frozenset()


def _has_static_tensor_types(values: list[SSAValue]) -> bool:
    for value in values:
        value_type = value.type
        if isinstance(value_type, ValueTensorType) and not value_type.has_static_shape:
            return False
    return True


def _has_integer_tensor(values: list[SSAValue]) -> bool:
    return any(
        isinstance(v.type, ValueTensorType)
        and v.type.element_type is not None
        and is_integer_dtype(v.type.element_type)
        for v in values
    )


def torch_op_speculatable(op: Operation) -> bool:
    """A torch op cannot fail when its shapes are static (they were checked when the
    program was verified) and its values cannot make it fail."""
    short = _short_torch_name(op)
    if any(word in short for word in _DATA_DEPENDENT_FAILURE_WORDS):
        return False
    values = [*op.operands, *op.results]
    if not _has_static_tensor_types(values):
        return False
    if any(word in short for word in _INTEGER_DIVISION_WORDS) and _has_integer_tensor(values):
        return False
    return torch_op_effects(op) == frozenset()


_ARITH_DIVISIONS = (
    arith.DivSIOp,
    arith.DivUIOp,
    arith.RemSIOp,
    arith.RemUIOp,
    arith.FloorDivSIOp,
    arith.CeilDivSIOp,
    arith.CeilDivUIOp,
)


def _is_nonzero_constant(value: SSAValue) -> bool:
    owner = value.owner
    return (
        isinstance(owner, arith.ConstantOp)
        and isinstance(owner.value, IntegerAttr)
        and owner.value.value.data != 0
    )


def _arith_speculatable(op: Operation) -> bool | None:
    """Integer division fails on a zero divisor, `fptosi` on NaN and infinities; xDSL marks
    some of them `Pure` because MLIR calls that undefined behaviour, which a pass may assume
    away. Our interpreter stops with an error instead, which a pass must preserve."""
    if isinstance(op, _ARITH_DIVISIONS):
        return _is_nonzero_constant(op.operands[1])
    if isinstance(op, arith.FPToSIOp | arith.FPToUIOp):
        return False
    return None


# --------------------------------------------------------------------------- queries


def op_effects(op: Operation) -> AbstractSet[EffectInstance] | None:
    """The op's effects (an empty set: none), or None when they are unknown."""
    if is_torch_op(op):
        return torch_op_effects(op)
    return get_effects(op)


def is_speculatable(op: Operation) -> bool:
    """Whether running `op` cannot fail, whatever its operands' run-time values."""
    if is_torch_op(op):
        return torch_op_speculatable(op)
    arith_answer = _arith_speculatable(op)
    if arith_answer is not None:
        return arith_answer
    return _xdsl_is_speculatable(op)


def is_effect_free(op: Operation) -> bool:
    return op_effects(op) == frozenset()


def is_pure(op: Operation) -> bool:
    """Effect-free and speculatable (MLIR's `isPure`): removable when its results are
    unused, and movable to where it would run more often."""
    return is_effect_free(op) and is_speculatable(op)


def may_exit(op: Operation) -> bool:
    """Whether running `op` may end its block other than by falling through to the next op
    (an exit, or a branch or loop holding one that lands outside it); True when unknown."""
    effects = op_effects(op)
    return effects is None or EXIT in effects


def all_speculatable(op: Operation) -> bool:
    """Whether every op nested in `op`'s regions is speculatable: what a branch needs."""
    return all(
        is_speculatable(nested)
        for region in op.regions
        for block in region.blocks
        for nested in block.ops
    )
